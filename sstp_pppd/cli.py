"""``sstp-pppd``: the command line of the transport.

Every failure ends in one line on the log (stderr or syslog) and an exit code from
:class:`sstp_pppd.errors.ExitCode`; no traceback reaches the user.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .config import Config, build_config
from .errors import ConfigError, ExitCode, SstpPppdError
from .logsetup import NOTICE, setup_logging
from .options import help_text, parse_args
from .secrets import password_lookup
from .transport.session import Session

log = logging.getLogger("sstp_pppd")


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
        # In pty mode stdout is pppd's line: even --help and --version go to stderr there.
        out = sys.stderr if parsed.values.get("nolaunchpppd") else sys.stdout
        if parsed.values.get("help"):
            out.write(help_text())
            return ExitCode.OK
        if parsed.values.get("version"):
            out.write(f"sstp-pppd {__version__}\n")
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
        # pppd's options decide its secret: ours in launch mode, /proc in pty mode.
        launch_argv = None if config.nolaunchpppd else ["pppd", *config.pppd_options]
        await Session(config, password_lookup(config.password, launch_argv)).run()

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
