"""The asyncio adapter around the sans-IO client: bytes between the links and the core.

Every protocol decision is made in :class:`~sstp_pppd.core.client.ClientConnection`;
this module only moves bytes between the TLS and pty links and the core, runs the one
timer the core asks for, turns the core's events into log lines, and tells its owner
(a :class:`TunnelOwner`, the session) what it has to act on. After every input,
:meth:`Tunnel.transmit` drains the core's bytes to TLS and re-arms the timer, the way
aioquic's asyncio protocol drives ``QuicConnection``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, assert_never

from ..core import hdlc
from ..core.client import (
    EARLY_FRAMES_MAX,
    BindingAccepted,
    CallConnected,
    CallEnded,
    ClientConnection,
    ClientEvent,
    FrameDropped,
    HttpAccepted,
    KeySource,
    LcpResent,
    Outcome,
)
from ..core.errors import HttpError
from ..core.events import ConnectAcked, ConnectionClosed, EchoRequested, PppFrames
from ..core.lcpauth import AuthNotAgreed
from ..core.messages import HashProtocol
from ..core.pppwatch import AuthFailed, AuthSucceeded
from ..diagnose import explain_auth_failure
from ..errors import (
    ConnectionLost,
    KeepaliveTimeout,
    ProtocolFailure,
    RemoteAbort,
    SstpPppdError,
)
from ..logsetup import NOTICE
from ..trace import PacketTrace
from .links import PtyLink, TlsLink

__all__ = ["Tunnel", "TunnelOwner", "outcome_error"]

log = logging.getLogger(__name__)

#: Launch mode: how long what the server sends may wait for pppd's first bytes.
PPPD_START_GRACE = 2.0


def outcome_error(end: CallEnded) -> SstpPppdError | HttpError | None:
    """The error a call's end is reported as (``None``: a clean end)."""
    match end.outcome:
        case Outcome.DISCONNECTED:
            return None
        case Outcome.SERVER_DISCONNECTED | Outcome.CONNECTION_LOST:
            return ConnectionLost(end.message)
        case Outcome.SERVER_ABORTED:
            return RemoteAbort(end.message, end.status or 0)
        case Outcome.PROTOCOL_ERROR | Outcome.UNFRAMEABLE:
            return ProtocolFailure(end.message)
        case Outcome.KEEPALIVE_EXPIRED:
            return KeepaliveTimeout(end.message)
        case Outcome.HTTP_FAILED:
            return HttpError(end.message, end.status)
        case _:
            assert_never(end.outcome)


class TunnelOwner(Protocol):
    """What the tunnel tells the one who runs it (and records the outcome)."""

    def call_acked(self) -> None:
        """The server acknowledged the call: PPP may start."""

    def call_up(self) -> None:
        """CALL_CONNECTED is sent: the tunnel is up."""

    def auth_failed(self, message: str) -> None:
        """PPP authentication failed (pppd will end the link): ``message`` is the error."""

    def end(self, error: BaseException | None) -> None:
        """The session is over, with this error or none; the first call counts."""

    def pppd_gone(self) -> None:
        """pppd closed its line (pty mode) or exited (launch mode)."""


class Tunnel:
    """One SSTP session's relay: the links, the client core and its timer."""

    def __init__(self, owner: TunnelOwner, client: ClientConnection) -> None:
        self.owner = owner
        self.client = client
        self.loop = asyncio.get_running_loop()
        # pppd's HDLC stream straight to SSTP data packets, one call per batch read.
        self.decoder = hdlc.PacketDecoder()
        self._too_big = 0
        # Launch mode: bytes for pppd wait until it has spoken (hold_until_pppd_speaks).
        self._for_pppd: list[bytes] | None = None
        self.tls: TlsLink | None = None
        self.pty: PtyLink | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        debug = log.isEnabledFor(logging.DEBUG)
        self._trace_in = PacketTrace(log, "<-") if debug else None
        self._trace_out = PacketTrace(log, "->") if debug else None
        self._sstp_in = False  # the HTTP head is behind us: trace what comes in
        self._server_silent = False  # the keepalive gave up: abort TLS, do not close it

    # ----- set-up ------------------------------------------------------------------------

    def tls_protocol(self) -> TlsLink:
        """The protocol for ``loop.create_connection``: the TLS link, owned by this tunnel."""
        self.tls = TlsLink(self)
        return self.tls

    def start(self, server_cert: bytes) -> None:
        """TLS is up: send the HTTP request."""
        self.client.start(server_cert, self.loop.time())
        self.transmit()

    async def open_pty(self, read_fd: int, write_fd: int) -> None:
        """Attach pppd's line; the two links become each other's backpressure peer."""
        if self.tls is None:
            raise RuntimeError("open_pty() before the TLS link")
        # Known to the tunnel before it reads: what pppd sends may be answered at once.
        self.pty = PtyLink(self, self.tls)
        self.tls.peer = self.pty
        await self.pty.open(read_fd, write_fd)
        if self._for_pppd is not None:
            # A pppd that waits for the peer to speak first (`silent`, `passive`) never
            # speaks: do not wait for it longer than its start can take.
            self.loop.call_later(PPPD_START_GRACE, self.release_for_pppd)

    def hold_until_pppd_speaks(self) -> None:
        """Keep what the server sends pppd until pppd's first bytes arrive (launch mode).

        pppd sets its line up with ``tcsetattr(TCSAFLUSH)`` at start, which discards
        unread input: a server that sends its LCP Configure-Request right after
        CALL_CONNECT_ACK would otherwise cost PPP its 3 s restart timer. A pppd that
        waits for the peer (``silent``) gets it :data:`PPPD_START_GRACE` after its start.
        """
        self._for_pppd = []

    # ----- the core's inputs -------------------------------------------------------------

    def from_server(self, data: bytes) -> None:
        """Bytes from TLS: through the core, PPP frames on to pppd."""
        if self._trace_in is not None and self._sstp_in:
            self._trace_in.feed(data)
        stream, events = self.client.receive_stream(data, self.loop.time())
        if stream:
            self.to_pppd(stream)
        if events:
            self.handle(events)
        self.transmit()

    def from_pppd(self, data: bytes) -> None:
        if self._for_pppd is not None:
            # pppd has spoken, so its line is set up: what waited for it can go.
            self.release_for_pppd()
        packets = self.decoder.feed(data)
        if self.decoder.too_big != self._too_big:
            self._too_big = self.decoder.too_big
            # pppd's MRU above what SSTP carries: that frame only, not the rest.
            log.warning("frame from pppd dropped: longer than SSTP carries (4091 bytes)")
        if packets:
            events = self.client.packets_from_pppd(packets, self.loop.time())
            if events:
                self.handle(events)
            self.transmit()

    def server_lost(self, exc: Exception | None) -> None:
        reason = str(exc) if exc else ""
        self.handle(self.client.connection_lost(self.loop.time(), reason))
        self.owner.end(None)

    def pppd_gone(self) -> None:
        self.owner.pppd_gone()

    def keys_received(self, send_key: bytes, recv_key: bytes) -> None:
        """Keys from pppd (the plugin's key channel): the core decides what they bind."""
        self.handle(self.client.keys_received(send_key, recv_key, self.loop.time()))
        self.transmit()

    def expect_close(self) -> None:
        """We are ending the call: what the server does from now on is no failure."""
        self.client.expect_close()

    def disconnect(self) -> None:
        """Say goodbye to the server (or close at once if there is no call to end)."""
        self.handle(self.client.disconnect(self.loop.time()))
        self.transmit()

    def on_timer(self) -> None:
        self._timer = None
        self._deadline = None
        self.handle(self.client.handle_timer(self.loop.time()))
        self.transmit()

    # ----- the core's outputs ------------------------------------------------------------

    def transmit(self) -> None:
        """Drain the core's bytes to TLS and re-arm the one timer it asks for."""
        data = self.client.data_to_send()
        if data and self.tls is not None:
            self.tls.write(data)
            # Before the HTTP 200 all that goes out is the HTTP request: no SSTP to decode.
            if self._trace_out is not None and self._sstp_in:
                self._trace_out.feed(data)
        deadline = self.client.next_deadline()
        armed = self._deadline
        if deadline == armed:
            return
        if self._timer is not None:
            if deadline is not None and armed is not None and deadline > armed:
                # The hello timer moves on with every packet received: cancelling and
                # re-arming per packet cost more than the packet's relay. The armed timer
                # fires early instead, finds nothing due, and is armed for what is.
                return
            self._timer.cancel()
            self._timer = None
        self._deadline = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self.on_timer)

    def handle(self, events: list[ClientEvent]) -> None:
        for event in events:
            match event:
                case PppFrames(frames=frames):
                    self.to_pppd(hdlc.encode_frames(frames))
                case HttpAccepted(status=status, reason=reason, warnings=warnings):
                    for warning in warnings:
                        log.warning("%s", warning)
                    log.info("HTTP %d %s", status, reason)
                    self._sstp_in = True
                    if self._trace_in is not None and event.trailing:
                        self._trace_in.feed(event.trailing)
                case ConnectAcked(hash_protocol=hash_protocol):
                    log.log(
                        NOTICE,
                        "SSTP call accepted by the server (binding hash %s)",
                        "SHA-256"
                        if hash_protocol == HashProtocol.CERT_HASH_PROTOCOL_SHA256
                        else "SHA-1",
                    )
                    self.owner.call_acked()
                case EchoRequested():
                    log.debug("echo request from the server answered")
                case FrameDropped(reason=reason):
                    # pppd's MRU above what SSTP carries: that frame only, not the rest.
                    log.warning("frame from pppd dropped: %s", reason)
                case AuthSucceeded(method=method):
                    log.log(NOTICE, "PPP authentication succeeded (%s)", method)
                case AuthFailed(method=method, message=message):
                    explanation = explain_auth_failure(method, message)
                    log.error("PPP authentication failed (%s)", explanation)
                    self.owner.auth_failed(f"PPP authentication failed ({explanation})")
                case AuthNotAgreed(message=message):
                    # The cause of the ending that follows; the error line comes at exit.
                    log.debug("LCP agreed on no authentication method (reported at exit)")
                    self.owner.auth_failed(message)
                case LcpResent(identifier=identifier, after=after, server_asked=asked):
                    # Not pppd's own retry: the server (starting its pppd?) may have lost it.
                    if asked:
                        log.info(
                            "the server asked first, with no answer to pppd's LCP "
                            "Configure-Request id %d: sent it again",
                            identifier,
                        )
                    else:
                        log.info(
                            "no answer to pppd's LCP Configure-Request id %d in %.1f s: "
                            "sent it again",
                            identifier,
                            after,
                        )
                case CallConnected():
                    self.call_connected(event)
                case BindingAccepted():
                    log.log(NOTICE, "crypto binding accepted: the server passes IP traffic")
                case CallEnded():
                    error = outcome_error(event)
                    if event.outcome is Outcome.KEEPALIVE_EXPIRED:
                        # The server does not answer: a TLS close would wait (up to the
                        # 2 s of close_tls) for a close_notify that cannot come.
                        self._server_silent = True
                    if error is None:
                        log.log(NOTICE, "%s", event.message)
                    else:
                        self.owner.end(error)
                case ConnectionClosed():
                    if self.tls is not None:
                        if self._server_silent:
                            self.tls.abort()
                        else:
                            self.tls.close()
                    self.owner.end(None)
                case _:
                    assert_never(event)

    def release_for_pppd(self) -> None:
        """Stop holding: write what waited for pppd (see :meth:`hold_until_pppd_speaks`)."""
        held, self._for_pppd = self._for_pppd, None
        if held and self.pty is not None:
            self.pty.write(b"".join(held))

    def to_pppd(self, data: bytes) -> None:
        """HDLC bytes for pppd: written, or held until pppd has spoken (bounded)."""
        held = self._for_pppd
        if held is not None:
            if len(held) < EARLY_FRAMES_MAX:
                held.append(data)
        elif self.pty is not None:
            self.pty.write(data)

    def call_connected(self, event: CallConnected) -> None:
        if event.key_source is KeySource.ZERO:
            log.warning(
                "%s succeeded but its keys are unknown (%s): the crypto binding uses a "
                "zero key, which a verifying server rejects",
                event.method,
                event.why_unknown,
            )
        # Out now, before the Success frame that follows it reaches pppd.
        self.transmit()
        log.log(
            NOTICE, "SSTP call connected: crypto binding sent (keys: %s)", event.key_source.value
        )
        self.owner.call_up()

    # ----- the end -----------------------------------------------------------------------

    def hang_up(self) -> None:
        """Stop the timer and hang up pppd's line."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.pty is not None:
            # Closing the master first hangs up pppd's line: a pppd still running here
            # has no link left, and would otherwise send LCP Terminate-Requests into the
            # void for two 3 s timeouts before it exits.
            self.pty.close()

    async def close_tls(self) -> None:
        """Close TLS, waiting a little for the close to complete."""
        if self.tls is not None:
            self.tls.close()
            await self.tls.closed_wait(2.0)
