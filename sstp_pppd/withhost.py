"""Where the transport meets the host: the session between the server route and its undo.

``transport/`` never imports ``host/``; the command line composes them here, loaded only
when the run has routes or DNS to manage (pyroute2 is heavy and never on the relay's path).
"""

from __future__ import annotations

from .config import Config
from .core.proxy import parse_proxy_url
from .errors import ExitCode, Interrupted, exit_code_of
from .host.apply import apply_for_session, undo_for_session
from .host.connconf import Connection
from .host.privileges import drop_privileges
from .secrets import password_lookup
from .transport.net import proxy_for
from .transport.session import Session


async def run_with_host(config: Config, host: Connection) -> None:
    """Pin the server route, run the session, then undo what was recorded, whatever happens."""
    proxy_url = proxy_for(config)
    proxy = None
    if proxy_url:
        p = parse_proxy_url(proxy_url)
        proxy = (p.host, p.port)
    await apply_for_session(host, server=config.server.host, port=config.server.port, proxy=proxy)
    error = None
    code: int | None = None
    # In pty mode pppd owns the life cycle, and a failed link must not open the kill switch.
    keep = config.nolaunchpppd
    try:
        await Session(
            config, password_lookup(config.pppd.password), drop_privileges=drop_privileges
        ).run()
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        # sstp-helper up exits with this code (status.json last_exit_code).
        code = ExitCode.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else exit_code_of(exc)
        keep = keep or not isinstance(exc, Interrupted | KeyboardInterrupt)
        raise
    finally:
        await undo_for_session(host, keep_kill_switch=keep, error=error, exit_code=code)
