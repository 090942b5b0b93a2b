"""One session from TCP connect to exit: connecting, pppd in launch mode, and cleanup.

:class:`~sstp_pppd.tunnel.Tunnel` is the relay and its protocol glue; this adds the life
cycle around it: TCP (or a proxy), TLS and the HTTP exchange, starting and supervising
pppd, signals, and leaving nothing behind whatever the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

from ..core.errors import HttpError, SstpError
from ..core.handshake import ResponseParser, check_sstp_response, new_correlation_id, sstp_request
from ..errors import (
    AuthenticationError,
    Interrupted,
    PppdError,
    SstpPppdError,
    TlsError,
)
from ..logsetup import NOTICE
from .links import PtyLink, TlsLink
from .net import open_tcp, open_via_proxy, proxy_for
from .pppd import PPPD_AUTH_FAILED, PPPD_NORMAL, Pppd, describe_exit, find_pppd
from .tls import check_pins, describe_failure, make_context, server_hostname
from .tunnel import Tunnel

log = logging.getLogger("sstp_pppd")

T = TypeVar("T")

#: [MS-SSTP] 3.2.4.1: the client waits this long for the HTTP response.
HTTP_TIMEOUT = 60.0


class Session(Tunnel):
    """A Tunnel with its life cycle: ``await Session(config, lookup).run()``."""

    supervisor: asyncio.Task[None] | None = None

    async def connect(self, sock: Any) -> None:
        """TLS handshake on a connected socket, then the HTTP SSTP_DUPLEX_POST exchange."""
        cfg = self.config
        ctx = make_context(cfg)
        try:
            transport, link = await self.loop.create_connection(
                lambda: TlsLink(self),
                sock=sock,
                ssl=ctx,
                server_hostname=server_hostname(cfg),
                ssl_handshake_timeout=cfg.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                raise TlsError("TLS: the server did not complete the handshake in time") from exc
            raise TlsError(describe_failure(exc, cfg)) from exc
        self.tls = link
        ssl_obj = transport.get_extra_info("ssl_object")
        self.cert_der = ssl_obj.getpeercert(binary_form=True) or b""
        check_pins(self.cert_der, cfg.pins)
        log.log(
            NOTICE,
            "TLS established: %s, %s, certificate %s",
            ssl_obj.version(),
            ssl_obj.cipher()[0] if ssl_obj.cipher() else "?",
            "pinned" if cfg.pins else ("NOT verified" if cfg.insecure else "verified"),
        )
        guid = cfg.correlation_id or new_correlation_id(uuid.uuid4())
        parser = ResponseParser()
        link.http_parser = parser
        link.write(sstp_request(cfg.tls_name, guid))
        log.info("sent SSTP_DUPLEX_POST, correlation id %s", guid)
        try:
            response = await asyncio.wait_for(link.http_response, HTTP_TIMEOUT)
        except TimeoutError:
            raise HttpError(
                f"the server did not answer the HTTP request within {HTTP_TIMEOUT:.0f} s"
            ) from None
        for warning in check_sstp_response(response):
            log.warning("%s", warning)
        log.info("HTTP %d %s", response.status, response.reason)
        link.http_parser = None
        self.conn.start(self.loop.time())
        self.flush()
        if parser.trailing:
            self.from_server(parser.trailing)

    async def supervise_pppd(self, pppd: Pppd) -> None:
        status = await pppd.process.wait()
        log.info("%s", describe_exit(status))
        if status == PPPD_AUTH_FAILED or self.auth_failed:
            self.outcome = self.outcome or AuthenticationError(
                f"PPP authentication failed ({self.auth_failed or describe_exit(status)})"
            )
        elif status not in PPPD_NORMAL and not self.stopping:
            self.outcome = self.outcome or PppdError(describe_exit(status))
        elif not self.connected and not self.stopping:
            self.outcome = self.outcome or PppdError(
                f"{describe_exit(status)} before the tunnel was up"
            )
        self.stopping = True
        self.shutdown()

    async def run(self) -> None:
        """Drive the session until it ends; raise its outcome, if any."""
        cfg = self.config
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self.loop.add_signal_handler(signum, self.shutdown, signum)
        try:
            proxy = proxy_for(cfg)
            if proxy:
                opening = open_via_proxy(
                    proxy, cfg.server.host, cfg.server.port, cfg.connect_timeout
                )
            else:
                opening = open_tcp(cfg.server.host, cfg.server.port, cfg.connect_timeout)
            # Raced too, so that Ctrl-C during a slow connect does not wait for its timeout.
            sock = await self.race(opening)
            await self.race(self.connect(sock))
            if cfg.nolaunchpppd:
                self.pty = await PtyLink.open(self, os.dup(0), os.dup(1))
                await self.race(self.acked.wait())
            else:
                await self.race(self.acked.wait())
                self.pppd = await Pppd.start(
                    find_pppd(cfg.pppd),
                    user=cfg.user,
                    password=cfg.password,
                    ipparam=cfg.ipparam,
                    options=cfg.pppd_options,
                )
                master = self.pppd.take_master()
                self.pty = await PtyLink.open(self, master, os.dup(master))
                # Kept referenced: the loop holds tasks only weakly.
                self.supervisor = self.loop.create_task(self.supervise_pppd(self.pppd))
            self.start_relay()
            await self.done
        finally:
            await self.cleanup()
        if self.auth_failed and not isinstance(self.outcome, AuthenticationError):
            self.outcome = AuthenticationError(f"PPP authentication failed ({self.auth_failed})")
        if self.outcome is not None:
            raise self.outcome

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

    async def cleanup(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self.loop.remove_signal_handler(signum)
        if self._timer is not None:
            self._timer.cancel()
        if self.pty is not None:
            # Closing the master first hangs up pppd's line: a pppd still running here
            # has no link left, and would otherwise send LCP Terminate-Requests into the
            # void for two 3 s timeouts before it exits.
            self.pty.close()
        if self.pppd is not None:
            status = await self.pppd.stop()
            log.debug("pppd reaped: %s", describe_exit(status))
        if self.tls is not None:
            self.tls.close()
            await self.tls.closed_wait(2.0)
