"""A stand-in for pppd in launch mode (``--pppd``): what matters here is its start.

Like pppd, it opens the tty it is given, takes a moment to start, sets the line up with
``tcsetattr(TCSAFLUSH)`` (which discards whatever arrived before), then sends its LCP
Configure-Request. It reports every frame it receives on stderr (the client's stderr),
one ``fake-pppd got <hex>`` line each, until the line hangs up or it is signalled. With
``FAKE_PPPD_SILENT`` set it waits, as pppd's ``silent`` does, for a frame before its own.
"""

from __future__ import annotations

import os
import signal
import sys
import termios
import time
import tty

from sstp_pppd.core import hdlc

LCP_REQUEST = bytes.fromhex("ff03c021 0109 000a 0506 01020304")


def main() -> int:
    device = sys.argv[1]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(0))
    fd = os.open(device, os.O_RDWR | os.O_NOCTTY)
    time.sleep(0.3)  # pppd's start-up: options, plugins, the lock file
    attrs = termios.tcgetattr(fd)
    tty.setraw(fd)
    termios.tcsetattr(fd, termios.TCSAFLUSH, termios.tcgetattr(fd))
    del attrs
    silent = bool(os.environ.get("FAKE_PPPD_SILENT"))
    if not silent:
        os.write(fd, hdlc.encode(LCP_REQUEST))
    decoder = hdlc.Decoder()
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return 0
        if not data:
            return 0
        for frame in decoder.feed(data):
            sys.stderr.write(f"fake-pppd got {frame.hex()}\n")
            sys.stderr.flush()
            if silent:
                silent = False
                os.write(fd, hdlc.encode(LCP_REQUEST))


if __name__ == "__main__":
    sys.exit(main())
