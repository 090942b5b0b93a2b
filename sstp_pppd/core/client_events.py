"""The events of :class:`~.client.ClientConnection`, and how a call ended.

Frozen, slotted, keyword-only values like the state machine's own (:mod:`.events`),
some of which the client passes on as they are.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeAlias, assert_never

from .events import (
    Aborted,
    ConnectAcked,
    ConnectionClosed,
    Disconnected,
    EchoRequested,
    KeepaliveExpired,
    PppFrames,
)
from .lcpauth import AuthNotAgreed
from .lcpnudge import LcpResent
from .messages import StatusCode, status_name
from .pppwatch import AuthFailed, AuthSucceeded

__all__ = [
    "KEEPALIVE_ENDED",
    "BindingAccepted",
    "CallConnected",
    "CallEnded",
    "ClientEvent",
    "FrameDropped",
    "HttpAccepted",
    "KeySource",
    "Outcome",
    "ended",
    "ended_by_abort",
    "ended_by_disconnect",
    "ended_by_loss",
]


@enum.unique
class Outcome(enum.Enum):
    """How the call ended, as far as the protocol can tell."""

    #: We asked to end (:meth:`ClientConnection.expect_close`) and the call ended so.
    DISCONNECTED = "disconnected"
    #: The server sent CALL_DISCONNECT without being asked.
    SERVER_DISCONNECTED = "server disconnected"
    #: The server sent CALL_ABORT.
    SERVER_ABORTED = "server aborted"
    #: We sent CALL_ABORT: the server sent something invalid, or negotiation timed out.
    PROTOCOL_ERROR = "protocol error"
    #: The server's bytes were not SSTP at all; dropped without CALL_ABORT.
    UNFRAMEABLE = "unframeable"
    #: Nothing came for two hello periods.
    KEEPALIVE_EXPIRED = "keepalive expired"
    #: TCP/TLS ended without an SSTP goodbye.
    CONNECTION_LOST = "connection lost"
    #: The HTTP exchange failed: refused, malformed, closed or timed out.
    HTTP_FAILED = "http failed"


@enum.unique
class KeySource(enum.Enum):
    """Where the HLAK of CALL_CONNECTED came from (logged; the keys never are)."""

    PLUGIN = "plugin"
    PASSWORD = "password"  # noqa: S105 - the name of a key source, not a secret
    #: The method has no keys (PAP, CHAP-MD5, no authentication): zeros by definition.
    NONE = "none"
    #: The method has keys nobody gave us in time: zeros, which a verifying server rejects.
    ZERO = "zero"


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpAccepted:
    """The server answered 200; ``warnings`` to log; ``trailing``: bytes after the head."""

    status: int
    reason: str
    warnings: tuple[str, ...]
    trailing: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameDropped:
    """A frame from pppd could not be sent (too big for SSTP); the others were."""

    length: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallConnected:
    """CALL_CONNECTED is queued; ``why_unknown`` says why when ``key_source`` is ZERO."""

    method: str
    key_source: KeySource
    why_unknown: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BindingAccepted:
    """The server sent network-layer traffic after CALL_CONNECTED (rule 4)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded:
    """How the call ended: ``outcome``, a one-line ``message``, the SSTP or HTTP status."""

    outcome: Outcome
    message: str
    status: int | None = None


#: What the client object reports. ``PppFrames`` go to pppd; ``ConnectionClosed`` means
#: close the transport now (always after any ``CallEnded`` of the same call).
ClientEvent: TypeAlias = (
    HttpAccepted
    | ConnectAcked
    | PppFrames
    | EchoRequested
    | FrameDropped
    | AuthSucceeded
    | AuthFailed
    | AuthNotAgreed
    | LcpResent
    | CallConnected
    | BindingAccepted
    | CallEnded
    | ConnectionClosed
)


# ----- how the state machine's endings read as outcomes ---------------------------------------

KEEPALIVE_ENDED = CallEnded(
    outcome=Outcome.KEEPALIVE_EXPIRED,
    message="the server stopped answering (no packet for two hello periods)",
)


def ended_by_disconnect(status: int, *, asked: bool) -> CallEnded:
    """CALL_DISCONNECT acknowledged: clean if we ``asked`` for the end, else the server's."""
    if asked:
        return CallEnded(outcome=Outcome.DISCONNECTED, message="SSTP disconnected", status=status)
    return CallEnded(
        outcome=Outcome.SERVER_DISCONNECTED,
        message=f"the server disconnected the call ({status_name(status)})",
        status=status,
    )


def ended_by_abort(status: int, *, local: bool, unframeable: bool, bound: bool) -> CallEnded:
    """A CALL_ABORT (ours if ``local``), or unframeable bytes; ``bound``: CALL_CONNECTED sent."""
    if unframeable:
        # [MS-SSTP] 3.1.5.1: unframeable bytes drop the connection, no CALL_ABORT.
        return CallEnded(
            outcome=Outcome.UNFRAMEABLE,
            message="the server sent bytes that are not SSTP: connection dropped",
            status=status,
        )
    if local:
        return CallEnded(
            outcome=Outcome.PROTOCOL_ERROR,
            message=f"SSTP protocol error from the server: sent CALL_ABORT ({status_name(status)})",
            status=status,
        )
    # A server that checks the binding answers a wrong one with this status.
    hint = (
        " (the server rejected the crypto binding)"
        if status == StatusCode.INVALID_FRAME_RECEIVED and bound
        else ""
    )
    return CallEnded(
        outcome=Outcome.SERVER_ABORTED,
        message=f"the server aborted the call ({status_name(status)}){hint}",
        status=status,
    )


def ended_by_loss(reason: str) -> CallEnded:
    """The transport ended under the call; ``reason``: what the OS said, if anything."""
    detail = f": {reason}" if reason else ""
    return CallEnded(
        outcome=Outcome.CONNECTION_LOST, message=f"the server closed the connection{detail}"
    )


def ended(
    event: Disconnected | Aborted | KeepaliveExpired, *, asked: bool, bound: bool
) -> CallEnded:
    """The state machine's end of the call; ``asked``: we ended it; ``bound``: see
    :func:`ended_by_abort`."""
    match event:
        case Disconnected(status=status):
            return ended_by_disconnect(status, asked=asked)
        case Aborted(status=status, local=local, unframeable=unframeable):
            return ended_by_abort(status, local=local, unframeable=unframeable, bound=bound)
        case KeepaliveExpired():
            return KEEPALIVE_ENDED
        case _:
            assert_never(event)
