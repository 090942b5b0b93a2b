"""The sans-IO core of sstp-pppd: bytes, events and ``now`` in and out, no I/O.

The public API, what the rest of the package (and docs/DESIGN.md's "Contracts") relies
on, is the names below; everything else in these modules may change. They are
importable from here, and are loaded on first use, so that importing one module of
the core (``core.errors`` at start-up, say) does not load them all.

- :mod:`.client`: :class:`ClientConnection`, the whole client after TLS (HTTP head,
  SSTP call, PPP policy, outcome), its events and :class:`Outcome`/:class:`KeySource`;
  its parts (:mod:`.httpphase`, :mod:`.callsetup`, :mod:`.keywait`, :mod:`.authwatch`)
  are internal.
- :mod:`.connection` and :mod:`.events`: the [MS-SSTP] 3.1 state machine and its events.
- :mod:`.messages`, :mod:`.handshake`, :mod:`.proxy`: the SSTP and HTTP codecs.
- :mod:`.crypto`, :mod:`.hdlc`, :mod:`.pppwatch`, :mod:`.ppp`: keys and MACs, RFC 1662
  framing, the authentication watcher, PPP protocol numbers.
- :mod:`.errors`: the core's exceptions (no exit codes: ``sstp_pppd.errors`` maps them).
"""

from __future__ import annotations

import sys

# Neither importlib nor typing at import time: this package comes in on every start-up,
# even a bare --version (scrub.py needs core.redact), and typing alone costs milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Public name -> the core module that defines it.
_EXPORTS = {
    "ClientConnection": "client",
    "ClientEvent": "client_events",
    "HttpAccepted": "client_events",
    "FrameDropped": "client_events",
    "CallConnected": "client_events",
    "BindingAccepted": "client_events",
    "CallEnded": "client_events",
    "Outcome": "client_events",
    "KeySource": "client_events",
    "EARLY_FRAMES_MAX": "client",
    "Connection": "connection",
    "State": "connection",
    "Event": "events",
    "ConnectAcked": "events",
    "PppFrames": "events",
    "EchoRequested": "events",
    "Disconnected": "events",
    "Aborted": "events",
    "ConnectionClosed": "events",
    "KeepaliveExpired": "events",
    "AuthWatcher": "pppwatch",
    "AuthSucceeded": "pppwatch",
    "AuthFailed": "pppwatch",
    "PasswordLookup": "pppwatch",
    "SstpError": "errors",
    "UsageError": "errors",
    "HttpError": "errors",
    "ProtocolError": "errors",
    "FramingError": "errors",
}

__all__ = [
    "EARLY_FRAMES_MAX",
    "Aborted",
    "AuthFailed",
    "AuthSucceeded",
    "AuthWatcher",
    "BindingAccepted",
    "CallConnected",
    "CallEnded",
    "ClientConnection",
    "ClientEvent",
    "ConnectAcked",
    "Connection",
    "ConnectionClosed",
    "Disconnected",
    "EchoRequested",
    "Event",
    "FrameDropped",
    "FramingError",
    "HttpAccepted",
    "HttpError",
    "KeepaliveExpired",
    "KeySource",
    "Outcome",
    "PasswordLookup",
    "PppFrames",
    "ProtocolError",
    "SstpError",
    "State",
    "UsageError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    qualified = f"{__name__}.{module}"
    __import__(qualified)  # what importlib.import_module does, without importing importlib
    return getattr(sys.modules[qualified], name)
