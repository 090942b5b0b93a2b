"""The SSTP client as one sans-IO object: HTTP head, SSTP call, PPP policy, outcome.

:class:`ClientConnection` composes, the way wsproto's ``WSConnection`` composes its
handshake and connection, the HTTP phase (:mod:`.httpphase`), the SSTP state machine
(:mod:`.connection`), the call's set-up up to CALL_CONNECTED (:mod:`.callsetup`, its
keys from :mod:`.keywait`), the authentication watching (:mod:`.authwatch`) and the
early LCP copy (:mod:`.lcpnudge`). One :meth:`~ClientConnection.receive_data` takes the
server's bytes from the first byte of the HTTP response on; the asyncio side only moves
bytes and runs the one timer :meth:`~ClientConnection.next_deadline` asks for.

The decisions it owns, each a rule of its own:

1. Frames pppd sends before the server acknowledged the call are held, up to
   :data:`EARLY_FRAMES_MAX`, and sent in order right after the CALL_CONNECT_ACK: a lost
   first LCP Configure-Request would cost pppd's 3 s restart timer.
2. On the watcher's success verdict CALL_CONNECTED goes out at once, before the frame
   that carried the verdict is relayed on, so no NCP frame of pppd can precede it. Its
   keys are :mod:`.keywait`'s choice: the pppd plugin's, else the password's, else zeros.
3. While :mod:`.keywait` waits for the plugin's keys, CALL_CONNECTED is held, and
   pppd's frames with it.
4. The first network-layer frame from the server after CALL_CONNECTED shows that it
   accepted the binding (:class:`BindingAccepted`).
5. How the call ended is a value, :class:`CallEnded` with an :class:`Outcome`: no exit
   codes here. What the server does after :meth:`~ClientConnection.expect_close` is no
   failure.
6. pppd's LCP Configure-Request that went out after the ACK is sent once more, early,
   while the server has not answered it (:mod:`.lcpnudge`): (a) when the server is
   silent, or (b) when its first frame is its own LCP Configure-Request, then right
   ahead of pppd's answer to it.
"""

from __future__ import annotations

from typing import assert_never

from . import hdlc
from .authwatch import AuthWatch, network_layer
from .callsetup import EARLY_FRAMES_MAX, CallSetup, send_copy
from .client_events import (
    BindingAccepted,
    CallConnected,
    CallEnded,
    ClientEvent,
    FrameDropped,
    HttpAccepted,
    KeySource,
    Outcome,
    ended,
    ended_by_loss,
)
from .connection import Connection, State
from .errors import ProtocolError, UsageError
from .events import (
    Aborted,
    ConnectAcked,
    ConnectionClosed,
    Disconnected,
    EchoRequested,
    Event,
    KeepaliveExpired,
    PppFrames,
)
from .httpphase import HTTP_TIMEOUT, HttpPhase
from .keywait import KEY_WAIT, Binding
from .lcpauth import AuthNotAgreed
from .lcpnudge import NUDGE_DELAY, LcpNudge, LcpResent
from .pppwatch import AuthEvent, AuthFailed, PasswordLookup

__all__ = [
    "EARLY_FRAMES_MAX",
    "HTTP_TIMEOUT",
    "KEY_WAIT",
    "BindingAccepted",
    "CallConnected",
    "CallEnded",
    "ClientConnection",
    "ClientEvent",
    "FrameDropped",
    "HttpAccepted",
    "KeySource",
    "LcpResent",
    "Outcome",
]


class ClientConnection:
    """One SSTP client session after TLS: ``start``, then feed bytes, frames and time.

    After every call, write :meth:`data_to_send` to the server and re-arm one timer
    for :meth:`next_deadline`. Nothing the server sends raises; only misuse does
    (:class:`~.errors.UsageError`).
    """

    def __init__(
        self,
        *,
        host: str,
        correlation_id: str,
        password_lookup: PasswordLookup | None = None,
        hello_interval: float = 60.0,
        negotiation_timeout: float = 60.0,
        http_timeout: float = HTTP_TIMEOUT,
        key_wait: float = KEY_WAIT,
        lcp_nudge: float | None = NUDGE_DELAY,
    ) -> None:
        self._conn = Connection(
            hello_interval=hello_interval, negotiation_timeout=negotiation_timeout
        )
        #: Until the server's 200 (then the SSTP machine reads the stream).
        self._http: HttpPhase | None = HttpPhase(host, correlation_id, http_timeout)
        self._out = bytearray()
        #: Until the binding is accepted (then nothing is left to watch).
        self._auth: AuthWatch | None = AuthWatch(password_lookup)
        #: Until CALL_CONNECTED is sent (then frames go out and the keys are spent).
        self._setup: CallSetup | None = CallSetup(self._conn, key_wait)
        self._connected = False
        self._binding_accepted = False
        self._closing = False
        #: Rule 6, while it may still fire (``lcp_nudge=None``: never).
        self._nudge: LcpNudge | None = LcpNudge(lcp_nudge) if lcp_nudge is not None else None

    # ----- what the owner may ask ---------------------------------------------------------

    @property
    def state(self) -> State:
        """The SSTP machine's state (``CLIENT_CALL_DISCONNECTED`` during HTTP)."""
        return self._conn.state

    @property
    def call_connected(self) -> bool:
        """CALL_CONNECTED has been sent: the tunnel is up."""
        return self._connected

    @property
    def binding_accepted(self) -> bool:
        return self._binding_accepted

    def data_to_send(self) -> bytes:
        """Return and forget the bytes queued for the server."""
        if self._out:
            data = bytes(self._out) + self._conn.data_to_send()
            self._out.clear()
            return data
        return self._conn.data_to_send()

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` is next due, or ``None``."""
        deadline = self._conn.next_deadline()
        http, setup, nudge = self._http, self._setup, self._nudge
        if http is None and setup is None and nudge is None:
            return deadline  # after the HTTP phase and CALL_CONNECTED: called per batch
        parts = (http, setup.keys if setup is not None else None, nudge)
        deadlines = (deadline, *(p.deadline for p in parts if p is not None))
        return min((d for d in deadlines if d is not None), default=None)

    # ----- inputs --------------------------------------------------------------------------

    def start(self, server_cert: bytes, now: float) -> None:
        """TLS is up with ``server_cert`` (DER): queue the SSTP_DUPLEX_POST request."""
        http = self._http
        if http is None:
            raise UsageError("start() twice")
        self._out += http.start(now)
        if self._setup is not None:
            self._setup.tls_up(server_cert)

    def receive_data(self, data: bytes, now: float) -> list[ClientEvent]:
        """Bytes from the server: the HTTP response head, then the SSTP stream."""
        if self._http is not None:
            return self._receive_http(self._http, data, now)
        events = self._conn.receive_data(data, now)
        if self._binding_accepted and len(events) == 1:
            # The hot path: one batch of frames once authentication and binding are
            # settled (both imply the watcher is gone); nothing to decide.
            first = events[0]
            if type(first) is PppFrames:
                return [first]
        return self._digest(events, now)

    def frames_from_pppd(self, frames: list[bytes], now: float) -> list[ClientEvent]:
        """Whole PPP frames pppd wrote, in order: sent, or held while they cannot be."""
        setup = self._setup
        if setup is not None and setup.hold(frames):
            return []
        # Rule 6's copy, if it waits for these frames, goes ahead of them.
        nudge = self._nudge
        events = self._nudged(nudge, nudge.relayed(frames, now)) if nudge is not None else []
        auth = self._auth
        if auth is not None:
            # Frames held after the watcher's verdict come here again: the tracker's view
            # of a frame seen twice is the same (the first refusal, the first ending count).
            events += auth.lcp_frames(frames, from_pppd=True)
            if auth.watching:
                return events + self._send_watched(auth, frames, now)
        send = self._conn.send_ppp_frame
        for frame in frames:
            try:
                send(frame)
            except ProtocolError as exc:
                events.append(FrameDropped(length=len(frame), reason=str(exc)))
            except UsageError:
                break  # the call is ending: pppd's frames have nowhere to go
        return events

    def packets_from_pppd(self, packets: bytes, now: float) -> list[ClientEvent]:
        """pppd's frames as consecutive SSTP data packets (``hdlc.PacketDecoder`` output).

        The relay's batch path: once no frame is held and nothing watches them, the
        batch is queued as it is, with no Python object per frame; until then it goes
        through :meth:`frames_from_pppd` frame by frame.
        """
        if (
            (self._setup is not None and self._setup.held is not None)
            or self._nudge is not None
            or (self._auth is not None and self._auth.needs_frames(packets))
        ):
            return self.frames_from_pppd(hdlc.split_packets(packets), now)
        try:
            self._conn.send_data_packets(packets)
        except UsageError:
            pass  # the call is ending: pppd's frames have nowhere to go
        return []

    def receive_stream(self, data: bytes, now: float) -> tuple[bytes, list[ClientEvent]]:
        """:meth:`receive_data`, with the frames for pppd as one RFC 1662 stream first.

        Once the binding is accepted (nothing left to watch), the data packets that lead
        ``data`` come back HDLC-encoded (full ACCM) in one ``bytes``, built in C when the
        accelerator is there; the events of the rest follow, their ``PppFrames`` after
        the stream. Before that, the stream is empty and this is :meth:`receive_data`.
        """
        if self._http is not None or not self._binding_accepted:
            return b"", self.receive_data(data, now)
        stream, events = self._conn.receive_hdlc(data, now)
        if not events:
            return stream, []
        first = events[0]
        if len(events) == 1 and type(first) is PppFrames:
            return stream, [first]
        return stream, self._digest(events, now)

    def expect_plugin_keys(self) -> None:
        """pppd loads a plugin that sends the keys: on the auth verdict, wait up to
        ``key_wait`` for them even when the password gives keys too (:mod:`.keywait`)."""
        if self._setup is not None:
            self._setup.keys.expect_plugin_keys()

    def keys_received(self, send_key: bytes, recv_key: bytes, now: float) -> list[ClientEvent]:
        """Keys from pppd (the plugin): MS-CHAPv2's send and receive keys, or an MSK
        (see :func:`.crypto.hlak`). Kept if authentication is not over yet; ignored once
        CALL_CONNECTED is sent."""
        setup = self._setup
        if setup is None:
            return []
        binding = setup.keys.keys_received(send_key, recv_key)
        return self._connect(binding, now) if binding is not None else []

    def handle_timer(self, now: float) -> list[ClientEvent]:
        """Run whatever is due at ``now``."""
        events: list[ClientEvent] = []
        if self._http is not None:
            events += self._http.due(now)
        binding = self._setup.keys.due(now) if self._setup is not None else None
        if binding is not None:
            events += self._connect(binding, now)
        nudge = self._nudge
        if nudge is not None:
            events += self._nudged(nudge, nudge.due(now))
        deadline = self._conn.next_deadline()
        if deadline is not None and deadline <= now:
            events += self._digest(self._conn.handle_timer(now), now)
        return events

    def connection_lost(self, now: float, reason: str = "") -> list[ClientEvent]:
        """The transport ended; ``reason``: what the OS said, if anything."""
        if self._http is not None:
            return self._http.connection_lost()
        self._nudge = None
        events: list[ClientEvent] = (
            [] if self._closing else [*self._lcp_ended(), ended_by_loss(reason)]
        )
        return events + self._digest(self._conn.connection_lost(now), now)

    def expect_close(self) -> None:
        """We are ending the call (pppd stops, a signal): the server's goodbye is no failure."""
        self._closing = True
        self._nudge = None

    def disconnect(self, now: float) -> list[ClientEvent]:
        """Say goodbye (CALL_DISCONNECT, then wait for the ACK); implies :meth:`expect_close`.

        ``[ConnectionClosed()]`` when there is nothing to say goodbye to (the call never
        started, or has ended): close the transport.
        """
        self._closing = True
        self._nudge = None
        if self._http is not None:
            self._http.close()
            return [ConnectionClosed()]
        try:
            self._conn.disconnect(now)
        except UsageError:
            return [ConnectionClosed()]
        return []

    # ----- the SSTP machine's events -------------------------------------------------------

    def _receive_http(self, http: HttpPhase, data: bytes, now: float) -> list[ClientEvent]:
        events = http.receive(data)
        if http.accepted:
            self._http = None
            self._conn.start(now)
            if http.trailing:
                events += self._digest(self._conn.receive_data(http.trailing, now), now)
        return events

    def _digest(self, events: list[Event], now: float) -> list[ClientEvent]:
        out: list[ClientEvent] = []
        for event in events:
            match event:
                case PppFrames(frames=frames):
                    nudge = self._nudge
                    if nudge is not None:
                        nudge.server_frames(frames)
                        self._nudged(nudge, None)  # done when pppd's timers will do
                    auth = self._auth
                    if auth is not None:
                        out += auth.lcp_frames(frames, from_pppd=False)
                        verdict = auth.from_server(frames)
                        if verdict is not None:
                            out += self._verdict(verdict, now)
                    if self._connected and not self._binding_accepted and network_layer(frames):
                        self._binding_accepted = True
                        self._auth = None  # the link works: nothing to explain
                        out.append(BindingAccepted())
                    out.append(event)
                case ConnectAcked(hash_protocol=hash_protocol):
                    out.append(event)
                    held = self._setup.acked(hash_protocol) if self._setup is not None else []
                    if held:
                        out += self.frames_from_pppd(held, now)
                case EchoRequested() | ConnectionClosed():
                    out.append(event)
                case Disconnected() | Aborted() | KeepaliveExpired():
                    self._nudge = None
                    out += self._lcp_ended()
                    out.append(ended(event, asked=self._closing, bound=self._connected))
                case _:
                    assert_never(event)
        return out

    def _lcp_ended(self) -> list[AuthNotAgreed]:
        auth = self._auth
        return auth.link_ended(closing=self._closing) if auth is not None else []

    # ----- rule 6: the early copy of pppd's unanswered LCP request (lcpnudge) ---------------

    def _nudged(self, nudge: LcpNudge, due: tuple[bytes, LcpResent] | None) -> list[ClientEvent]:
        """After asking ``nudge``: drop it once done (off the batch path's way), send its copy."""
        if nudge.done:
            self._nudge = None
        return send_copy(self._conn, due) if due is not None else []

    # ----- authentication and the binding ---------------------------------------------------

    def _send_watched(self, auth: AuthWatch, frames: list[bytes], now: float) -> list[ClientEvent]:
        """Like the loop in :meth:`frames_from_pppd`, with the watcher seeing each frame."""
        events: list[ClientEvent] = []
        send = self._conn.send_ppp_frame
        for i, frame in enumerate(frames):
            verdict = auth.from_pppd(frame)
            if verdict is not None:
                events += self._verdict(verdict, now)
                if self._setup is not None and self._setup.hold_rest(frames[i:]):
                    return events  # waiting for keys: the rest waits with CALL_CONNECTED
            try:
                send(frame)
            except ProtocolError as exc:
                events.append(FrameDropped(length=len(frame), reason=str(exc)))
            except UsageError:
                break
        return events

    def _verdict(self, verdict: AuthEvent, now: float) -> list[ClientEvent]:
        """The watcher has judged authentication: decide about CALL_CONNECTED."""
        setup = self._setup
        if isinstance(verdict, AuthFailed) or setup is None:
            return [verdict]
        binding = setup.verdict(verdict, now)
        return [verdict, *self._connect(binding, now)] if binding is not None else [verdict]

    def _connect(self, binding: Binding, now: float) -> list[ClientEvent]:
        done = self._setup.connect(binding, now) if self._setup is not None else None
        if done is None:
            return []
        self._connected = True
        self._setup = None
        event, held = done
        return [event, *self.frames_from_pppd(held, now)] if held else [event]
