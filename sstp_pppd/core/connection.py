"""The SSTP client state machine ([MS-SSTP] 3.1 and 3.2), sans-IO.

Rules (the states, inputs and table are in :mod:`.states`; the actions are here):

1. ``State`` members are the spec's CurrentState names the client can rest in between two
   calls. Call_Abort_In_Progress_1/2 and Call_Disconnect_In_Progress_1/2 last only while
   a CALL_ABORT or CALL_DISCONNECT(_ACK) is being queued, inside one call, so they are
   not members. ``CLOSED`` is ours: the transport must be closed now.
2. Every stimulus is an ``Input``: a received message, a call of the caller, the expiry of
   the armed timer. ``_TRANSITIONS`` maps ``(state, input)`` to ``(action, next state)``;
   the action queues bytes, emits events and arms the next state's timer.
3. A received message without a row is an invalid message (3.1.5.1): CALL_ABORT with
   UNACCEPTED_FRAME_RECEIVED (or the codec's status for a malformed packet, or the status
   of the ``ProtocolError`` an action raised), T1, Call_Abort_Pending, and
   ``Aborted(local=True)``. A caller input without a row raises ``UsageError``.
4. Bytes that cannot be framed end the link without a word (3.1.5.1): ``Aborted`` (unless
   the end was already reported) and ``ConnectionClosed``; nothing is sent.
5. Every live state has exactly one timer (``_STATE_TIMER``), armed when the state is
   entered, so one deadline is kept; the armed timer is itself an ``Input``. Staying in a
   state never re-arms it, except: a NAK's resent request restarts negotiation; in
   Client_Call_Connected every received packet re-arms ``HELLO_TIMER``, whose expiry sends
   ECHO_REQUEST and arms ``ECHO_TIMER``, whose expiry is ``KeepaliveExpired`` and
   ``ConnectionClosed`` without CALL_ABORT (3.1.2.3).
6. The ``RECV_DATA``/``SEND_DATA`` rows are read once into frozensets: the hot paths test
   membership instead of dispatching per frame, and consecutive frames share one event.
7. ``abort()``/``disconnect()`` report nothing (the caller knows; ``Aborted`` and
   ``Disconnected`` report what the peer or the protocol decided). Once teardown has
   begun they are no-ops; before ``start()`` and when ``CLOSED`` they raise, as there is
   nobody to say goodbye to.

Deliberate leniency, each because a strict reading would kill working sessions:

* CRYPTO_BINDING_REQ with hash bitmask 0 (sorz without ``-c``) is accepted and SHA-256
  chosen: sorz then accepts either hash in CALL_CONNECTED (it checks the cert hash only
  with ``-c`` and the MAC only with its pppd plugin), and SHA-256 is the stronger.
* ECHO_REQUEST in Client_Connect_Ack_Received is answered and an ECHO_RESPONSE there is
  ignored (the spec aborts): authentication may outlast a server's hello interval, an
  answer costs nothing, and an abort would end the session mid-authentication.
* Data packets are relayed from the ACK on, PPP data frames included (3.2.7.2 holds those
  until Connected; pppd has no network phase before authentication anyway). Before the
  ACK and during teardown they are dropped, never aborted on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from . import crypto, hdlc, messages
from .errors import FramingError, ProtocolError, UsageError
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
from .messages import (
    ControlPacket,
    CryptoBindingRequest,
    DataPacket,
    HashProtocol,
    StatusCode,
    StatusInfo,
)
from .states import LOCAL_INPUTS, RECEIVED_INPUT, STATE_TIMER, Input, State, transitions

__all__ = [
    "Aborted",
    "ConnectAcked",
    "Connection",
    "ConnectionClosed",
    "Disconnected",
    "EchoRequested",
    "Event",
    "Input",
    "KeepaliveExpired",
    "PppFrames",
    "State",
]


_CONNECT_REQUEST = messages.call_connect_request().encode()
_DISCONNECT_ACK = messages.call_disconnect_ack().encode()
_ECHO_REQUEST = messages.echo_request().encode()
_ECHO_RESPONSE = messages.echo_response().encode()


def _status_of(packet: ControlPacket | None) -> int:
    attributes = packet.attributes if packet is not None else ()
    return next((a.status for a in attributes if isinstance(a, StatusInfo)), 0)


class Connection:
    """One SSTP client connection, from after the HTTP 200 to the end of the transport.

    Feed the server's bytes to :meth:`receive_data`, call :meth:`handle_timer` at
    :meth:`next_deadline`, and after every call write :meth:`data_to_send` to the TLS
    stream. Times are seconds of a monotonic clock, passed in as ``now``.
    """

    def __init__(
        self,
        *,
        negotiation_timeout: float = 60.0,
        hello_interval: float = 60.0,
        max_nak_retries: int = 3,
        abort_timeout: float = 3.0,
        abort_linger: float = 1.0,
        disconnect_timeout: float = 5.0,
        disconnect_linger: float = 1.0,
    ) -> None:
        self._durations = {
            Input.NEGOTIATION_TIMER: negotiation_timeout,
            Input.HELLO_TIMER: hello_interval,
            Input.ECHO_TIMER: hello_interval,
            Input.ABORT_STATE_TIMER_1: abort_timeout,
            Input.ABORT_STATE_TIMER_2: abort_linger,
            Input.DISCONNECT_STATE_TIMER_1: disconnect_timeout,
            Input.DISCONNECT_STATE_TIMER_2: disconnect_linger,
        }
        if not all(duration >= 0 for duration in self._durations.values()):
            raise UsageError("timeouts must not be negative")
        # Re-armed for every packet received: not through the dict, whose enum keys hash
        # in Python (enum.Enum.__hash__) on every lookup.
        self._hello_after = hello_interval
        self._max_nak_retries = max_nak_retries
        self._naks = 0
        self._state = State.CLIENT_CALL_DISCONNECTED
        self._decoder = messages.StreamDecoder()
        self._out = bytearray()
        self._timer: Input | None = None
        self._deadline: float | None = None
        self._acked: ConnectAcked | None = None

    @property
    def state(self) -> State:
        """The current state."""
        return self._state

    def start(self, now: float) -> None:
        """Queue CALL_CONNECT_REQUEST and arm the negotiation timer."""
        self._fire(Input.SEND_CONNECT_REQUEST, now, [])

    def send_ppp_frame(self, frame: bytes) -> None:
        """Queue one PPP frame: allowed from CALL_CONNECT_ACK until teardown starts."""
        if self._state not in _SEND_DATA_STATES:
            raise UsageError(f"cannot send PPP frames in state {self._state.name}")
        self._out += messages.encode_data(frame)

    def send_call_connected(self, cert_hash: bytes, hlak: bytes, now: float) -> None:
        """Queue CALL_CONNECTED bound to ``cert_hash`` and ``hlak``; arm the hello timer.

        ``cert_hash``: the server's leaf certificate hashed with the ``ConnectAcked`` hash.
        Wrong lengths raise ``UsageError`` (from :func:`crypto.call_connected`).
        """
        self._fire(Input.SEND_CALL_CONNECTED, now, [], args=(cert_hash, hlak))

    def disconnect(self, now: float) -> None:
        """Send CALL_DISCONNECT and wait D1 for its ACK; a no-op once teardown began.

        Raises ``UsageError`` before :meth:`start` and when ``CLOSED``.
        """
        self._fire(Input.SEND_DISCONNECT, now, [])

    def abort(self, status: int, now: float) -> None:
        """Send CALL_ABORT with ``status`` and arm T1; a no-op once the end is reported.

        Raises ``UsageError`` before :meth:`start` and when ``CLOSED``.
        """
        self._fire(Input.SEND_ABORT, now, [], status=status)

    def connection_lost(self, now: float) -> list[Event]:
        """The transport ended: ``[ConnectionClosed()]``, or ``[]`` if already closed."""
        events: list[Event] = []
        self._fire(Input.CONNECTION_LOST, now, events)
        return events

    def data_to_send(self) -> bytes:
        """Return and forget the bytes queued for the server."""
        if not self._out:
            return b""  # the usual case on the way in: nothing to answer
        data = bytes(self._out)
        self._out.clear()
        return data

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` is next due, or ``None``."""
        return self._deadline

    # ----- the relay's batch path (one call per read; see hdlc.PacketDecoder) ----------

    def send_data_packets(self, packets: bytes) -> None:
        """Queue SSTP data packets already framed (``hdlc.PacketDecoder`` output).

        The batch form of :meth:`send_ppp_frame`, allowed in the same states.
        """
        state = self._state
        # Identity first: a set lookup hashes the enum in Python (enum.Enum.__hash__).
        if state is not State.CLIENT_CALL_CONNECTED and state not in _SEND_DATA_STATES:
            raise UsageError(f"cannot send PPP frames in state {self._state.name}")
        self._out += packets

    def receive_hdlc(self, data: bytes, now: float) -> tuple[bytes, list[Event]]:
        """:meth:`receive_data` for the connected call, with frames ready for pppd.

        Returns the frames of the data packets that lead ``data`` as one RFC 1662 stream
        (full ACCM, as :func:`hdlc.encode_frames` makes it), built without a Python
        object per frame, and the events of whatever follows (a control packet and
        everything after it go through :meth:`receive_data`, so their ``PppFrames`` come
        after the stream). Before CALL_CONNECTED it is :meth:`receive_data` alone.
        """
        if self._state is not State.CLIENT_CALL_CONNECTED:
            return b"", self.receive_data(data, now)
        buf = self._decoder.take() + data if self._decoder.buffered else data
        stream, used = hdlc.encode_packets(buf)
        if used:
            # Traffic is what keeps the call alive ([MS-SSTP] 3.1.2.2's hello timer).
            self._arm_hello(now)
        if used == len(buf):
            return stream, []
        return stream, self.receive_data(buf[used:], now)

    def handle_timer(self, now: float) -> list[Event]:
        """Fire every timer due at ``now``."""
        events: list[Event] = []
        while self._timer is not None and self._deadline is not None and self._deadline <= now:
            timer, self._timer, self._deadline = self._timer, None, None
            self._fire(timer, now, events)
        return events

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Feed bytes from the server; return what happened, in order."""
        state = self._state
        if state is State.CLOSED:
            return []
        if state is State.CLIENT_CALL_DISCONNECTED:
            raise UsageError("receive_data() before start()")
        events: list[Event] = []
        # A run of data packets becomes one PppFrames, emitted when the run ends (a
        # control packet or the end of the bytes), so no emitted event changes later.
        frames: list[bytes] = []
        received = False
        while True:
            try:
                packets = self._decoder.feed(data)
            except FramingError as exc:
                if frames:
                    events.append(PppFrames(frames=frames))
                self._fire(Input.RECV_UNFRAMEABLE, now, events, status=exc.status)
                return events
            except ProtocolError as exc:
                # The codec consumed the bad packet; the next ones may be the peer's ABORT.
                received, data = True, b""
                if frames:
                    events.append(PppFrames(frames=frames))
                    frames = []
                self._fire(Input.RECV_INVALID, now, events, status=exc.status)
                continue
            if not packets:
                break
            received, data = True, b""
            relay = self._state in _RECV_DATA_STATES
            for packet in packets:
                if isinstance(packet, DataPacket):
                    if relay:
                        frames.append(packet.payload)
                    continue
                if frames:
                    events.append(PppFrames(frames=frames))
                    frames = []
                self._fire(RECEIVED_INPUT[packet.message_type], now, events, packet=packet)
                if self._state is State.CLOSED:
                    return events
                relay = self._state in _RECV_DATA_STATES
            if not self._decoder.buffered:
                break
        if frames:
            events.append(PppFrames(frames=frames))
        if received and self._state is State.CLIENT_CALL_CONNECTED:
            self._arm_hello(now)
        return events

    def _fire(
        self,
        stimulus: Input,
        now: float,
        events: list[Event],
        *,
        packet: ControlPacket | None = None,
        status: int = 0,
        args: tuple[bytes, bytes] | None = None,
    ) -> None:
        row = _TRANSITIONS.get((self._state, stimulus))
        if row is None:
            if stimulus in LOCAL_INPUTS:
                raise UsageError(f"{stimulus.name} is not allowed in state {self._state.name}")
            self._abort_invalid(status or StatusCode.UNACCEPTED_FRAME_RECEIVED, now, events)
            return
        action, target = row
        try:
            action(self, _Context(packet=packet, status=status, now=now, events=events, args=args))
        except ProtocolError as exc:
            if stimulus in LOCAL_INPUTS:
                raise
            self._abort_invalid(exc.status, now, events)
            return
        if target is not self._state:
            self._state = target
            timer = STATE_TIMER.get(target)
            if timer is None:
                self._timer = self._deadline = None
            else:
                self._arm(timer, now)

    def _arm(self, timer: Input, now: float) -> None:
        self._timer = timer
        self._deadline = now + self._durations[timer]

    def _arm_hello(self, now: float) -> None:
        self._timer = Input.HELLO_TIMER
        self._deadline = now + self._hello_after

    def _abort_invalid(self, status: int, now: float, events: list[Event]) -> None:
        self._out += messages.call_abort(status).encode()
        self._state = State.CALL_ABORT_PENDING
        self._arm(Input.ABORT_STATE_TIMER_1, now)
        events.append(Aborted(status=status, local=True))

    # Actions. One that finds a received message invalid raises ProtocolError (rule 3).

    def _ignore(self, ctx: _Context) -> None:
        pass

    def _relay(self, ctx: _Context) -> None:
        """Marks the data rows, which the hot paths read as frozensets (rule 6)."""

    def _send_request(self, ctx: _Context) -> None:
        self._out += _CONNECT_REQUEST
        self._arm(Input.NEGOTIATION_TIMER, ctx.now)

    def _on_ack(self, ctx: _Context) -> None:
        attributes = ctx.packet.attributes if ctx.packet is not None else ()
        request = next((a for a in attributes if isinstance(a, CryptoBindingRequest)), None)
        if request is None:
            raise ProtocolError(
                "CALL_CONNECT_ACK without CRYPTO_BINDING_REQ",
                StatusCode.REQUIRED_ATTRIBUTE_MISSING,
            )
        bitmask = request.hash_bitmask
        if bitmask & HashProtocol.CERT_HASH_PROTOCOL_SHA256 or bitmask == 0:
            chosen = HashProtocol.CERT_HASH_PROTOCOL_SHA256
        elif bitmask & HashProtocol.CERT_HASH_PROTOCOL_SHA1:
            chosen = HashProtocol.CERT_HASH_PROTOCOL_SHA1
        else:
            raise ProtocolError(
                f"no supported hash in bitmask {bitmask:#04x}", StatusCode.VALUE_NOT_SUPPORTED
            )
        self._acked = ConnectAcked(hash_protocol=chosen, nonce=request.nonce)
        ctx.events.append(self._acked)

    def _on_nak(self, ctx: _Context) -> None:
        if self._naks >= self._max_nak_retries:
            raise ProtocolError("too many CALL_CONNECT_NAK", StatusCode.RETRY_COUNT_EXCEEDED)
        self._naks += 1
        self._send_request(ctx)

    def _negotiation_timeout(self, ctx: _Context) -> None:
        self._abort_invalid(StatusCode.NEGOTIATION_TIMEOUT, ctx.now, ctx.events)

    def _send_connected(self, ctx: _Context) -> None:
        if ctx.args is None or self._acked is None:
            raise UsageError("CALL_CONNECTED needs the nonce and hash of the ACK")
        protocol, nonce = self._acked.hash_protocol, self._acked.nonce
        self._out += crypto.call_connected(protocol, nonce, *ctx.args)

    def _send_disconnect(self, ctx: _Context) -> None:
        self._out += messages.call_disconnect().encode()

    def _send_abort(self, ctx: _Context) -> None:
        self._out += messages.call_abort(ctx.status).encode()

    def _on_abort(self, ctx: _Context) -> None:
        self._out += messages.call_abort().encode()
        ctx.events.append(Aborted(status=_status_of(ctx.packet), local=False))

    def _on_disconnect(self, ctx: _Context) -> None:
        self._out += _DISCONNECT_ACK
        ctx.events.append(Disconnected(status=_status_of(ctx.packet)))

    def _disconnected(self, ctx: _Context) -> None:
        ctx.events.extend((Disconnected(status=StatusCode.NO_ERROR), ConnectionClosed()))

    def _answer_echo(self, ctx: _Context) -> None:
        self._out += _ECHO_RESPONSE
        ctx.events.append(EchoRequested())

    def _send_echo(self, ctx: _Context) -> None:
        self._out += _ECHO_REQUEST
        self._arm(Input.ECHO_TIMER, ctx.now)

    def _keepalive_expired(self, ctx: _Context) -> None:
        ctx.events.extend((KeepaliveExpired(), ConnectionClosed()))

    def _unframeable(self, ctx: _Context) -> None:
        ctx.events.extend(
            (Aborted(status=ctx.status, local=True, unframeable=True), ConnectionClosed())
        )

    def _close(self, ctx: _Context) -> None:
        ctx.events.append(ConnectionClosed())


@dataclass(frozen=True, slots=True, kw_only=True)
class _Context:
    packet: ControlPacket | None
    status: int
    now: float
    events: list[Event]
    args: tuple[bytes, bytes] | None


_Row: TypeAlias = tuple[Callable[[Connection, _Context], None], State]
_TRANSITIONS: dict[tuple[State, Input], _Row] = {
    key: (getattr(Connection, f"_{action}"), target)
    for key, (action, target) in transitions().items()
}
_RECV_DATA_STATES = frozenset(
    state
    for (state, stimulus), (action, _) in _TRANSITIONS.items()
    if stimulus is Input.RECV_DATA and action is Connection._relay
)
_SEND_DATA_STATES = frozenset(
    state for state, stimulus in _TRANSITIONS if stimulus is Input.SEND_DATA
)
