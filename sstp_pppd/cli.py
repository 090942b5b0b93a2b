"""``sstp-pppd``: the command line of the transport.

Every failure ends in one line on the log (stderr or syslog) and an exit code from
:class:`sstp_pppd.errors.ExitCode`; no traceback reaches the user.

Nothing is imported before it is needed: a bare ``--version`` is answered before even the
option parser is loaded, ``--help`` after parsing, and logging, asyncio, TLS and the session
come in only for a run (pppd's ``pty`` option starts us for every connect, and in a small
VM every import costs).
"""

from __future__ import annotations

import sys

from . import __version__

# typing itself costs milliseconds to import; mypy knows this name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .config import Config
    from .host.connconf import Connection

# Every module logs to getLogger(__name__); here __name__ is "__main__" under
# ``python -m sstp_pppd.cli``, outside the "sstp_pppd" tree the handlers hang on.
LOGGER = "sstp_pppd.cli"

#: The options that need sstp_pppd/host/ (the dests of options.py's routes and DNS block).
HOST_OPTIONS = ("route", "default_route", "kill_switch", "dns_domain", "save_server_route")


#: Arguments a bare version query may have: answered without parsing (same output).
_VERSION_ONLY = frozenset({"--version", "--nolaunchpppd"})


def main(argv: Sequence[str] | None = None, *, scrubbed: bool = True) -> int:
    # First of all: the password leaves ps's view (sstp_pppd/scrub.py; the console
    # script, scrub.main, did it already before importing this module).
    from .scrub import scrub_process_argv  # noqa: PLC0415

    scrubbed = scrub_process_argv() and scrubbed
    from .stopsignals import caught  # noqa: PLC0415

    if caught() is not None:  # a signal during the imports (scrub.main noted it)
        return _stopped()
    args = list(sys.argv[1:] if argv is None else argv)
    if "--version" in args and _VERSION_ONLY.issuperset(args):
        # In pty mode stdout is pppd's line, as below.
        out = sys.stderr if "--nolaunchpppd" in args else sys.stdout
        out.write(f"sstp-pppd {__version__}\n")
        return 0
    # Deferred imports (see the module docstring).
    from .errors import ConfigError, ExitCode, PppdError, exit_code_of  # noqa: PLC0415
    from .options import help_text, parse_args  # noqa: PLC0415

    try:
        if caught() is not None:  # during the imports just above
            return _stopped()
        parsed = parse_args(args)
        # In pty mode stdout is pppd's line: even --help and --version go to stderr there.
        out = sys.stderr if parsed.values.get("nolaunchpppd") else sys.stdout
        if parsed.values.get("help"):
            out.write(help_text())
            return ExitCode.OK
        if parsed.values.get("version"):
            out.write(f"sstp-pppd {__version__}\n")
            return ExitCode.OK
        # Deferred imports (see the module docstring): nothing below is needed for --version.
        from .config import build_config  # noqa: PLC0415
        from .logsetup import setup_logging  # noqa: PLC0415
        from .preflight import check_pppd  # noqa: PLC0415

        if caught() is not None:
            return _stopped()
        config = build_config(parsed)
        check_pppd(config.pppd.path, launch=not config.nolaunchpppd)  # before connecting
        if config.nolaunchpppd:
            from .transport.ptyio import check_line  # noqa: PLC0415

            check_line()  # stdin and stdout are pppd's line: open, usable, not hung up
        host = host_settings(config, parsed.values)
        if caught() is not None:
            return _stopped()
        setup_logging(config)
    except KeyboardInterrupt:
        return _stopped()  # an in-process caller that did not hold the signals
    except (ConfigError, PppdError) as exc:
        sys.stderr.write(f"sstp-pppd: {exc}\n")
        return exit_code_of(exc)
    except OSError as exc:
        sys.stderr.write(f"sstp-pppd: cannot open the log: {exc}\n")
        return ExitCode.USAGE
    import logging  # noqa: PLC0415

    log = logging.getLogger(LOGGER)
    for warning in config.warnings:
        log.warning("%s", warning)
    if not scrubbed:
        log.warning("could not scrub the password from the command line")
    return run(config, host)


def _stopped() -> int:
    """Interrupted before the log is set up: one line on stderr, exit 11."""
    from .errors import ExitCode  # noqa: PLC0415
    from .stopsignals import caught, signal_name  # noqa: PLC0415

    signum = caught()
    by = f" by {signal_name(signum)}" if signum is not None else ""
    sys.stderr.write(f"sstp-pppd: interrupted{by}\n")
    return ExitCode.INTERRUPTED


def host_settings(config: Config, values: Mapping[str, object]) -> Connection | None:
    """The routes and DNS settings of this run, or None (sstp_pppd/host/ is then not loaded)."""
    if not config.pppd.ipparam and not any(values.get(k) for k in HOST_OPTIONS):
        return None
    # connconf, not apply: with no NAME.conf and no host option nothing is to be done, and
    # apply's imports (json, the hooks, the record) would be start-up time for nothing.
    from .host.connconf import session_connection  # noqa: PLC0415

    return session_connection(config.pppd.ipparam, values)


def run(config: Config, host: Connection | None = None) -> int:
    import asyncio  # noqa: PLC0415
    import logging  # noqa: PLC0415

    from .core.errors import SstpError  # noqa: PLC0415
    from .errors import ExitCode, SstpPppdError, exit_code_of  # noqa: PLC0415
    from .logsetup import NOTICE  # noqa: PLC0415
    from .runsession import run_session  # noqa: PLC0415
    from .stopsignals import caught, run_in_loop, signal_name  # noqa: PLC0415

    log = logging.getLogger(LOGGER)
    try:
        # asyncio.run, with signals before and after the session's own handling
        # (sstp_pppd/stopsignals.py): none kills the process in the middle of an undo.
        run_in_loop(lambda: run_session(config, host))
    except (SstpPppdError, SstpError) as exc:
        log.error("%s", exc)
        return exit_code_of(exc)
    except (KeyboardInterrupt, asyncio.CancelledError):
        signum = caught()
        log.error("interrupted%s", f" by {signal_name(signum)}" if signum is not None else "")
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
    from .stopsignals import hold

    hold()  # as scrub.main does, for ``python -m sstp_pppd.cli``
    sys.exit(main())
