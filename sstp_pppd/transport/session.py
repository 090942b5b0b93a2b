"""One session from TCP connect to exit: connecting, pppd in launch mode, and cleanup.

A :class:`Session` runs a :class:`~.tunnel.Tunnel` (the relay around the sans-IO
client) and adds the life cycle around it: TCP (or a proxy), TLS, starting and
supervising pppd, signals, and leaving nothing behind whatever the outcome. It is the
one place that records how the session ends (:meth:`Session.record`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..config import Config
from ..core.client import KEY_WAIT, ClientConnection
from ..core.errors import SstpError
from ..core.handshake import random_correlation_id
from ..core.pppwatch import PasswordLookup
from ..errors import (
    AuthenticationError,
    Interrupted,
    PppdError,
    SstpPppdError,
    TlsError,
)
from ..logsetup import NOTICE
from ..pppdopts import loads_key_plugin
from ..secrets import pppd_options
from .keychannel import KeyChannel, keys_plugin_options, open_channel
from .net import open_tcp, open_via_proxy, proxy_for
from .pppd import PPPD_AUTH_FAILED, PPPD_NORMAL, Pppd, describe_exit, find_pppd
from .privsep import Cleanup, Keeper
from .tls import check_pins, describe_failure, make_context, server_hostname
from .tunnel import Tunnel

__all__ = ["Session"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Session:
    """``await Session(config, lookup).run()``: raises how the session ended, if not well."""

    def __init__(
        self,
        config: Config,
        password_lookup: PasswordLookup,
        *,
        drop_privileges: Callable[[str | None, str | None], None] | None = None,
        privileged_cleanup: Cleanup | None = None,
        on_stage: Callable[..., None] | None = None,
    ) -> None:
        self.config = config
        #: Given by the caller (host/privileges.py): transport/ never imports host/.
        self._drop_privileges = drop_privileges
        #: Launch mode, privileges dropped: what the privileged part does at the end (the
        #: host undo), after pppd is gone and the key socket removed (see privsep.py).
        self._privileged_cleanup = privileged_cleanup
        #: The privileged part, once forked (launch mode with --priv-user/--priv-group).
        self.keeper: Keeper | None = None
        #: ``on_stage(stage, **fields)`` at each stage reached ("tls", "sstp", "ppp",
        #: "binding"), for sstp-helper's status file; given by the caller too.
        self._on_stage = on_stage
        self.loop = asyncio.get_running_loop()
        self.correlation_id = config.correlation_id or random_correlation_id(os.urandom(16))
        self.client = ClientConnection(
            host=config.tls.name,
            correlation_id=self.correlation_id,
            password_lookup=password_lookup,
            hello_interval=config.hello_interval,
            negotiation_timeout=config.negotiation_timeout,
            # Without a key socket nothing can hand keys in: waiting would only delay.
            key_wait=KEY_WAIT if config.pppd.key_socket else 0.0,
        )
        self.tunnel = Tunnel(self, self.client)
        self.pppd: Pppd | None = None
        self.supervisor: asyncio.Task[None] | None = None
        self.acked = asyncio.Event()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.outcome: BaseException | None = None
        self.auth_failure: str | None = None
        self.stopping = False
        self.keys: KeyChannel | None = None
        #: The TLS peer (the server, or the proxy): the key channel's answer to ADDR.
        self.server_peer: tuple[Any, ...] | None = None

    # ----- the outcome: recorded here and nowhere else -------------------------------------

    def record(self, error: BaseException | None) -> None:
        """Keep ``error`` as the outcome unless one is known already (the first wins)."""
        if self.outcome is None and error is not None:
            self.outcome = error

    def result(self) -> BaseException | None:
        """The outcome; a refused login wins over what it caused (the server hanging up)."""
        if self.auth_failure and not isinstance(self.outcome, AuthenticationError):
            return AuthenticationError(self.auth_failure)
        return self.outcome

    # ----- what the tunnel tells us (TunnelOwner) ----------------------------------------

    def end(self, error: BaseException | None) -> None:
        # Once the session is over, later reasons are consequences, not causes.
        if not self.done.done():
            self.record(error)
            self.done.set_result(None)

    def stage(self, stage: str, **fields: object) -> None:
        if self._on_stage is not None:
            self._on_stage(stage, **fields)

    def call_acked(self) -> None:
        self.acked.set()
        self.stage("ppp")

    def call_up(self) -> None:
        self.stage("binding")
        pppd = self.config.pppd
        if self._drop_privileges is not None and (pppd.priv_user or pppd.priv_group):
            try:
                if self.pppd is not None:
                    self.split_privileges(self.pppd)
                self._drop_privileges(pppd.priv_user, pppd.priv_group)
            except (SstpPppdError, OSError) as exc:
                # Fail closed: no tunnel stays up as root after being asked not to be.
                self.end(exc if isinstance(exc, SstpPppdError) else PppdError(str(exc)))

    def split_privileges(self, pppd: Pppd) -> None:
        """Launch mode: fork the privileged part that keeps pppd, before root is given up."""
        keys = self.keys

        def remove_key_socket(_outcome: object) -> None:
            if keys is not None:
                keys.hand_over_removal()()

        cleanups: list[Cleanup] = [remove_key_socket]
        if self._privileged_cleanup is not None:
            cleanups.append(self._privileged_cleanup)
        try:
            self.keeper = Keeper.fork(pppd.pid, cleanups)
        except OSError as exc:
            raise PppdError(f"cannot start the privileged part: {exc.strerror or exc}") from exc
        if keys is not None:
            keys.hand_over_removal()  # the keeper removes it
        pppd.signaller = self.keeper.signal

    def auth_failed(self, message: str) -> None:
        if self.auth_failure is None:  # the first cause wins
            self.auth_failure = message

    def pppd_gone(self) -> None:
        if not self.stopping:
            log.info("pppd ended the link")
            if self.config.nolaunchpppd and not self.acked.is_set():
                # pty mode, before the ACK: exit 8, not race()'s "interrupted" (no signal).
                self.record(PppdError("pppd hung up its line before the call was accepted"))
            elif self.config.nolaunchpppd and not self.client.call_connected:
                # After the ACK but before CALL_CONNECTED: PPP never came up (LCP gave up,
                # or pppd refused the peer). Exit 8 as in launch mode, never a clean 0; a
                # refused login found on the way (auth_failed) still wins in result().
                self.record(PppdError("pppd hung up its line before the tunnel was up"))
        self.shutdown()

    # ----- the life cycle ------------------------------------------------------------------

    async def connect(self, sock: Any) -> None:
        """TLS handshake on a connected socket, then the HTTP SSTP_DUPLEX_POST request."""
        cfg = self.config
        ctx = make_context(cfg)
        link = self.tunnel.tls_protocol()
        try:
            # bytes are fine for ssl: see server_hostname().
            tls = ctx.wrap_socket(
                sock,
                server_hostname=server_hostname(cfg),
                do_handshake_on_connect=False,
            )
        except OSError as exc:
            sock.close()
            raise TlsError(describe_failure(exc, cfg)) from exc
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                await link.handshake(tls)
        except (OSError, TimeoutError) as exc:
            tls.close()
            if isinstance(exc, TimeoutError):
                raise TlsError("TLS: the server did not complete the handshake in time") from exc
            raise TlsError(describe_failure(exc, cfg)) from exc
        except BaseException:
            tls.close()  # cancelled (a signal): leave no socket behind
            raise
        self.server_peer = link.peername()
        cert_der = tls.getpeercert(binary_form=True) or b""
        check_pins(cert_der, cfg.tls.pins)
        log.log(
            NOTICE,
            "TLS established: %s, %s, certificate %s",
            tls.version(),
            cipher[0] if (cipher := tls.cipher()) else "?",
            "pinned" if cfg.tls.pins else ("NOT verified" if cfg.tls.insecure else "verified"),
        )
        self.stage("sstp")
        if cfg.nolaunchpppd:
            # pppd's line is open before the request goes out: a server may send its
            # first PPP frame right behind CALL_CONNECT_ACK, and it must find the line.
            await self.tunnel.open_pty(os.dup(0), os.dup(1))
        else:
            # pppd starts after the ACK; its TCSAFLUSH would discard what came first.
            self.tunnel.hold_until_pppd_speaks()
        self.tunnel.start(cert_der)
        log.info("sent SSTP_DUPLEX_POST, correlation id %s", self.correlation_id)

    async def supervise_pppd(self, pppd: Pppd) -> None:
        status = await pppd.process.wait()
        log.info("%s", describe_exit(status))
        if status == PPPD_AUTH_FAILED or self.auth_failure:
            self.record(
                AuthenticationError(
                    self.auth_failure or f"PPP authentication failed ({describe_exit(status)})"
                )
            )
        elif status not in PPPD_NORMAL and not self.stopping:
            self.record(PppdError(describe_exit(status)))
        elif not self.client.call_connected and not self.stopping:
            self.record(PppdError(f"{describe_exit(status)} before the tunnel was up"))
        self.stopping = True
        self.shutdown()

    async def run(self) -> None:
        """Drive the session until it ends; raise its outcome, if any."""
        cfg = self.config
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self.loop.add_signal_handler(signum, self.shutdown, signum)
        try:
            # Open before connecting: the plugin's keys (at auth-up) and NetworkManager's
            # gateway query (at ip-up) must find it whatever the timing.
            self.keys = await open_channel(
                cfg.pppd.key_socket,
                on_keys=self.tunnel.keys_received,
                gateway=cfg.server.host,
                peer=lambda: self.server_peer,
                priv_user=cfg.pppd.priv_user,
            )
            if self.keys and cfg.nolaunchpppd and loads_key_plugin(pppd_options(None)):
                # pppd (our parent) loads a key plugin: its keys win over the password's.
                self.client.expect_plugin_keys()
            proxy = proxy_for(cfg)
            if proxy:
                opening = open_via_proxy(
                    proxy, cfg.server.host, cfg.server.port, cfg.connect_timeout
                )
            else:
                opening = open_tcp(cfg.server.host, cfg.server.port, cfg.connect_timeout)
            # Raced too, so that Ctrl-C during a slow connect does not wait for its timeout.
            sock = await self.race(opening)
            try:
                peer = sock.getpeername()[0]
            except (OSError, IndexError):
                peer = None
            self.stage("tls", server_address=peer)
            await self.race(self.connect(sock))
            if cfg.nolaunchpppd:
                # pppd is already talking: what it sends before the ACK is held by the core.
                await self.race(self.acked.wait())
            else:
                await self.race(self.acked.wait())
                # Only now, not during the handshake (bench/README.md, "pppd started before
                # the ACK"): an early pppd's LCP request would go out with the ACK, where
                # sstp-server 0.7.2 loses it (PPP then waits for the early copy or its 3 s
                # restart), and in a one-CPU guest the overlap won nothing. A failure before
                # the ACK leaves no pppd to stop, either.
                pppd = find_pppd(cfg.pppd.path)
                plugin = await keys_plugin_options(pppd, cfg.pppd.key_socket) if self.keys else ()
                if plugin:
                    self.client.expect_plugin_keys()
                self.pppd = await Pppd.start(
                    pppd,
                    user=cfg.pppd.user,
                    password=cfg.pppd.password,
                    ipparam=cfg.pppd.ipparam,
                    options=(*plugin, *cfg.pppd.options),
                )
                master = self.pppd.take_master()
                await self.tunnel.open_pty(master, os.dup(master))
                # Kept referenced: the loop holds tasks only weakly.
                self.supervisor = self.loop.create_task(self.supervise_pppd(self.pppd))
            await self.done
        finally:
            await self.cleanup()
        outcome = self.result()
        if outcome is not None:
            raise outcome

    async def race(self, aw: Awaitable[T]) -> T:
        """Await ``aw`` unless the session ends first (a signal, a fatal event)."""
        task = asyncio.ensure_future(aw)
        waiters: set[asyncio.Future[Any]] = {task, self.done}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, SstpPppdError, SstpError, OSError):
            await task
        if self.outcome is not None:
            raise self.outcome
        raise Interrupted("interrupted")

    def shutdown(self, signum: int | None = None) -> None:
        """Graceful end: stop pppd (launch mode), then CALL_DISCONNECT and wait for the ACK."""
        if signum is not None:
            if self.stopping:
                log.warning("second signal: closing at once")
                self.end(Interrupted("interrupted"))
                return
            log.log(NOTICE, "signal %s: disconnecting", signal.Signals(signum).name)
            if not self.client.call_connected:
                self.record(Interrupted("interrupted before the tunnel was up"))
        self.stopping = True
        self.tunnel.expect_close()
        if self.pppd is not None and self.pppd.process.returncode is None:
            # pppd sends LCP Terminate through us and exits; supervise_pppd() goes on.
            # A pppd that ignores it is killed after STOP_GRACE (Pppd.terminate).
            self.pppd.terminate()
            return
        self.tunnel.disconnect()

    async def cleanup(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self.loop.remove_signal_handler(signum)
        self.tunnel.hang_up()
        if self.pppd is not None:
            status = await self.pppd.stop()
            log.debug("pppd reaped: %s", describe_exit(status))
        await self.tunnel.close_tls()
        if self.keys is not None:
            await self.keys.close()
