"""The SSTP client as one sans-IO object: HTTP head, SSTP call, PPP policy, outcome.

:class:`ClientConnection` composes the HTTP response parser, the SSTP state machine
(:class:`~.connection.Connection`) and the authentication watcher
(:class:`~.pppwatch.AuthWatcher`), the way wsproto's ``WSConnection`` composes its
handshake and connection: one :meth:`~ClientConnection.receive_data` takes the server's
bytes from the first byte of the HTTP response on, and the bytes after the response
head go straight to the SSTP machine. The asyncio side only moves bytes and runs the
one timer :meth:`~ClientConnection.next_deadline` asks for.

The decisions it owns, each a rule of its own:

1. Frames pppd sends before the server acknowledged the call are held, up to
   :data:`EARLY_FRAMES_MAX`, and sent in order right after the CALL_CONNECT_ACK: a lost
   first LCP Configure-Request would cost pppd's 3 s restart timer.
2. On the watcher's success verdict CALL_CONNECTED goes out at once, before the frame
   that carried the verdict is relayed on, so no NCP frame of pppd can precede it.
   Keys: those given to :meth:`~ClientConnection.keys_received` (the pppd plugin) win,
   whenever they came; else the watcher's (derived from the password); a method without
   keys (PAP, CHAP-MD5, none) binds with zeros.
3. A method whose keys exist but are unknown here (EAP-TLS, a password only pppd has)
   holds CALL_CONNECTED, and pppd's frames with it, until the keys arrive or
   ``key_wait`` seconds pass; then it binds with zeros, which a verifying server rejects.
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
from .errors import HttpError, ProtocolError, UsageError
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
from .handshake import ResponseParser, check_sstp_response, sstp_request
from .lcpauth import AuthNotAgreed, LcpAuthTracker
from .lcpnudge import NUDGE_DELAY, LcpNudge, LcpResent
from .ppp import FIRST_CONTROL_PROTOCOL, ppp_protocol
from .pppwatch import AuthEvent, AuthFailed, AuthSucceeded, AuthWatcher, PasswordLookup

__all__ = [
    "EARLY_FRAMES_MAX",
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
#: [MS-SSTP] 3.2.4.1: the client waits this long for the HTTP response.
HTTP_TIMEOUT = 60.0
#: How long CALL_CONNECTED waits for keys the watcher cannot know (rule 3).
KEY_WAIT = 3.0
_ZERO_HLAK = bytes(crypto.HLAK_LENGTH)
#: An LCP frame's first bytes: RFC 1662 never compresses address/control for LCP.
_LCP_HEADER = b"\xff\x03\xc0\x21"


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
        self._host = host
        self._correlation_id = correlation_id
        self._http_timeout = http_timeout
        self._key_wait = key_wait
        #: A pppd plugin will send the keys (see :meth:`expect_plugin_keys`).
        self._plugin_expected = False
        self._conn = Connection(
            hello_interval=hello_interval, negotiation_timeout=negotiation_timeout
        )
        self._parser: ResponseParser | None = ResponseParser()
        self._http_over = False  # the HTTP phase ended without a 200 (or we closed in it)
        self._http_deadline: float | None = None
        self._out = bytearray()
        self._cert_der = b""
        self._cert_hash = b""
        self._watcher: AuthWatcher | None = AuthWatcher(password_lookup)
        #: Why LCP agreed on no authentication method, until the binding is accepted.
        self._lcp: LcpAuthTracker | None = LcpAuthTracker()
        self._held: list[bytes] | None = []
        self._waiting: AuthSucceeded | None = None  # success whose keys are awaited
        self._key_deadline: float | None = None
        self._plugin_hlak: bytes | None = None
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
        nudge = self._nudge.deadline if self._nudge is not None else None
        if self._http_deadline is None and self._key_deadline is None and nudge is None:
            return deadline  # after the HTTP phase and the key wait: called per batch
        deadlines = [
            d for d in (self._http_deadline, self._key_deadline, nudge, deadline) if d is not None
        ]
        return min(deadlines)

    # ----- inputs --------------------------------------------------------------------------

    def start(self, server_cert: bytes, now: float) -> None:
        """TLS is up with ``server_cert`` (DER): queue the SSTP_DUPLEX_POST request."""
        if self._http_deadline is not None or self._parser is None:
            raise UsageError("start() twice")
        self._cert_der = server_cert
        self._out += sstp_request(self._host, self._correlation_id)
        self._http_deadline = now + self._http_timeout

    def receive_data(self, data: bytes, now: float) -> list[ClientEvent]:
        """Bytes from the server: the HTTP response head, then the SSTP stream."""
        if self._parser is not None:
            return self._receive_http(data, now)
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
        # Frames held after the watcher's verdict come here again: the tracker's view
        # of a frame seen twice is the same (the first refusal, the first ending count).
        if self._lcp is not None:
            events += self._lcp_frames(frames, from_pppd=True)
        if self._watcher is not None:
            return events + self._send_watched(frames, now)
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

        The relay's batch path: once no frame is held and the watcher is gone, the batch
        is queued as it is, with no Python object per frame; until then it goes through
        :meth:`frames_from_pppd` frame by frame.
        """
        if (
            self._held is not None
            or self._watcher is not None
            or self._nudge is not None
            # The LCP tracker reads only LCP, which pppd always sends with its address
            # and control fields: one C-speed search keeps the batch path for the rest
            # (a data frame between CALL_CONNECTED and the first one from the server).
            or (self._lcp is not None and _LCP_HEADER in packets)
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
        if self._parser is not None or not self._binding_accepted:
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
        self._plugin_expected = True

    def keys_received(self, send_key: bytes, recv_key: bytes, now: float) -> list[ClientEvent]:
        """Keys from pppd (the plugin): MS-CHAPv2's send and receive keys, or an MSK.

        The HLAK is ``send_key ‖ recv_key`` (16 bytes each); a ``send_key`` of 32 bytes
        or more alone gives its first 32 bytes (the EAP-TLS MSK; ``recv_key`` ignored).
        Kept if authentication is not over yet; ignored once CALL_CONNECTED is sent.
        """
        if self._connected:
            return []
        self._plugin_hlak = crypto.hlak(send_key, recv_key)
        waiting = self._waiting
        if waiting is None:
            return []
        self._waiting = self._key_deadline = None
        return self._connect(waiting.method, self._plugin_hlak, KeySource.PLUGIN, "", now)

    def handle_timer(self, now: float) -> list[ClientEvent]:
        """Run whatever is due at ``now``."""
        events: list[ClientEvent] = []
        if self._http_deadline is not None and self._http_deadline <= now:
            events += self._http_failed(
                f"the server did not answer the HTTP request within {self._http_timeout:.0f} s",
                None,
            )
        if self._key_deadline is not None and self._key_deadline <= now:
            waiting, self._waiting, self._key_deadline = self._waiting, None, None
            if waiting is not None:
                # No keys from pppd in time: the password's, else zeros.
                events += self._bind_without_plugin(waiting, now)
        if self._nudge is not None:
            events += self._nudge_due(now)
        deadline = self._conn.next_deadline()
        if deadline is not None and deadline <= now:
            events += self._digest(self._conn.handle_timer(now), now)
        return events

    def connection_lost(self, now: float, reason: str = "") -> list[ClientEvent]:
        """The transport ended; ``reason``: what the OS said, if anything."""
        events: list[ClientEvent] = []
        parser = self._parser
        if parser is not None:
            if not self._http_over:
                # Closed during the HTTP exchange: the server refusing us, not a drop.
                message = (
                    "the server closed the connection during the HTTP handshake "
                    "(not an SSTP server, or it refused the request)"
                )
                status = None
                try:
                    parser.feed_eof()
                except HttpError as exc:
                    message, status = str(exc), exc.status
                events += self._http_failed(message, status)
            return events
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
        if self._parser is not None:
            self._http_over = True
            self._http_deadline = None
            return [ConnectionClosed()]
        try:
            self._conn.disconnect(now)
        except UsageError:
            return [ConnectionClosed()]
        return []

    # ----- the HTTP phase --------------------------------------------------------------------

    def _receive_http(self, data: bytes, now: float) -> list[ClientEvent]:
        parser = self._parser
        if parser is None or self._http_over:
            return []
        try:
            response = parser.feed(data)
            if response is None:
                return []
            warnings = check_sstp_response(response)
        except HttpError as exc:
            return self._http_failed(str(exc), exc.status)
        self._parser = None
        self._http_deadline = None
        self._conn.start(now)
        trailing = parser.trailing
        events: list[ClientEvent] = [
            HttpAccepted(
                status=response.status,
                reason=response.reason,
                warnings=warnings,
                trailing=trailing,
            )
        ]
        if trailing:
            events += self._digest(self._conn.receive_data(trailing, now), now)
        return events

    def _http_failed(self, message: str, status: int | None) -> list[ClientEvent]:
        self._http_over = True
        self._http_deadline = None
        return [
            CallEnded(outcome=Outcome.HTTP_FAILED, message=message, status=status),
            ConnectionClosed(),
        ]

    # ----- the SSTP machine's events -------------------------------------------------------

    def _digest(self, events: list[Event], now: float) -> list[ClientEvent]:
        out: list[ClientEvent] = []
        for event in events:
            match event:
                case PppFrames(frames=frames):
                    if self._nudge is not None:
                        self._nudge_server(frames)
                    if self._lcp is not None:
                        out += self._lcp_frames(frames, from_pppd=False)
                    watcher = self._watcher
                    if watcher is not None:
                        for frame in frames:
                            verdict = watcher.from_server(frame)
                            if verdict is not None:
                                out += self._verdict(verdict, now)
                                break
                    if self._connected and not self._binding_accepted:
                        for frame in frames:
                            if 0 <= ppp_protocol(frame)[0] < FIRST_CONTROL_PROTOCOL:
                                self._binding_accepted = True
                                self._lcp = None  # the link works: nothing to explain
                                out.append(BindingAccepted())
                                break
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

    # ----- LCP's authentication agreement (lcpauth) ------------------------------------------

    def _lcp_frames(self, frames: list[bytes], *, from_pppd: bool) -> list[ClientEvent]:
        """Show the tracker frames; its verdict, the first cause of what follows, if any."""
        lcp = self._lcp
        if lcp is None:
            return []
        look = lcp.from_pppd if from_pppd else lcp.from_server
        for frame in frames:
            found = look(frame)
            if found is not None:
                # The link is ending for it: pppd's NCP frames already on their way are
                # no authentication success to bind on.
                self._lcp = self._watcher = None
                return [found]
        return []

    def _lcp_ended(self) -> list[AuthNotAgreed]:
        """The call ends: an authentication refusal seen before is why (unless we ended it)."""
        lcp, self._lcp = self._lcp, None
        found = lcp.link_ended() if lcp is not None and not self._closing else None
        return [found] if found is not None else []

    # ----- authentication and the binding ---------------------------------------------------

    def _send_watched(self, frames: list[bytes], now: float) -> list[ClientEvent]:
        """Like the loop in :meth:`frames_from_pppd`, with the watcher seeing each frame."""
        events: list[ClientEvent] = []
        send = self._conn.send_ppp_frame
        for i, frame in enumerate(frames):
            watcher = self._watcher
            if watcher is not None:
                verdict = watcher.from_pppd(frame)
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
        self._watcher = None
        if isinstance(verdict, AuthFailed):
            return [verdict]
        events: list[ClientEvent] = [verdict]
        if self._plugin_hlak is not None:
            return events + self._connect(
                verdict.method, self._plugin_hlak, KeySource.PLUGIN, "", now
            )
        # Wait for the plugin when pppd loads one (its keys win) or when only pppd knows
        # the keys; a method without keys has nothing to wait for.
        keyed = not verdict.keys_known or verdict.hlak != _ZERO_HLAK
        if self._key_wait > 0 and keyed and (self._plugin_expected or not verdict.keys_known):
            self._waiting = verdict
            self._key_deadline = now + self._key_wait
            if self._held is None:
                self._held = []
            return events
        return events + self._bind_without_plugin(verdict, now)

    def _bind_without_plugin(self, verdict: AuthSucceeded, now: float) -> list[ClientEvent]:
        """CALL_CONNECTED with what the watcher knows: the password's keys, else zeros."""
        if verdict.keys_known:
            source = KeySource.NONE if verdict.hlak == _ZERO_HLAK else KeySource.PASSWORD
            return self._connect(verdict.method, verdict.hlak, source, "", now)
        why = verdict.why_unknown or "this method's keys come only from pppd"
        return self._connect(verdict.method, _ZERO_HLAK, KeySource.ZERO, why, now)

    def _connect(
        self, method: str, hlak: bytes, source: KeySource, why_unknown: str, now: float
    ) -> list[ClientEvent]:
        if self._conn.state is not State.CLIENT_CONNECT_ACK_RECEIVED:
            # The call is already ending (its outcome is reported): nothing to bind.
            self._held = None
            return []
        self._conn.send_call_connected(self._cert_hash, hlak, now)
        self._connected = True
        events: list[ClientEvent] = [
            CallConnected(method=method, key_source=source, why_unknown=why_unknown)
        ]
        held, self._held = self._held, None
        if held:
            events += self.frames_from_pppd(held, now)
        return events
