"""sstp-pppd: an SSTP VPN client for Linux that drives the kernel PPP stack through pppd."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

if _os.environ.get("SSTP_PPPD_PURE_PYTHON"):
    # Refuse the C accelerator (tests, or to rule it out): its import then fails and
    # core/hdlc.py falls back on the pure-Python reference codec.
    _sys.modules["sstp_pppd.core._hdlc"] = None  # type: ignore[assignment]
