"""``sstp-pppd``: the command line of the transport.

Every failure ends in one line on the log (stderr or syslog) and an exit code from
:class:`sstp_pppd.errors.ExitCode`; no traceback reaches the user.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from . import __version__
from .config import Config, build_config
from .core.proxy import parse_proxy_url
from .errors import ConfigError, ExitCode, Interrupted, SstpPppdError
from .logsetup import NOTICE, setup_logging
from .options import help_text, parse_args
from .secrets import password_lookup
from .transport.net import proxy_for
from .transport.session import Session

if TYPE_CHECKING:
    from .host.connconf import Connection

#: The options that need sstp_pppd/host/ (the dests of options.py's routes and DNS block).
HOST_OPTIONS = ("route", "default_route", "kill_switch", "dns_domain", "save_server_route")

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
        host = host_settings(config, parsed.values)
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
    return run(config, host)


def host_settings(config: Config, values: Mapping[str, object]) -> Connection | None:
    """The routes and DNS settings of this run, or None (sstp_pppd/host/ is then not loaded)."""
    if not config.ipparam and not any(values.get(k) for k in HOST_OPTIONS):
        return None
    from .host.apply import session_connection  # noqa: PLC0415 (start-up time)

    return session_connection(config.ipparam, values)


async def _with_host(config: Config, host: Connection) -> None:
    """The session between the server route pinned before it and the undo after it.

    Host changes (sstp_pppd/host/) are composed with the transport here: transport/ never
    imports host/.
    """
    proxy_url = proxy_for(config)
    proxy = None
    if proxy_url:
        p = parse_proxy_url(proxy_url)
        proxy = (p.host, p.port)
    from .host.apply import apply_for_session, undo_for_session  # noqa: PLC0415

    await apply_for_session(host, server=config.server.host, port=config.server.port, proxy=proxy)
    error = None
    # In pty mode pppd owns the life cycle, and a failed link must not open the kill switch.
    keep = config.nolaunchpppd
    try:
        await Session(config, password_lookup(config.password)).run()
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        keep = keep or not isinstance(exc, Interrupted | KeyboardInterrupt)
        raise
    finally:
        await undo_for_session(host, keep_kill_switch=keep, error=error)


def run(config: Config, host: Connection | None = None) -> int:
    async def session() -> None:
        if host is not None:
            await _with_host(config, host)
            return
        await Session(config, password_lookup(config.password)).run()

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
