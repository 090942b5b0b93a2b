"""``sstp-pppd``: the command line of the transport.

Every failure ends in one line on the log (stderr or syslog) and an exit code from
:class:`sstp_pppd.errors.ExitCode`; no traceback reaches the user.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import sys
from collections.abc import Sequence

from . import __version__
from .config import Config, build_config
from .errors import ConfigError, ExitCode, SstpPppdError
from .options import help_text, parse_args
from .tunnel import Tunnel, make_password_lookup

log = logging.getLogger("sstp_pppd")

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")
#: sstpc's --log-level 0..6 mapped onto logging levels. 2 shows the stages of a connection.
LOG_LEVELS = (logging.ERROR, logging.WARNING, NOTICE, logging.INFO, logging.DEBUG, 7, 5)
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
    root.setLevel(LOG_LEVELS[config.log_level])
    root.propagate = False
    where = "%(filename)s:%(lineno)d: " if config.log_lineno else ""
    handlers: list[logging.Handler] = []
    if config.log_stdout:
        handlers.append(logging.StreamHandler(sys.stdout))
    if config.log_stderr or (
        not config.nolaunchpppd
        and not config.log_syslog
        and not config.log_file
        and not config.log_stdout
    ):
        handlers.append(logging.StreamHandler(sys.stderr))
    for h in handlers:
        h.setFormatter(logging.Formatter(f"{config.log_ident}: {where}%(message)s"))
    if config.log_file:
        path = config.log_file if isinstance(config.log_file, str) else DEFAULT_LOG_FILE
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fh = logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8"))
        fh.setFormatter(
            logging.Formatter(
                f"%(asctime)s {config.log_ident}[%(process)d]: {where}%(levelname)s %(message)s"
            )
        )
        handlers.append(fh)
    if config.log_syslog or (config.nolaunchpppd and not handlers):
        address = config.log_syslog if isinstance(config.log_syslog, str) else "/dev/log"
        try:
            sh: logging.Handler = logging.handlers.SysLogHandler(
                address=address, facility=logging.handlers.SysLogHandler.LOG_DAEMON
            )
        except OSError:
            # No syslog daemon (containers, the test guest): pppd logs our stderr instead.
            sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(logging.Formatter(f"{config.log_ident}[%(process)d]: {where}%(message)s"))
        handlers.append(sh)
    for h in handlers:
        if config.log_filter:
            h.addFilter(_TokenFilter(config.log_filter))
        root.addHandler(h)


def scrub_argv(secrets: Sequence[str]) -> bool:
    """Overwrite ``secrets`` in this process's command line, as ps and /proc show it.

    Python keeps its own copy of argv; the kernel shows the original memory, which
    /proc/self/mem lets us rewrite in place.
    """
    secrets = [s for s in secrets if s]
    if not secrets:
        return True
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        # Fields 48 and 49 of stat (arg_start, arg_end); the split starts at field 3.
        start, end = int(fields[45]), int(fields[46])
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            args = mem.read(end - start)
            scrubbed = args
            for s in secrets:
                raw = s.encode()
                scrubbed = scrubbed.replace(raw, b"x" * len(raw))
            if scrubbed != args:
                mem.seek(start)
                mem.write(scrubbed)
    except (OSError, ValueError, IndexError):
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        parsed = parse_args(args)
        if parsed.values.get("help"):
            sys.stderr.write(help_text()) if parsed.values.get(
                "nolaunchpppd"
            ) else sys.stdout.write(help_text())
            return ExitCode.OK
        if parsed.values.get("version"):
            sys.stdout.write(f"sstp-pppd {__version__}\n")
            return ExitCode.OK
        secret_words = [
            v for k, v in parsed.values.items() if k in ("password", "proxy") and isinstance(v, str)
        ]
        if parsed.url_password:
            secret_words.append(parsed.url_password)
        scrubbed = scrub_argv(secret_words)
        config = build_config(parsed)
        setup_logging(config)
    except ConfigError as exc:
        sys.stderr.write(f"sstp-pppd: {exc}\n")
        return exc.exit_code
    except OSError as exc:
        sys.stderr.write(f"sstp-pppd: cannot open the log: {exc}\n")
        return ExitCode.USAGE
    for warning in config.warnings:
        log.warning("%s", warning)
    if not scrubbed:
        log.warning("could not scrub the password from the command line")
    return run(config)


def run(config: Config) -> int:
    async def session() -> None:
        await Tunnel(config, make_password_lookup(config)).run()

    try:
        asyncio.run(session())
    except SstpPppdError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return ExitCode.INTERRUPTED
    except Exception as exc:
        log.debug("internal error", exc_info=True)
        log.error(
            "internal error: %s: %s (run with --log-level 4 for details)", type(exc).__name__, exc
        )
        return ExitCode.INTERNAL
    log.log(NOTICE, "tunnel closed")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
