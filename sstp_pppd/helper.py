"""sstp-helper: the command for people and login scripts (add/up/down/status).

Not built yet: it comes after the transport. It says so instead of pretending.
"""

import sys


def main() -> int:
    sys.stderr.write(
        "sstp-helper: not implemented yet; use 'sstp-pppd SERVER' or a pppd peers file "
        "(see man sstp-pppd)\n"
    )
    return 2
