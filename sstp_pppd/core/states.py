"""The SSTP client's states, inputs and transition table ([MS-SSTP] 3.1 and 3.2), sans-IO.

Data only: :mod:`.connection` reads it and implements the actions, which are named here
by the method of ``Connection`` that runs them (``"on_ack"`` is ``Connection._on_ack``).
The rules the table follows are in :mod:`.connection`'s docstring.
"""

from __future__ import annotations

import enum
from typing import TypeAlias

from .messages import MessageType

__all__ = ["LOCAL_INPUTS", "RECEIVED_INPUT", "STATE_TIMER", "Input", "Row", "State", "transitions"]


@enum.unique
class State(enum.Enum):
    """Where the client is ([MS-SSTP] 3.1.1.1 and 3.2.1.1.1 CurrentState names)."""

    #: Before ``start()``.
    CLIENT_CALL_DISCONNECTED = enum.auto()
    #: CALL_CONNECT_REQUEST sent; negotiation timer.
    CLIENT_CONNECT_REQUEST_SENT = enum.auto()
    #: CALL_CONNECT_ACK received, PPP authenticating; negotiation timer again.
    CLIENT_CONNECT_ACK_RECEIVED = enum.auto()
    #: CALL_CONNECTED sent; hello timer.
    CLIENT_CALL_CONNECTED = enum.auto()
    #: We sent CALL_ABORT; T1 until the peer's CALL_ABORT.
    CALL_ABORT_PENDING = enum.auto()
    #: CALL_ABORT exchanged; T2 lets the last messages cross, all is ignored.
    CALL_ABORT_TIMEOUT_PENDING = enum.auto()
    #: We sent CALL_DISCONNECT; D1 until CALL_DISCONNECT_ACK.
    CALL_DISCONNECT_ACK_PENDING = enum.auto()
    #: We acknowledged the peer's CALL_DISCONNECT; D2 lets the ACK reach it.
    CALL_DISCONNECT_TIMEOUT_PENDING = enum.auto()
    #: Over: close the transport; every further input is ignored.
    CLOSED = enum.auto()


@enum.unique
class Input(enum.Enum):
    """What drives a transition: RECV_* from the server, SEND_* from the caller, timers."""

    RECV_DATA = enum.auto()
    RECV_CONNECT_ACK = enum.auto()
    RECV_CONNECT_NAK = enum.auto()
    RECV_ABORT = enum.auto()
    RECV_DISCONNECT = enum.auto()
    RECV_DISCONNECT_ACK = enum.auto()
    RECV_ECHO_REQUEST = enum.auto()
    RECV_ECHO_RESPONSE = enum.auto()
    #: A malformed packet, or a message only clients send (CONNECT_REQUEST, CONNECTED).
    RECV_INVALID = enum.auto()
    #: Bytes that cannot be framed as SSTP.
    RECV_UNFRAMEABLE = enum.auto()
    CONNECTION_LOST = enum.auto()
    SEND_CONNECT_REQUEST = enum.auto()
    SEND_DATA = enum.auto()
    SEND_CALL_CONNECTED = enum.auto()
    SEND_DISCONNECT = enum.auto()
    SEND_ABORT = enum.auto()
    NEGOTIATION_TIMER = enum.auto()
    HELLO_TIMER = enum.auto()
    #: The hello interval after our ECHO_REQUEST.
    ECHO_TIMER = enum.auto()
    ABORT_STATE_TIMER_1 = enum.auto()
    ABORT_STATE_TIMER_2 = enum.auto()
    DISCONNECT_STATE_TIMER_1 = enum.auto()
    DISCONNECT_STATE_TIMER_2 = enum.auto()


LOCAL_INPUTS = frozenset(stimulus for stimulus in Input if stimulus.name.startswith("SEND_"))
RECEIVED_INPUT = {
    MessageType.CALL_CONNECT_REQUEST: Input.RECV_INVALID,
    MessageType.CALL_CONNECT_ACK: Input.RECV_CONNECT_ACK,
    MessageType.CALL_CONNECT_NAK: Input.RECV_CONNECT_NAK,
    MessageType.CALL_CONNECTED: Input.RECV_INVALID,
    MessageType.CALL_ABORT: Input.RECV_ABORT,
    MessageType.CALL_DISCONNECT: Input.RECV_DISCONNECT,
    MessageType.CALL_DISCONNECT_ACK: Input.RECV_DISCONNECT_ACK,
    MessageType.ECHO_REQUEST: Input.RECV_ECHO_REQUEST,
    MessageType.ECHO_RESPONSE: Input.RECV_ECHO_RESPONSE,
}


#: (action, next state): the action is the name of a ``Connection`` method without its "_".
Row: TypeAlias = tuple[str, State]
_DISC = State.CLIENT_CALL_DISCONNECTED
_RS = State.CLIENT_CONNECT_REQUEST_SENT
_AR = State.CLIENT_CONNECT_ACK_RECEIVED
_CC = State.CLIENT_CALL_CONNECTED
_AP = State.CALL_ABORT_PENDING
_ATP = State.CALL_ABORT_TIMEOUT_PENDING
_DAP = State.CALL_DISCONNECT_ACK_PENDING
_DTP = State.CALL_DISCONNECT_TIMEOUT_PENDING
_CLOSED = State.CLOSED
STATE_TIMER = {
    _RS: Input.NEGOTIATION_TIMER,
    _AR: Input.NEGOTIATION_TIMER,
    _CC: Input.HELLO_TIMER,
    _AP: Input.ABORT_STATE_TIMER_1,
    _ATP: Input.ABORT_STATE_TIMER_2,
    _DAP: Input.DISCONNECT_STATE_TIMER_1,
    _DTP: Input.DISCONNECT_STATE_TIMER_2,
}


def transitions() -> dict[tuple[State, Input], Row]:
    i = Input
    table: dict[tuple[State, Input], Row] = {
        (_DISC, i.SEND_CONNECT_REQUEST): ("send_request", _RS),
        # 3.2.5.3.2-3: the action checks the ACK; NAKs resend up to the limit.
        (_RS, i.RECV_CONNECT_ACK): ("on_ack", _AR),
        (_RS, i.RECV_CONNECT_NAK): ("on_nak", _RS),
        (_RS, i.RECV_DATA): ("ignore", _RS),
        (_RS, i.NEGOTIATION_TIMER): ("negotiation_timeout", _AP),
        (_AR, i.NEGOTIATION_TIMER): ("negotiation_timeout", _AP),
        (_AR, i.SEND_CALL_CONNECTED): ("send_connected", _CC),
        (_CC, i.HELLO_TIMER): ("send_echo", _CC),
        (_CC, i.ECHO_TIMER): ("keepalive_expired", _CLOSED),
        # 3.1.2.1: our CALL_ABORT is over when the peer answers it, or at T1.
        (_AP, i.RECV_ABORT): ("ignore", _ATP),
        (_AP, i.ABORT_STATE_TIMER_1): ("close", _CLOSED),
        (_ATP, i.ABORT_STATE_TIMER_2): ("close", _CLOSED),
        # 3.1.2.2, 3.2.5.3.6: our CALL_DISCONNECT is over when acknowledged, or at D1.
        (_DAP, i.RECV_DISCONNECT_ACK): ("disconnected", _CLOSED),
        (_DAP, i.DISCONNECT_STATE_TIMER_1): ("disconnected", _CLOSED),
        (_DAP, i.SEND_ABORT): ("send_abort", _AP),
        (_DTP, i.DISCONNECT_STATE_TIMER_2): ("close", _CLOSED),
    }
    for state in (_AR, _CC):  # PPP runs from the ACK on; echoes in _AR are lenient
        table[state, i.RECV_DATA] = table[state, i.SEND_DATA] = ("relay", state)
        table[state, i.RECV_ECHO_REQUEST] = ("answer_echo", state)
        table[state, i.RECV_ECHO_RESPONSE] = ("ignore", state)
    for state in (_RS, _AR, _CC):
        table[state, i.SEND_DISCONNECT] = ("send_disconnect", _DAP)
        table[state, i.SEND_ABORT] = ("send_abort", _AP)
    # 3.2.5.3.4-5: the peer's CALL_ABORT is answered, its CALL_DISCONNECT acknowledged.
    for state in (_RS, _AR, _CC, _DAP):
        table[state, i.RECV_ABORT] = ("on_abort", _ATP)
        table[state, i.RECV_DISCONNECT] = ("on_disconnect", _DTP)
        table[state, i.RECV_UNFRAMEABLE] = ("unframeable", _CLOSED)
    # 3.2.5.3.2-8: the pending states ignore ACK, NAK, echoes and data.
    ignored = (i.RECV_DATA, i.RECV_CONNECT_ACK, i.RECV_CONNECT_NAK, i.RECV_ECHO_REQUEST)
    for state in (_AP, _ATP, _DAP, _DTP):
        for stimulus in (*ignored, i.RECV_ECHO_RESPONSE, i.SEND_DISCONNECT):
            table[state, stimulus] = ("ignore", state)
    # Once the end is reported only the timer (or the transport) matters.
    for state in (_AP, _ATP, _DTP):
        for stimulus in (i.RECV_DISCONNECT, i.RECV_DISCONNECT_ACK, i.RECV_INVALID, i.SEND_ABORT):
            table[state, stimulus] = ("ignore", state)
        table.setdefault((state, i.RECV_ABORT), ("ignore", state))
        table[state, i.RECV_UNFRAMEABLE] = ("close", _CLOSED)
    for state in State:
        table[state, i.CONNECTION_LOST] = ("close", _CLOSED)
    table[_CLOSED, i.CONNECTION_LOST] = ("ignore", _CLOSED)
    return table
