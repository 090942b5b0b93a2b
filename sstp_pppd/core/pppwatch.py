"""Watches the relayed PPP frames to learn how authentication ended, sans-IO.

Crypto binding needs the PPP authentication result and, for MS-CHAPv2, the MPPE
keys. Instead of a pppd plugin, the transport feeds every frame it relays to an
:class:`AuthWatcher` until :attr:`AuthWatcher.done`; the watcher reads the LCP
Configure-Ack, CHAP (RFC 1994, MS-CHAPv2 RFC 2759), PAP (RFC 1334) and EAP
(RFC 3748, EAP-MSCHAPv2 draft-kamath-pppext-eap-mschapv2) packets and returns one
:data:`AuthEvent` when the server has accepted or refused the client.

Frames are raw PPP frames as carried in SSTP data packets: with or without the
``FF 03`` address and control fields, with a one- or two-byte protocol field.
Malformed or truncated packets are ignored, never raised.
"""

from __future__ import annotations

import dataclasses
import re
import struct
from collections.abc import Callable

from . import crypto
from .ppp import (
    FIRST_LINK_PROTOCOL,
    FIRST_NETWORK_CONTROL_PROTOCOL,
    PROTO_CHAP,
    PROTO_EAP,
    PROTO_LCP,
    PROTO_PAP,
    ppp_protocol,
)

__all__ = [
    "AuthEvent",
    "AuthFailed",
    "AuthSucceeded",
    "AuthWatcher",
    "PasswordLookup",
    "ppp_protocol",
]


# RFC 1994 / RFC 1334 / RFC 3748 codes, by protocol.
_CHAP_CHALLENGE, _CHAP_RESPONSE, _CHAP_SUCCESS, _CHAP_FAILURE = 1, 2, 3, 4
_PAP_REQUEST, _PAP_ACK, _PAP_NAK = 1, 2, 3
_EAP_REQUEST, _EAP_RESPONSE, _EAP_SUCCESS, _EAP_FAILURE = 1, 2, 3, 4
_LCP_CONFIGURE_ACK = 2
_LCP_OPTION_AUTH = 3

# CHAP algorithms negotiated in the LCP Authentication-Protocol option.
_CHAP_MD5, _CHAP_MSCHAP, _CHAP_MSCHAPV2 = 0x05, 0x80, 0x81
_CHAP_NAMES = {_CHAP_MSCHAP: "MS-CHAP", _CHAP_MSCHAPV2: "MS-CHAPv2"}
_MSCHAPV2_VALUE_LENGTH = 49  # PeerChallenge 16, reserved 8, NT-Response 24, Flags 1
_MSCHAPV2_CHALLENGE_LENGTH = 16

# EAP types that pppwatch names; types 1-3 are not authentication methods.
_EAP_IDENTITY, _EAP_NOTIFICATION, _EAP_NAK = 1, 2, 3
_EAP_MSCHAPV2 = 26
_EAP_MS_CHALLENGE, _EAP_MS_RESPONSE, _EAP_MS_SUCCESS, _EAP_MS_FAILURE = 1, 2, 3, 4
_EAP_NAMES = {4: "EAP-MD5", 5: "EAP-OTP", 6: "EAP-GTC", 13: "EAP-TLS", 21: "EAP-TTLS"}
_EAP_NAMES |= {25: "PEAP", 26: "EAP-MSCHAPv2", 43: "EAP-FAST", 52: "EAP-PWD"}
# Methods that derive no keying material: their HLAK is zeros by definition.
_EAP_KEYLESS = frozenset({4, 5, 6})

_ZERO_HLAK = bytes(crypto.HLAK_LENGTH)
_AUTHENTICATOR_RE = re.compile(rb"S=([0-9A-Fa-f]{40})")

#: Gets the password for (username, server name); the server name is the CHAP
#: Challenge's Name, "" when unknown. ``None`` when no password is configured.
PasswordLookup = Callable[[str, str], str | None]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AuthSucceeded:
    """The server accepted the client; send CALL_CONNECTED with :attr:`hlak`.

    Fields:
        method: "none", "PAP", "CHAP-MD5", "MS-CHAP", "MS-CHAPv2", "EAP-MSCHAPv2",
            "EAP-TLS", "EAP-MD5", "PEAP", ... or "EAP-<type number>".
        hlak: the 32-byte HLAK: the client's send | receive key for MS-CHAPv2 and
            EAP-MSCHAPv2, zeros for methods without keys. Never shown by ``repr``.
        keys_known: False when the method has keys the watcher cannot know (no
            password for MS-CHAPv2, EAP-TLS, PEAP...); :attr:`hlak` is then zeros.
        why_unknown: when ``keys_known`` is False, why ("" when the method has keys no
            password gives, like EAP-TLS).
    """

    method: str
    hlak: bytes = dataclasses.field(repr=False)
    keys_known: bool
    why_unknown: str = dataclasses.field(default="", compare=False)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AuthFailed:
    """The server refused the client, or its MS-CHAPv2 Success did not verify.

    Fields:
        method: as in :class:`AuthSucceeded`.
        message: the server's message, printable (e.g. ``"E=691 R=0 C=... V=3"``),
            or a description of what went wrong.
    """

    method: str
    message: str


AuthEvent = AuthSucceeded | AuthFailed


@dataclasses.dataclass(slots=True)
class _MsChapV2:
    """What one MS-CHAPv2 exchange (over CHAP or EAP) has shown so far."""

    challenge_id: int = -1
    challenge: bytes = b""
    server_name: bytes = b""
    response: bytes = b""  # the 49-byte value
    username: bytes = b""
    challenge_of_response: bytes = b""  # the challenge the response answers
    success_message: bytes | None = None
    failure_message: bytes | None = None


def _packet(frame: bytes, offset: int) -> tuple[int, int, bytes] | None:
    """Return (code, identifier, data) of an LCP-style packet, padding removed."""
    if len(frame) < offset + 4:
        return None
    code, ident, length = struct.unpack_from("!BBH", frame, offset)
    if length < 4 or offset + length > len(frame):
        return None
    return code, ident, frame[offset + 4 : offset + length]


def _value_and_name(data: bytes) -> tuple[bytes, bytes] | None:
    """Split a CHAP-style Value-Size, Value, Name field."""
    if not data or 1 + data[0] > len(data):
        return None
    return data[1 : 1 + data[0]], data[1 + data[0] :]


def _text(data: bytes) -> str:
    text = data.rstrip(b"\x00").decode("utf-8", "replace")
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _lcp_auth_option(options: bytes) -> tuple[bool, tuple[int, int] | None]:
    """Return (well formed, (auth protocol, CHAP algorithm or 0) or None)."""
    i = 0
    while i + 2 <= len(options):
        kind, length = options[i], options[i + 1]
        if length < 2 or i + length > len(options):
            return False, None
        if kind == _LCP_OPTION_AUTH and length >= 4:
            algorithm = options[i + 4] if length >= 5 else 0
            return True, ((options[i + 2] << 8) | options[i + 3], algorithm)
        i += length
    return i == len(options), None


class AuthWatcher:
    """Fed every PPP frame in both directions until authentication is over.

    ``password_lookup(username, server_name)`` is called at most once, when an
    MS-CHAPv2 or EAP-MSCHAPv2 exchange succeeds, to derive the MPPE keys; it
    may raise (the error propagates) or return ``None`` (keys unknown).
    Once a method has returned an event, :attr:`done` is True and both methods
    return ``None``: the transport should stop calling them.
    """

    def __init__(self, password_lookup: PasswordLookup | None = None) -> None:
        self._lookup = password_lookup
        #: True once an :data:`AuthEvent` has been returned.
        self.done = False
        self._lcp_auth: tuple[int, int] | None = None
        self._chap = _MsChapV2()
        self._eap = _MsChapV2()
        self._eap_type: int | None = None
        self._pap_sent = False

    def __repr__(self) -> str:
        return f"<AuthWatcher done={self.done}>"

    # --- entry points ---------------------------------------------------------------

    def from_pppd(self, frame: bytes) -> AuthEvent | None:
        """Look at a frame pppd sends toward the server; return the outcome if known."""
        if self.done:
            return None
        protocol, offset = ppp_protocol(frame)
        if protocol < FIRST_LINK_PROTOCOL:
            # An NCP (IPCP, IPv6CP, CCP...) means pppd has entered the network phase,
            # which it does only after authentication succeeded (or none was needed).
            return (
                self._finish(self._network_phase())
                if protocol >= FIRST_NETWORK_CONTROL_PROTOCOL
                else None
            )
        packet = _packet(frame, offset)
        if packet is None:
            return None
        code, ident, data = packet
        if protocol == PROTO_CHAP and code == _CHAP_RESPONSE:
            self._chap_response(ident, data)
        elif protocol == PROTO_EAP and code == _EAP_RESPONSE:
            self._eap_response(data)
        elif protocol == PROTO_PAP and code == _PAP_REQUEST:
            self._pap_sent = True
        elif protocol == PROTO_LCP and code == _LCP_CONFIGURE_ACK:
            well_formed, auth = _lcp_auth_option(data)
            if well_formed:
                self._lcp_auth = auth
        return None

    def from_server(self, frame: bytes) -> AuthEvent | None:
        """Look at a frame the server sent; return the outcome if it ends authentication."""
        if self.done:
            return None
        protocol, offset = ppp_protocol(frame)
        if protocol not in (PROTO_CHAP, PROTO_EAP, PROTO_PAP):
            return None
        packet = _packet(frame, offset)
        if packet is None:
            return None
        code, ident, data = packet
        if protocol == PROTO_CHAP:
            return self._finish(self._chap_from_server(code, ident, data))
        if protocol == PROTO_EAP:
            return self._finish(self._eap_from_server(code, data))
        if code == _PAP_ACK:
            return self._finish(AuthSucceeded(method="PAP", hlak=_ZERO_HLAK, keys_known=True))
        if code == _PAP_NAK:
            message = data[1 : 1 + data[0]] if data else b""
            return self._finish(AuthFailed(method="PAP", message=_text(message) or "PAP Nak"))
        return None

    def _finish(self, event: AuthEvent | None) -> AuthEvent | None:
        if event is not None:
            self.done = True
        return event

    # --- CHAP ---------------------------------------------------------------------

    def _chap_response(self, ident: int, data: bytes) -> None:
        fields = _value_and_name(data)
        if fields is None:
            return
        value, name = fields
        chap = self._chap
        chap.response, chap.username = value, name
        chap.challenge_of_response = chap.challenge if ident == chap.challenge_id else b""

    def _chap_from_server(self, code: int, ident: int, data: bytes) -> AuthEvent | None:
        chap = self._chap
        if code == _CHAP_CHALLENGE:
            fields = _value_and_name(data)
            if fields is not None:
                chap.challenge_id = ident
                chap.challenge, chap.server_name = fields
            return None
        if code not in (_CHAP_SUCCESS, _CHAP_FAILURE):
            return None
        # Like pppd (chap-new.c chap_handle_status), the first Success or Failure
        # ends the exchange whatever its Identifier.
        method = self._chap_method()
        if code == _CHAP_FAILURE:
            return AuthFailed(method=method, message=_text(data) or "CHAP Failure")
        if method == "MS-CHAPv2" and _AUTHENTICATOR_RE.match(data) is None:
            # pppd (chapms2_check_success) fails the link on such a Success.
            return AuthFailed(method=method, message="MS-CHAPv2 Success without S=<authenticator>")
        chap.success_message = data
        return self._chap_succeeded(method)

    def _chap_method(self) -> str:
        algorithm = self._lcp_auth[1] if self._lcp_auth and self._lcp_auth[0] == PROTO_CHAP else 0
        if algorithm == 0 and len(self._chap.response) == _MSCHAPV2_VALUE_LENGTH:
            # MS-CHAP v1 and v2 Responses are both 49 bytes; v2 challenges are 16.
            v2 = len(self._chap.challenge) in (0, _MSCHAPV2_CHALLENGE_LENGTH)
            algorithm = _CHAP_MSCHAPV2 if v2 else _CHAP_MSCHAP
        if algorithm in (0, _CHAP_MD5):
            return "CHAP-MD5"
        return _CHAP_NAMES.get(algorithm, f"CHAP-0x{algorithm:02x}")

    def _chap_succeeded(self, method: str) -> AuthEvent:
        if method == "MS-CHAPv2":
            return self._mschapv2_result(method, self._chap)
        # CHAP-MD5 derives no keys; the watcher does not derive MS-CHAP v1 keys.
        return AuthSucceeded(method=method, hlak=_ZERO_HLAK, keys_known=method == "CHAP-MD5")

    # --- EAP ----------------------------------------------------------------------

    def _eap_response(self, data: bytes) -> None:
        if not data or data[0] in (_EAP_IDENTITY, _EAP_NOTIFICATION, _EAP_NAK):
            return
        self._eap_type = data[0]
        if data[0] != _EAP_MSCHAPV2 or len(data) < 5 or data[1] != _EAP_MS_RESPONSE:
            return
        fields = _value_and_name(data[5:])  # Type, OpCode, MS-CHAPv2-ID, MS-Length
        if fields is None or len(fields[0]) != _MSCHAPV2_VALUE_LENGTH:
            return
        eap = self._eap
        eap.response, eap.username = fields
        eap.challenge_of_response = eap.challenge if data[2] == eap.challenge_id else b""

    def _eap_from_server(self, code: int, data: bytes) -> AuthEvent | None:
        if code == _EAP_REQUEST:
            if len(data) >= 2 and data[0] == _EAP_MSCHAPV2:
                self._eap_mschapv2_request(data)
            return None
        method = self._eap_method()
        if code == _EAP_FAILURE:
            failure = self._eap.failure_message
            message = _text(failure) if failure else "EAP Failure"
            return AuthFailed(method=method, message=message or "EAP Failure")
        if code != _EAP_SUCCESS:
            return None
        return self._eap_succeeded(method)

    def _eap_mschapv2_request(self, data: bytes) -> None:
        if len(data) < 5:  # Type, OpCode, MS-CHAPv2-ID, MS-Length
            return
        opcode, eap = data[1], self._eap
        if opcode == _EAP_MS_CHALLENGE:
            fields = _value_and_name(data[5:])
            if fields is not None:
                eap.challenge_id = data[2]
                eap.challenge, eap.server_name = fields
        elif opcode == _EAP_MS_SUCCESS:
            eap.success_message = data[5:]
        elif opcode == _EAP_MS_FAILURE:
            eap.failure_message = data[5:]

    def _eap_method(self) -> str:
        if self._eap_type is None:
            return "EAP"
        return _EAP_NAMES.get(self._eap_type, f"EAP-{self._eap_type}")

    def _eap_succeeded(self, method: str) -> AuthEvent:
        if self._eap_type == _EAP_MSCHAPV2:
            return self._mschapv2_result(method, self._eap)
        keyless = self._eap_type is None or self._eap_type in _EAP_KEYLESS
        return AuthSucceeded(method=method, hlak=_ZERO_HLAK, keys_known=keyless)

    # --- results ------------------------------------------------------------------

    def _network_phase(self) -> AuthEvent:
        """pppd started an NCP: authentication is over even if its end went unseen."""
        if self._eap_type is not None:
            return self._eap_succeeded(self._eap_method())
        if self._chap.response or (self._lcp_auth and self._lcp_auth[0] == PROTO_CHAP):
            return self._chap_succeeded(self._chap_method())
        if self._pap_sent or (self._lcp_auth and self._lcp_auth[0] == PROTO_PAP):
            return AuthSucceeded(method="PAP", hlak=_ZERO_HLAK, keys_known=True)
        if self._lcp_auth and self._lcp_auth[0] == PROTO_EAP:
            return AuthSucceeded(method="EAP", hlak=_ZERO_HLAK, keys_known=False)
        return AuthSucceeded(method="none", hlak=_ZERO_HLAK, keys_known=True)

    def _mschapv2_result(self, method: str, exchange: _MsChapV2) -> AuthEvent:
        unknown = AuthSucceeded(
            method=method, hlak=_ZERO_HLAK, keys_known=False, why_unknown="no password at hand"
        )
        if len(exchange.response) != _MSCHAPV2_VALUE_LENGTH:
            return dataclasses.replace(unknown, why_unknown="its Response was not understood")
        if self._lookup is None:
            return unknown
        username = exchange.username.decode("utf-8", "surrogateescape")
        password = self._lookup(username, exchange.server_name.decode("utf-8", "surrogateescape"))
        if password is None:
            return unknown
        peer_challenge, nt_response = exchange.response[:16], exchange.response[24:48]
        # pppd's own hash first: it computed the NT-Response the server accepted.
        candidates = [crypto.pppd_password_hash(password)]
        if crypto.nt_password_hash(password) != candidates[0]:
            candidates.append(crypto.nt_password_hash(password))
        found = _AUTHENTICATOR_RE.search(exchange.success_message or b"")
        if found is not None and len(exchange.challenge_of_response) == 16:
            expected = b"S=" + found.group(1).upper()
            candidates = [
                password_hash
                for password_hash in candidates
                if crypto.generate_authenticator_response(
                    None,
                    nt_response,
                    peer_challenge,
                    exchange.challenge_of_response,
                    exchange.username,
                    password_hash=password_hash,
                ).encode()
                == expected
            ]
            if not candidates:
                # pppd checks S= with its own password and is the judge of the outcome: if
                # it rejects the server, the link ends there; if it accepts, our password
                # is not pppd's, and the keys are unknown rather than the login failed.
                return AuthSucceeded(
                    method=method,
                    hlak=_ZERO_HLAK,
                    keys_known=False,
                    why_unknown=f"the password for {username!r} does not match the server's"
                    " authenticator response (it differs from pppd's, or the server is not"
                    " who it claims)",
                )
        send, recv = crypto.mppe_keys_from_password_hash(candidates[0], nt_response)
        return AuthSucceeded(method=method, hlak=crypto.hlak(send, recv), keys_known=True)
