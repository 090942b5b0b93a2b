"""Where the log goes and how much of it: sstpc's --log-* options on Python logging."""

from __future__ import annotations

import logging
import os
import socket
import sys

from .config import Config
from .trace import FRAMES, HEXDUMP

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")
# --log-level 5 and 6: named, or they print as "Level 7" and "Level 5".
logging.addLevelName(FRAMES, "FRAMES")
logging.addLevelName(HEXDUMP, "HEXDUMP")
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
    fallback = None
    if config.log.syslog or (config.nolaunchpppd and not handlers):
        address = config.log.syslog if isinstance(config.log.syslog, str) else SYSLOG_SOCKET
        problem = syslog_problem(address)
        if problem is None:
            sh = _syslog_handler(address)
            sh.setFormatter(
                logging.Formatter(f"{config.log.ident}[%(process)d]: {where}%(message)s")
            )
            handlers.append(sh)
        else:
            # Python >= 3.11's SysLogHandler no longer fails when the socket is missing,
            # and then every record becomes a "--- Logging error ---" traceback: look first.
            fallback = f"no syslog at {address} ({problem}): logging to standard error"
            if not any(
                isinstance(h, logging.StreamHandler) and h.stream is sys.stderr for h in handlers
            ):
                # In pty mode pppd sends its pty command's stderr to its own log (logfile,
                # logfd) or to /etc/ppp/connect-errors: the lines still land somewhere.
                eh = logging.StreamHandler(sys.stderr)
                eh.setFormatter(logging.Formatter(f"{config.log.ident}: {where}%(message)s"))
                handlers.append(eh)
    for h in handlers:
        if config.log.filter:
            h.addFilter(_TokenFilter(config.log.filter))
        root.addHandler(h)
    if fallback:
        root.warning("%s", fallback)


#: Where syslog(3) writes, and our default.
SYSLOG_SOCKET = "/dev/log"


def syslog_problem(address: str) -> str | None:
    """Why a syslog socket at ``address`` cannot be used, or None if a connect works."""
    last: OSError | None = None
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_UNIX, kind)
        try:
            s.connect(address)
            return None
        except OSError as exc:
            last = exc
        finally:
            s.close()
    return last.strerror if last is not None and last.strerror else str(last)


def _syslog_handler(address: str) -> logging.Handler:
    """A syslog handler on ``address``; logging.handlers (with pickle, queue...) is
    imported only here, for runs that log to syslog."""
    import logging.handlers  # noqa: PLC0415

    class _SysLogHandler(logging.handlers.SysLogHandler):
        """Syslog that, if the daemon goes away later, says so once instead of a traceback
        per record (logging's default handleError)."""

        _failed = False

        def handleError(self, record: logging.LogRecord) -> None:
            if not self._failed:
                self._failed = True
                exc = sys.exc_info()[1]
                sys.stderr.write(f"sstp-pppd: syslog at {self.address} failed: {exc}\n")

    return _SysLogHandler(address=address, facility=logging.handlers.SysLogHandler.LOG_DAEMON)
