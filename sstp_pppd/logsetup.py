"""Where the log goes and how much of it: sstpc's --log-* options on Python logging."""

from __future__ import annotations

import logging
import logging.handlers
import os
import socket
import sys

from .config import Config
from .trace import FRAMES, HEXDUMP

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")
#: sstpc's --log-level 0..6 mapped onto logging levels. 2 shows the stages of a connection.
LOG_LEVELS = (logging.ERROR, logging.WARNING, NOTICE, logging.INFO, logging.DEBUG, FRAMES, HEXDUMP)
DEFAULT_LOG_FILE = "/var/log/sstp-pppd.log"


class _TokenFilter(logging.Filter):
    def __init__(self, tokens: tuple[str, ...]) -> None:
        super().__init__()
        self.tokens = tokens

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        msg = record.getMessage()
        return any(t in msg for t in self.tokens)


def setup_logging(config: Config) -> None:
    """Send the log where the options say: syslog by default in pty mode, else stderr.

    In pty mode stdout is pppd's line, so nothing may ever be logged there.
    """
    root = logging.getLogger("sstp_pppd")
    root.handlers.clear()
    root.setLevel(LOG_LEVELS[config.log.level])
    root.propagate = False
    where = "%(filename)s:%(lineno)d: " if config.log.lineno else ""
    handlers: list[logging.Handler] = []
    if config.log.stdout:
        handlers.append(logging.StreamHandler(sys.stdout))
    if config.log.stderr or (
        not config.nolaunchpppd
        and not config.log.syslog
        and not config.log.file
        and not config.log.stdout
    ):
        handlers.append(logging.StreamHandler(sys.stderr))
    for h in handlers:
        h.setFormatter(logging.Formatter(f"{config.log.ident}: {where}%(message)s"))
    if config.log.file:
        path = config.log.file if isinstance(config.log.file, str) else DEFAULT_LOG_FILE
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fh = logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8"))
        fh.setFormatter(
            logging.Formatter(
                f"%(asctime)s {config.log.ident}[%(process)d]: {where}%(levelname)s %(message)s"
            )
        )
        handlers.append(fh)
    if config.log.syslog or (config.nolaunchpppd and not handlers):
        address = config.log.syslog if isinstance(config.log.syslog, str) else "/dev/log"
        try:
            # Python 3.11's SysLogHandler swallows a failed connect and then prints a
            # traceback per record: probe the socket first.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
                probe.connect(address)
            sh: logging.Handler = logging.handlers.SysLogHandler(
                address=address, facility=logging.handlers.SysLogHandler.LOG_DAEMON
            )
        except OSError:
            # No syslog daemon (containers, the test guest): pppd logs our stderr instead.
            sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(logging.Formatter(f"{config.log.ident}[%(process)d]: {where}%(message)s"))
        handlers.append(sh)
    for h in handlers:
        if config.log.filter:
            h.addFilter(_TokenFilter(config.log.filter))
        root.addHandler(h)
