"""The SSTP call from CALL_CONNECT_REQUEST to CALL_CONNECTED: held frames, the binding.

Until the server acknowledged the call, and again while the keys of a successful
authentication are awaited (:mod:`.keywait`), the call cannot carry pppd's frames:
:class:`CallSetup` holds them, up to :data:`EARLY_FRAMES_MAX`, and gives them back in
order when the call can (after the CALL_CONNECT_ACK, after CALL_CONNECTED). It also
keeps what CALL_CONNECTED binds to: the server certificate's hash under the hash
protocol the ACK chose, and sends CALL_CONNECTED on the SSTP machine when the
:class:`~.keywait.Binding` is decided; :func:`send_copy` sends the early LCP copy
(:mod:`.lcpnudge`) the same way. Its owner (:class:`~.client.ClientConnection`) drops
it once CALL_CONNECTED is sent.
"""

from __future__ import annotations

from . import crypto
from .client_events import CallConnected, ClientEvent
from .connection import Connection, State
from .errors import ProtocolError, UsageError
from .keywait import Binding, KeyWait
from .lcpnudge import LcpResent
from .messages import HashProtocol
from .pppwatch import AuthSucceeded

__all__ = ["EARLY_FRAMES_MAX", "CallSetup", "send_copy"]

#: Frames of pppd held while the call cannot carry them (before the ACK, while the keys
#: are awaited). Beyond this they are dropped: pppd retransmits what matters.
EARLY_FRAMES_MAX = 64


class CallSetup:
    """One call's set-up on ``conn``; :attr:`held` is ``None`` while frames may go out."""

    __slots__ = ("_cert_der", "_cert_hash", "_conn", "held", "keys")

    def __init__(self, conn: Connection, key_wait: float) -> None:
        self._conn = conn
        self._cert_der = b""
        self._cert_hash = b""
        self.held: list[bytes] | None = []
        self.keys = KeyWait(key_wait)

    def tls_up(self, server_cert: bytes) -> None:
        """The server's certificate (DER), which CALL_CONNECTED will bind to."""
        self._cert_der = server_cert

    def hold(self, frames: list[bytes]) -> bool:
        """Keep pppd's ``frames`` if the call cannot carry them yet; else ``False``."""
        held = self.held
        if held is None:
            return False
        held.extend(frames[: EARLY_FRAMES_MAX - len(held)])
        return True

    def hold_rest(self, frames: list[bytes]) -> bool:
        """While the keys are awaited: keep the frames from the verdict's on; else ``False``."""
        held = self.held
        if held is None:
            return False
        held.extend(frames[:EARLY_FRAMES_MAX])
        return True

    def acked(self, hash_protocol: HashProtocol) -> list[bytes]:
        """The server acknowledged the call: the frames held until now, to send."""
        self._cert_hash = crypto.cert_hash(self._cert_der, hash_protocol)
        held, self.held = self.held or [], None
        return held

    def verdict(self, verdict: AuthSucceeded, now: float) -> Binding | None:
        """Authentication succeeded: the binding, or ``None`` (pppd's frames are held)."""
        binding = self.keys.verdict(verdict, now)
        if binding is None and self.held is None:
            self.held = []  # pppd's frames wait with CALL_CONNECTED
        return binding

    def connect(self, binding: Binding, now: float) -> tuple[CallConnected, list[bytes]] | None:
        """Send CALL_CONNECTED; the frames held for it, to send after. ``None`` when the
        call is already ending (its outcome is reported): nothing to bind."""
        conn = self._conn
        if conn.state is not State.CLIENT_CONNECT_ACK_RECEIVED:
            self.held = None
            return None
        conn.send_call_connected(self._cert_hash, binding.hlak, now)
        held, self.held = self.held, None
        event = CallConnected(
            method=binding.method, key_source=binding.source, why_unknown=binding.why_unknown
        )
        return event, held or []


def send_copy(conn: Connection, due: tuple[bytes, LcpResent]) -> list[ClientEvent]:
    """Send :mod:`.lcpnudge`'s early copy of pppd's LCP request: its event if it went out."""
    frame, event = due
    try:
        conn.send_ppp_frame(frame)
    except (ProtocolError, UsageError):
        return []  # the call is ending (or pppd's frame did not fit the first time)
    return [event]
