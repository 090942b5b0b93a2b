"""The transport's share of the host changes: the server route, and the session's end.

``cli.py`` composes it with the transport (which never imports ``host/``)::

    conn = connconf.session_connection(config.ipparam, values)  # None: nothing to do
    await apply_for_session(conn, server=..., proxy=...)       # before the TCP connect
    try:
        await Session(...).run()
    finally:
        await undo_for_session(conn, keep_kill_switch=...)

The tunnel's own routes and DNS need ``pppN`` and its addresses, which only pppd knows:
in both modes pppd runs its ip-up/ip-down hooks (:mod:`.hooks`), and they are the single
path for those. What is done here: refuse a second transport for the same connection,
undo what a previous run left behind after a ``kill -9`` (the kill switch excepted: it
must hold until ``down``), leave the merged settings where the hooks find them, and pin
the server route before the TCP connect (:func:`.plan.plan_server_routes`). pyroute2
runs in a thread: its sync API cannot run inside the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any, cast

from ..errors import ConfigError
from . import routes
from .atomic import write_atomic
from .connconf import Connection, format_connection
from .hookmain import links_down, session_settings_path
from .linkstate import link_lock
from .paths import Paths
from .plan import RouteOp, Scope, plan_server_routes
from .record import Record, default_undoers, pid_alive
from .status import update_status

log = logging.getLogger("sstp_pppd")

#: Resolves (host, port) to addresses; [] when the name does not resolve.
Lookup = Callable[[str, int], Awaitable[list[str]]]


async def _addresses(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []  # the transport's connect reports it
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _start(conn: Connection, paths: Paths) -> Record:
    rec = Record(conn.name, paths)
    owner = rec.owner()
    if owner is not None and owner != os.getpid() and pid_alive(owner):
        raise ConfigError(f"connection {conn.name} is already running (pid {owner})")
    # A previous transport killed with -9 left these; its kill switch stays until down.
    for error in rec.undo(default_undoers(paths), scopes={Scope.SESSION, Scope.LINK}):
        log.warning("left over from a previous run: %s", error)
    write_atomic(session_settings_path(conn.name, paths), format_connection(conn), mode=0o644)
    rec.set_owner(os.getpid())
    return rec


async def apply_for_session(
    conn: Connection,
    *,
    server: str,
    port: int,
    proxy: tuple[str, int] | None = None,
    paths: Paths | None = None,
    lookup: Lookup | None = None,
) -> None:
    """Before the TCP connect: take the connection, pin the route to the server (or proxy).

    ``lookup`` resolves the name (default ``loop.getaddrinfo``); the session passes the
    transport's, which a signal can cancel at once even while the resolver is stuck."""
    paths = paths or Paths.from_env()
    try:
        rec = await asyncio.to_thread(_start, conn, paths)
    except OSError as exc:
        raise ConfigError(
            f"cannot record the host changes of {conn.name} in {paths.run_dir}: "
            f"{exc.strerror or exc} (routes and DNS need root)"
        ) from exc
    target, target_port = proxy or (server, port)
    addresses = await (lookup or _addresses)(target, target_port)
    update_status(
        conn.name, paths, state="connecting", stage="tcp", pid=os.getpid(), server=server,
        server_address=addresses[0] if addresses and proxy is None else None,
        last_error=None, scripts_dir=paths.scripts_dir(conn.name),
        links_up=None,  # one killed with -9 may have left its links listed
    )  # fmt: skip
    if not addresses:
        return

    def pin() -> None:
        answers = [routes.lookup(a) for a in addresses]
        plan = plan_server_routes(conn, answers)
        for warning in plan.warnings:
            log.warning("%s", warning)
        for op in plan.ops:
            if isinstance(op, RouteOp):
                try:
                    if routes.apply_route(rec, op):
                        log.info("route to the server: %s", op.describe())
                except OSError as exc:
                    log.warning("cannot pin the route to %s: %s", op.dst, exc)

    await asyncio.to_thread(pin)


async def undo_for_session(
    conn: Connection,
    *,
    keep_kill_switch: bool,
    error: str | None = None,
    exit_code: int | None = None,
    paths: Paths | None = None,
) -> list[str]:
    """On every exit path: undo the session's and the link's changes; the errors.

    ``error`` and ``exit_code`` (the transport's one-line reason and ExitCode) become the
    status's ``last_error`` and ``last_exit_code``, which ``sstp-helper up`` exits with.

    ``keep_kill_switch``: the link failed (or pppd owns the life cycle, in pty mode), so the
    kill switch and the server route it holds stay until ``down``; else everything goes.
    """
    return await asyncio.to_thread(
        undo_session_now, conn, keep_kill_switch=keep_kill_switch, error=error,
        exit_code=exit_code, paths=paths,
    )  # fmt: skip


def undo_session_now(
    conn: Connection,
    *,
    keep_kill_switch: bool,
    error: str | None = None,
    exit_code: int | None = None,
    paths: Paths | None = None,
) -> list[str]:
    """:func:`undo_for_session`, synchronously (also for launch mode's privileged part)."""
    paths = paths or Paths.from_env()
    rec = Record(conn.name, paths)
    keep = keep_kill_switch and conn.kill_switch
    scopes = {Scope.SESSION, Scope.LINK} if keep else None
    # Under the hooks' lock: an ip-down hook still on its way (pppd gave up waiting for it)
    # either finished before, or finds its link's end done here, scripts included.
    with link_lock(conn.name, paths):
        links_down(conn, paths)
        errors = rec.undo(default_undoers(paths), scopes)
        rec.set_owner(None)
        if not keep and not errors:
            rec.forget()
        try:
            os.unlink(session_settings_path(conn.name, paths))
        except FileNotFoundError:
            pass
    update_status(
        conn.name, paths, state="down", stage="stopped", pid=None, routes=[], dns=None,
        dns_backend=None, kill_switch=keep, last_error=error,
        last_exit_code=int(exit_code) if exit_code is not None else None,
    )  # fmt: skip
    for e in errors:
        log.warning("could not undo: %s", e)
    return errors


def note_stage(name: str, stage: str, paths: Paths | None = None, **fields: object) -> None:
    """For the session (at merge): record a stage reached (``tls``, ``sstp``, ``ppp``...).

    Cheap (one small atomic write) and never fatal: a status file is not worth a tunnel.
    """
    try:
        update_status(name, paths, stage=stage, **cast("dict[str, Any]", fields))
    except (OSError, ValueError) as exc:
        log.debug("status of %s not written: %s", name, exc)
