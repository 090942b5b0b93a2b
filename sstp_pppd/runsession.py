"""One run of the transport, composed with the host changes when there are any.

``transport/`` never imports ``host/``: they meet here. The host modules are loaded only
when the run has routes or DNS to manage (pyroute2 is heavy and never on the relay's path).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from .errors import ExitCode, Interrupted, NetworkError, exit_code_of
from .host.privileges import drop_privileges
from .secrets import password_lookup
from .transport.session import Session

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .config import Config
    from .host.connconf import Connection


def new_session(config: Config, host: Connection | None = None) -> Session:
    """The session, with the secret pppd will use and the privilege drop it may need."""
    # pppd's options decide its secret: ours in launch mode, /proc in pty mode.
    launch_argv = None if config.nolaunchpppd else ["pppd", *config.pppd.options]
    lookup = password_lookup(config.pppd.password, launch_argv)
    on_stage = None
    if host is not None and config.pppd.ipparam:
        from .host.apply import note_stage  # noqa: PLC0415

        name = config.pppd.ipparam

        def on_stage(stage: str, **fields: object) -> None:
            note_stage(name, stage, None, **fields)

    return Session(
        config,
        lookup,
        drop_privileges=drop_privileges,
        privileged_cleanup=None if host is None else _undo_by_keeper(host),
        on_stage=on_stage,
    )


def _undo_by_keeper(host: Connection) -> Callable[[Mapping[str, object] | None], None]:
    """Launch mode after the drop: the host undo, run by the privileged part (privsep.py)."""

    def undo(outcome: Mapping[str, object] | None) -> None:
        from .host.apply import undo_session_now  # noqa: PLC0415

        error: str | None = "the transport ended without a report"
        code: int | None = None
        if outcome is None:  # the relay died without a word: the kill switch holds
            keep = True
        else:
            keep = outcome.get("keep") is not False
            error = str(outcome["error"]) if outcome.get("error") else None
            raw = outcome.get("exit_code")
            code = raw if isinstance(raw, int) else None
        undo_session_now(host, keep_kill_switch=keep, error=error, exit_code=code)

    return undo


async def _addresses(host: str, port: int) -> list[str]:
    """The server's (or proxy's) addresses for the route pin, by the transport's resolver."""
    from .transport.net import resolve  # noqa: PLC0415

    try:
        pairs = await resolve(host, port)
    except NetworkError:
        return []  # the connect that follows reports it
    return list(dict.fromkeys(addr[0] for _family, addr in pairs))


async def run_session(config: Config, host: Connection | None) -> None:
    """Run the session; with host settings, between the server route and the undo."""
    if host is None:
        session = new_session(config)
        try:
            await session.run()
        finally:
            if session.keeper is not None:  # launch mode, privileges dropped
                await session.keeper.finish({})
        return
    from .core.proxy import parse_proxy_url  # noqa: PLC0415
    from .host.apply import apply_for_session, undo_for_session  # noqa: PLC0415
    from .transport.net import proxy_for  # noqa: PLC0415

    proxy_url = proxy_for(config)
    proxy = None
    if proxy_url:
        p = parse_proxy_url(proxy_url)
        proxy = (p.host, p.port)
    applying = asyncio.ensure_future(
        apply_for_session(
            host, server=config.server.host, port=config.server.port, proxy=proxy,
            lookup=_addresses,
        )
    )  # fmt: skip
    try:
        await asyncio.shield(applying)
        cancelled = False
    except asyncio.CancelledError:
        # A signal (sstp_pppd/stopsignals.py cancels once): let the pinning finish, then
        # undo it below; were it cut short, a thread of it could run on past the undo.
        cancelled = True
        with contextlib.suppress(Exception):
            await applying
        if applying.exception() is not None:
            raise  # it changed nothing (another run owns the connection...): nothing to undo
    error = None
    code: int | None = None
    # In pty mode pppd owns the life cycle, and a failed link must not open the kill switch.
    keep = config.nolaunchpppd
    made: Session | None = None
    try:
        if cancelled:
            raise asyncio.CancelledError
        made = new_session(config, host)
        await made.run()
    except BaseException as exc:
        error = str(exc) or type(exc).__name__
        stopped = isinstance(exc, KeyboardInterrupt | asyncio.CancelledError)
        if stopped:
            error = "interrupted"
        # sstp-helper up exits with this code (status.json last_exit_code).
        code = ExitCode.INTERRUPTED if stopped else exit_code_of(exc)
        keep = keep or not (stopped or isinstance(exc, Interrupted))
        raise
    finally:
        if made is not None and made.keeper is not None:
            # Root was given up (launch mode): the privileged part undoes, once pppd is gone.
            await made.keeper.finish({"keep": keep, "error": error, "exit_code": code})
        else:
            await undo_for_session(host, keep_kill_switch=keep, error=error, exit_code=code)
