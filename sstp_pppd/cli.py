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
from .preflight import check_pppd
from .scrub import scrub_process_argv
from .secrets import password_lookup
from .transport.session import Session

log = logging.getLogger("sstp_pppd")


def main(argv: Sequence[str] | None = None, *, scrubbed: bool = True) -> int:
    # First of all: the password leaves ps's view (sstp_pppd/scrub.py; the console
    # script, scrub.main, did it already before importing this module).
    scrubbed = scrub_process_argv() and scrubbed
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
        config = build_config(parsed)
        check_pppd(config.pppd, launch=not config.nolaunchpppd)  # before connecting
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
