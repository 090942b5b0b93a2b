"""Whether LCP agreed on an authentication method, and if not, why: sans-IO.

When the two ends of the link cannot agree how to authenticate, nothing fails loudly:
pppd Configure-Naks (or -Rejects) the Authentication-Protocol option the server asks
for, the server stops asking, LCP opens without authentication, and then the server
ends the link ("peer refused to authenticate") or simply hangs up. What the user sees
is the consequence, the server disconnecting. :class:`LcpAuthTracker` is fed the LCP
frames both ways and remembers the first refusal of an authentication method; when the
link then ends (an LCP Terminate-Request from either end, or the call ending) it
returns an :class:`AuthNotAgreed` naming the method, who refused it and how, and the
pppd option that would fix it.

What real pppd 2.4.9 sends (seen in User-Mode Linux, tests/e2e/test_realcause.py):

- server ``require-eap``, client ``refuse-eap``: the server's ConfReq has
  ``<auth eap>``, pppd answers ``ConfNak <auth chap MD5>``, the server's next ConfReq
  has no auth option, pppd acks it, then the server sends
  ``TermReq "peer refused to authenticate"``;
- server ``require-mschap-v2``, client ``refuse-mschap-v2``: the same, with
  ``<auth chap MS-v2>`` and again ``ConfNak <auth chap MD5>`` (a CHAP digest pppd
  refuses is Naked with the CHAP digest it prefers, MD5 first);
- server ``require-pap``, client ``refuse-pap``: the same with ``<auth pap>``, Naked
  with ``<auth eap>`` (pppd suggests EAP first, then CHAP, then PAP);
- a client that may use no method (every ``refuse-*``, or no password): ``No auth is
  possible``, ``ConfRej <auth chap MS-v2>``, then the same Terminate-Request;
- client ``auth require-chap``, server ``noauth``: the server rejects pppd's
  ``<auth chap MD5>``, and pppd itself sends ``TermReq "peer refused to authenticate"``.

Frames are raw PPP frames as in :mod:`.ppp`. Malformed packets are ignored, never raised.
"""

from __future__ import annotations

import dataclasses
import enum
import struct

from .ppp import PROTO_CHAP, PROTO_EAP, PROTO_LCP, PROTO_PAP, ppp_protocol

__all__ = ["AuthNotAgreed", "LcpAuthTracker", "auth_method_name"]

# RFC 1661 5: LCP codes.
_CONF_REQ, _CONF_ACK, _CONF_NAK, _CONF_REJ = 1, 2, 3, 4
_TERM_REQ, _PROTOCOL_REJECT = 5, 8
_OPTION_AUTH = 3  # RFC 1661 6.2 Authentication-Protocol

_CHAP_NAMES = {0x05: "CHAP-MD5", 0x80: "MS-CHAP", 0x81: "MS-CHAPv2"}
#: pppd's options that stop it using / make it demand a method (pppd(8)).
_REFUSE = {
    "PAP": "refuse-pap",
    "CHAP-MD5": "refuse-chap",
    "MS-CHAP": "refuse-mschap",
    "MS-CHAPv2": "refuse-mschap-v2",
    "EAP": "refuse-eap",
}
_REQUIRE = {
    "PAP": "require-pap",
    "CHAP-MD5": "require-chap",
    "MS-CHAP": "require-mschap",
    "MS-CHAPv2": "require-mschap-v2",
    "EAP": "require-eap",
}
_AUTH_PROTOCOLS = {PROTO_PAP: "PAP", PROTO_CHAP: "CHAP", PROTO_EAP: "EAP"}
_REASON_MAX = 80


def auth_method_name(value: bytes) -> str:
    """The method an Authentication-Protocol option's value (protocol, data) names."""
    if len(value) < 2:
        return "an unreadable method"
    protocol = (value[0] << 8) | value[1]
    if protocol == PROTO_CHAP:
        if len(value) < 3:
            return "CHAP"
        return _CHAP_NAMES.get(value[2], f"CHAP algorithm 0x{value[2]:02x}")
    return _AUTH_PROTOCOLS.get(protocol, f"protocol 0x{protocol:04x}")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AuthNotAgreed:
    """LCP never agreed on an authentication method, and the link ended for it.

    Fields:
        method: the method that was asked for and refused ("EAP", "MS-CHAPv2", ...).
        message: one line for the user: what failed first and how to fix it.
    """

    method: str
    message: str


@enum.unique
class _Side(enum.Enum):
    PPPD = "pppd"
    SERVER = "the server"


@dataclasses.dataclass(frozen=True, slots=True)
class _Refusal:
    """``asker`` asked the other end to authenticate itself with ``method``; the other
    end answered ``how``."""

    asker: _Side
    method: str
    how: str  # "Configure-Nak suggesting X", "Configure-Reject", "Protocol-Reject"
    rejected: bool  # Configure-Reject: the refuser will use no method at all


def _options(data: bytes) -> list[tuple[int, bytes]] | None:
    """The (type, value) options of a Configure packet's data; None if malformed."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        if i + 2 > len(data):
            return None
        kind, length = data[i], data[i + 1]
        if length < 2 or i + length > len(data):
            return None
        out.append((kind, data[i + 2 : i + length]))
        i += length
    return out


def _auth_value(options: list[tuple[int, bytes]]) -> bytes | None:
    for kind, value in options:
        if kind == _OPTION_AUTH:
            return value
    return None


def _reason(data: bytes) -> str:
    text = data[:_REASON_MAX].decode("utf-8", "replace")
    return "".join(ch if ch.isprintable() else "?" for ch in text).strip()


class LcpAuthTracker:
    """Fed every PPP frame both ways until the link is settled; see the module doc.

    Each method returns an :class:`AuthNotAgreed` at most once, then :attr:`done` is
    True and they return ``None``.
    """

    def __init__(self) -> None:
        #: True once the verdict has been returned.
        self.done = False
        # The auth option of each side's latest Configure-Request (None: none asked).
        self._asked: dict[_Side, bytes | None] = {_Side.PPPD: None, _Side.SERVER: None}
        # The first refusal not (yet) followed by an agreement.
        self._refusal: _Refusal | None = None

    def __repr__(self) -> str:
        return f"<LcpAuthTracker done={self.done} refused={self._refusal is not None}>"

    def from_pppd(self, frame: bytes) -> AuthNotAgreed | None:
        """A frame pppd sends to the server."""
        return self._frame(frame, _Side.PPPD)

    def from_server(self, frame: bytes) -> AuthNotAgreed | None:
        """A frame the server sent to pppd."""
        return self._frame(frame, _Side.SERVER)

    def link_ended(self) -> AuthNotAgreed | None:
        """The call ended without a Terminate-Request: a refusal seen is the cause."""
        return self._verdict(None, None)

    # --- the frames ------------------------------------------------------------------

    def _frame(self, frame: bytes, sender: _Side) -> AuthNotAgreed | None:
        if self.done:
            return None
        protocol, offset = ppp_protocol(frame)
        if protocol != PROTO_LCP or len(frame) < offset + 4:
            return None
        code, _ident, length = struct.unpack_from("!BBH", frame, offset)
        if length < 4 or offset + length > len(frame):
            return None
        data = frame[offset + 4 : offset + length]
        other = _Side.SERVER if sender is _Side.PPPD else _Side.PPPD
        if code == _TERM_REQ:
            return self._verdict(sender, _reason(data))
        if code == _PROTOCOL_REJECT:
            self._protocol_reject(sender, data)
            return None
        if code not in (_CONF_REQ, _CONF_ACK, _CONF_NAK, _CONF_REJ):
            return None
        options = _options(data)
        if options is None:
            return None
        value = _auth_value(options)
        if code == _CONF_REQ:
            self._asked[sender] = value
        elif code == _CONF_ACK:
            # ``sender`` acks what ``other`` asked: with an auth option, they agree.
            if value is not None and self._refusal and self._refusal.asker is other:
                self._refusal = None
        elif value is not None and self._refusal is None:
            # ``sender`` refuses the method ``other`` asked it to authenticate with.
            asked = self._asked[other]
            if asked is None:  # its request went unseen: a Reject still names it
                asked = value if code == _CONF_REJ else None
            method = auth_method_name(asked) if asked is not None else "a method"
            if code == _CONF_NAK:
                how, rejected = f"Configure-Nak suggesting {auth_method_name(value)}", False
            else:
                how, rejected = "Configure-Reject", True
            self._refusal = _Refusal(other, method, how, rejected)
        return None

    def _protocol_reject(self, sender: _Side, data: bytes) -> None:
        if len(data) < 2 or self._refusal is not None:
            return
        protocol = (data[0] << 8) | data[1]
        name = _AUTH_PROTOCOLS.get(protocol)
        if name is not None:
            # Who asked for it is unknown (CHAP goes both ways): ``asker`` is the sender.
            self._refusal = _Refusal(sender, name, "Protocol-Reject", rejected=False)

    # --- the verdict -----------------------------------------------------------------

    def _verdict(self, ender: _Side | None, reason: str | None) -> AuthNotAgreed | None:
        refusal = self._refusal
        if refusal is None or self.done:
            return None
        self.done = True
        if ender is None:
            ended = "then the call ended"
        else:
            said = f' ("{reason}")' if reason else ""
            ended = f"then {ender.value} ended the link{said}"
        method = refusal.method
        if refusal.how == "Protocol-Reject":
            # The sender of the Protocol-Reject does not run ``method`` at all.
            what = f"{refusal.asker.value} rejected {method} packets (Protocol-Reject), {ended}"
            if refusal.asker is _Side.PPPD:
                fix = self._fix_for_pppd(refusal)
            else:
                fix = "allow in pppd's options only methods the server accepts"
        elif refusal.asker is _Side.SERVER:
            refused = (
                "pppd refused to authenticate at all" if refusal.rejected else "pppd refused it"
            )
            what = f"the server asked for {method}, {refused} ({refusal.how}), {ended}"
            fix = self._fix_for_pppd(refusal)
        else:
            what = (
                f"pppd required the server to authenticate itself with {method}, the "
                f"server refused ({refusal.how}), {ended}"
            )
            option = _REQUIRE.get(method)
            dropped = f"drop auth/{option}" if option else "drop auth"
            fix = (
                f"add noauth to pppd's options (or {dropped}): an SSTP server does not "
                "authenticate itself in PPP, its TLS certificate identifies it"
            )
        return AuthNotAgreed(
            method=method, message=f"PPP authentication method not agreed: {what}; {fix}"
        )

    @staticmethod
    def _fix_for_pppd(refusal: _Refusal) -> str:
        """How to make pppd accept the method the server asked for (pppd(8), auth.c)."""
        method = refusal.method
        option = _REFUSE.get(method)
        allow = f"allow {method} in pppd's options"
        allow += f" (remove {option} if set)" if option else ""
        if refusal.rejected:
            # pppd rejects the option only when it may use no method at all: every
            # method refused, or no password or secret for the user.
            return (
                f"give pppd a password for the user (--password-file, chap-secrets) and "
                f"{allow}, or ask the server for another method"
            )
        if refusal.how == "Protocol-Reject":
            return f"{allow}, or ask the server for another method"
        suggested = refusal.how.removeprefix("Configure-Nak suggesting ")
        return f"{allow}, or ask the server to offer {suggested}"
