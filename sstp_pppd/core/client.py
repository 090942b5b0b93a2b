"""The SSTP client as one sans-IO object: HTTP head, SSTP call, PPP policy, outcome.

:class:`ClientConnection` composes the HTTP phase (:class:`~.httpphase.HttpPhase`),
the SSTP state machine (:class:`~.connection.Connection`), the authentication watching
(:class:`~.authwatch.AuthWatch`) and the key choice (:class:`~.keywait.KeyWait`), the
way wsproto's ``WSConnection`` composes its handshake and connection: one
:meth:`~ClientConnection.receive_data` takes the server's bytes from the first byte of
the HTTP response on, and the bytes after the response head go straight to the SSTP
machine. The asyncio side only moves bytes and runs the
one timer :meth:`~ClientConnection.next_deadline` asks for.

The decisions it owns, each a rule of its own:

1. Frames pppd sends before the server acknowledged the call are held, up to
   :data:`EARLY_FRAMES_MAX`, and sent in order right after the CALL_CONNECT_ACK: a lost
   first LCP Configure-Request would cost pppd's 3 s restart timer.
2. On the watcher's success verdict CALL_CONNECTED goes out at once, before the frame
   that carried the verdict is relayed on, so no NCP frame of pppd can precede it.
   Its keys are :mod:`.keywait`'s choice: the pppd plugin's
   (:meth:`~ClientConnection.keys_received`) win, else the password's, else zeros.
3. While :mod:`.keywait` waits for the plugin's keys (a method whose keys only pppd
   knows, or a plugin expected), CALL_CONNECTED is held, and pppd's frames with it.
4. The first network-layer frame from the server after CALL_CONNECTED shows that it
   accepted the binding (:class:`BindingAccepted`).
5. How the call ended is a value, :class:`CallEnded` with an :class:`Outcome`: no exit
   codes here. What the server does after :meth:`~ClientConnection.expect_close` is no
   failure.
6. pppd's LCP Configure-Request that went out after the ACK is sent once more, early,
   while the server has not answered it (:mod:`.lcpnudge`: a server starting its pppd
   may drop the first copy): (a) when the server has sent no frame within
   :data:`~.lcpnudge.NUDGE_DELAY`, or (b) when the server's first frame is its own LCP
   Configure-Request, then right ahead of pppd's answer to it. Once per connection.
"""

from __future__ import annotations

from typing import assert_never

from . import crypto, hdlc
from .authwatch import AuthWatch, network_layer
from .client_events import (
    KEEPALIVE_ENDED,
    BindingAccepted,
    CallConnected,
    CallEnded,
    ClientEvent,
    FrameDropped,
    HttpAccepted,
    KeySource,
    Outcome,
    ended_by_abort,
    ended_by_disconnect,
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
from .keywait import KEY_WAIT, Binding, KeyWait
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

#: Frames of pppd held while the call cannot carry them (before the ACK, while the keys
#: are awaited). Beyond this they are dropped: pppd retransmits what matters.
EARLY_FRAMES_MAX = 64


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
        self._cert_der = b""
        self._cert_hash = b""
        #: Until the binding is accepted (then nothing is left to watch).
        self._auth: AuthWatch | None = AuthWatch(password_lookup)
        #: Until CALL_CONNECTED is sent (then the keys are spent).
        self._keys: KeyWait | None = KeyWait(key_wait)
        self._held: list[bytes] | None = []
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
        http, keys, nudge = self._http, self._keys, self._nudge
        if http is None and keys is None and nudge is None:
            return deadline  # after the HTTP phase and CALL_CONNECTED: called per batch
        return min(
            (
                d
                for d in (
                    http.deadline if http is not None else None,
                    keys.deadline if keys is not None else None,
                    nudge.deadline if nudge is not None else None,
                    deadline,
                )
                if d is not None
            ),
            default=None,
        )

    # ----- inputs --------------------------------------------------------------------------

    def start(self, server_cert: bytes, now: float) -> None:
        """TLS is up with ``server_cert`` (DER): queue the SSTP_DUPLEX_POST request."""
        http = self._http
        if http is None:
            raise UsageError("start() twice")
        self._out += http.start(now)
        self._cert_der = server_cert

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
        held = self._held
        if held is not None:
            held.extend(frames[: EARLY_FRAMES_MAX - len(held)])
            return []
        # Rule 6's copy, if it waits for these frames, goes ahead of them.
        events = self._nudge_relayed(frames, now) if self._nudge is not None else []
        auth = self._auth
        if auth is not None:
            # Frames held after the watcher's verdict come here again: the tracker's
            # view of a frame seen twice is the same (the first refusal, the first
            # ending count).
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
            self._held is not None
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
        ``key_wait`` for them even when the password gives keys too, so that pppd's own
        keys win (the derived ones are the fallback, zeros only when there are none)."""
        if self._keys is not None:
            self._keys.expect_plugin_keys()

    def keys_received(self, send_key: bytes, recv_key: bytes, now: float) -> list[ClientEvent]:
        """Keys from pppd (the plugin): MS-CHAPv2's send and receive keys, or an MSK.

        The HLAK is ``send_key ‖ recv_key`` (16 bytes each); a ``send_key`` of 32 bytes
        or more alone gives its first 32 bytes (the EAP-TLS MSK; ``recv_key`` ignored).
        Kept if authentication is not over yet; ignored once CALL_CONNECTED is sent.
        """
        keys = self._keys
        if keys is None:
            return []
        binding = keys.keys_received(send_key, recv_key)
        return self._connect(binding, now) if binding is not None else []

    def handle_timer(self, now: float) -> list[ClientEvent]:
        """Run whatever is due at ``now``."""
        events: list[ClientEvent] = []
        if self._http is not None:
            events += self._http.due(now)
        if self._keys is not None:
            binding = self._keys.due(now)
            if binding is not None:
                events += self._connect(binding, now)
        if self._nudge is not None:
            events += self._nudge_due(now)
        deadline = self._conn.next_deadline()
        if deadline is not None and deadline <= now:
            events += self._digest(self._conn.handle_timer(now), now)
        return events

    def connection_lost(self, now: float, reason: str = "") -> list[ClientEvent]:
        """The transport ended; ``reason``: what the OS said, if anything."""
        if self._http is not None:
            return self._http.connection_lost()
        events: list[ClientEvent] = []
        self._nudge = None
        if not self._closing:
            detail = f": {reason}" if reason else ""
            events += self._lcp_ended()
            events.append(
                CallEnded(
                    outcome=Outcome.CONNECTION_LOST,
                    message=f"the server closed the connection{detail}",
                )
            )
        events += self._digest(self._conn.connection_lost(now), now)
        return events

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
        if not http.accepted:
            return events
        self._http = None
        self._conn.start(now)
        trailing = http.trailing
        if trailing:
            events += self._digest(self._conn.receive_data(trailing, now), now)
        return events

    def _digest(self, events: list[Event], now: float) -> list[ClientEvent]:
        out: list[ClientEvent] = []
        for event in events:
            match event:
                case PppFrames(frames=frames):
                    if self._nudge is not None:
                        self._nudge_server(frames)
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
                    self._cert_hash = crypto.cert_hash(self._cert_der, hash_protocol)
                    out.append(event)
                    held, self._held = self._held or [], None
                    if held:
                        out += self.frames_from_pppd(held, now)
                case EchoRequested() | ConnectionClosed():
                    out.append(event)
                case Disconnected(status=status):
                    self._nudge = None
                    out += self._lcp_ended()
                    out.append(ended_by_disconnect(status, asked=self._closing))
                case Aborted(status=status, local=local, unframeable=unframeable):
                    self._nudge = None
                    out += self._lcp_ended()
                    out.append(
                        ended_by_abort(
                            status, local=local, unframeable=unframeable, bound=self._connected
                        )
                    )
                case KeepaliveExpired():
                    self._nudge = None
                    out += self._lcp_ended()
                    out.append(KEEPALIVE_ENDED)
                case _:
                    assert_never(event)
        return out

    def _lcp_ended(self) -> list[AuthNotAgreed]:
        auth = self._auth
        return auth.link_ended(closing=self._closing) if auth is not None else []

    # ----- rule 6: the early copy of pppd's unanswered LCP request (lcpnudge) ---------------

    def _nudge_relayed(self, frames: list[bytes], now: float) -> list[ClientEvent]:
        nudge = self._nudge
        if nudge is None:
            return []
        copy = nudge.relayed(frames, now)
        if nudge.done:
            self._nudge = None  # off the batch path's way
        return self._nudge_send(copy)

    def _nudge_due(self, now: float) -> list[ClientEvent]:
        nudge = self._nudge
        if nudge is None:
            return []
        due = nudge.due(now)
        if nudge.done:
            self._nudge = None
        return self._nudge_send(due)

    def _nudge_server(self, frames: list[bytes]) -> None:
        nudge = self._nudge
        if nudge is not None:
            nudge.server_frames(frames)
            if nudge.done:
                self._nudge = None  # the server speaks: pppd's timers will do

    def _nudge_send(self, due: tuple[bytes, LcpResent] | None) -> list[ClientEvent]:
        if due is None:
            return []
        frame, event = due
        try:
            self._conn.send_ppp_frame(frame)
        except (ProtocolError, UsageError):
            return []  # the call is ending (or pppd's frame did not fit the first time)
        return [event]

    # ----- authentication and the binding ---------------------------------------------------

    def _send_watched(self, auth: AuthWatch, frames: list[bytes], now: float) -> list[ClientEvent]:
        """Like the loop in :meth:`frames_from_pppd`, with the watcher seeing each frame."""
        events: list[ClientEvent] = []
        send = self._conn.send_ppp_frame
        for i, frame in enumerate(frames):
            verdict = auth.from_pppd(frame)
            if verdict is not None:
                events += self._verdict(verdict, now)
                if self._held is not None:
                    # Waiting for keys: this frame and the rest wait with CALL_CONNECTED.
                    self._held.extend(frames[i : i + EARLY_FRAMES_MAX])
                    return events
            try:
                send(frame)
            except ProtocolError as exc:
                events.append(FrameDropped(length=len(frame), reason=str(exc)))
            except UsageError:
                break
        return events

    def _verdict(self, verdict: AuthEvent, now: float) -> list[ClientEvent]:
        """The watcher has judged authentication: decide about CALL_CONNECTED."""
        keys = self._keys
        if isinstance(verdict, AuthFailed) or keys is None:
            return [verdict]
        binding = keys.verdict(verdict, now)
        if binding is None:
            if self._held is None:
                self._held = []  # pppd's frames wait with CALL_CONNECTED
            return [verdict]
        return [verdict, *self._connect(binding, now)]

    def _connect(self, binding: Binding, now: float) -> list[ClientEvent]:
        if self._conn.state is not State.CLIENT_CONNECT_ACK_RECEIVED:
            # The call is already ending (its outcome is reported): nothing to bind.
            self._held = None
            return []
        self._conn.send_call_connected(self._cert_hash, binding.hlak, now)
        self._connected = True
        self._keys = None
        events: list[ClientEvent] = [
            CallConnected(
                method=binding.method,
                key_source=binding.source,
                why_unknown=binding.why_unknown,
            )
        ]
        held, self._held = self._held, None
        if held:
            events += self.frames_from_pppd(held, now)
        return events
