"""Placeholder replaced by the transport's command line (issue 3)."""

import sys


def main() -> int:
    sys.stderr.write("sstp-pppd: the transport is not built yet\n")
    return 1
