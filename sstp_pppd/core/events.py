"""The events of the SSTP client state machine (:mod:`sstp_pppd.connection`).

Frozen, slotted, keyword-only values: what ``Connection.receive_data`` and
``Connection.handle_timer`` tell the caller to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from .messages import HashProtocol

__all__ = [
    "Aborted",
    "ConnectAcked",
    "ConnectionClosed",
    "Disconnected",
    "EchoRequested",
    "Event",
    "KeepaliveExpired",
    "PppFrames",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectAcked:
    """ACK accepted, start PPP: ``hash_protocol`` (hash the certificate with it), ``nonce``."""

    hash_protocol: HashProtocol
    nonce: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class PppFrames:
    """``frames``: the PPP frames of consecutive data packets, in order."""

    frames: list[bytes]


@dataclass(frozen=True, slots=True, kw_only=True)
class EchoRequested:
    """The server sent ECHO_REQUEST; the ECHO_RESPONSE is already queued."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnected:
    """CALL_DISCONNECT acknowledged; ``status``: the peer's (0 if none, or if it was ours)."""

    status: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Aborted:
    """CALL_ABORT sent by the machine (``local``) or received with ``status`` (0 if none).

    ``unframeable``: the server's bytes could not be framed as SSTP at all; then no
    CALL_ABORT was sent ([MS-SSTP] 3.1.5.1) and ``ConnectionClosed`` follows at once.
    """

    status: int
    local: bool
    unframeable: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    """Close the transport now; the machine is ``CLOSED``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeepaliveExpired:
    """Nothing was received for two hello intervals; ``ConnectionClosed`` follows."""


Event: TypeAlias = (
    ConnectAcked
    | PppFrames
    | EchoRequested
    | Disconnected
    | Aborted
    | ConnectionClosed
    | KeepaliveExpired
)
