"""Tests of sstp_pppd.core.pppwatch with real PPP frames built from the RFC 2759/3079 vectors."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sstp_pppd.core import crypto
from sstp_pppd.core.pppwatch import AuthFailed, AuthSucceeded, AuthWatcher

from .. import vectors

H = bytes.fromhex

# RFC 2759 9.2 / RFC 3079 3.5.3 (tests/vectors.py), as they appear in PPP frames.
USER = vectors.USER.encode()
PASSWORD = vectors.PASSWORD
AUTH_CHALLENGE = vectors.AUTH_CHALLENGE
PEER_CHALLENGE = vectors.PEER_CHALLENGE
NT_RESPONSE = vectors.NT_RESPONSE
AUTH_RESPONSE = vectors.AUTH_RESPONSE.encode()
CLIENT_SEND = vectors.CLIENT_SEND_KEY
CLIENT_RECV = vectors.CLIENT_RECV_KEY
HLAK = vectors.MSCHAPV2_HLAK
ZEROS = bytes(32)

LCP, PAP, CHAP, EAP, IPCP, IPV6CP, CCP = 0xC021, 0xC023, 0xC223, 0xC227, 0x8021, 0x8057, 0x80FD
MSCHAPV2_VALUE = PEER_CHALLENGE + bytes(8) + NT_RESPONSE + b"\x00"


def ppp(protocol: int, code: int, ident: int, data: bytes = b"", *, acfc: bool = False) -> bytes:
    """A PPP frame carrying an LCP-style packet (Code, Identifier, Length, Data)."""
    head = b"" if acfc else b"\xff\x03"
    return head + struct.pack("!HBBH", protocol, code, ident, 4 + len(data)) + data


def value(v: bytes, name: bytes) -> bytes:
    return bytes([len(v)]) + v + name


def lcp_ack(*options: bytes, ident: int = 1) -> bytes:
    return ppp(LCP, 2, ident, b"".join(options))


AUTH_MSCHAPV2 = H("0305c22381")
AUTH_MSCHAP = H("0305c22380")
AUTH_CHAP_MD5 = H("0305c22305")
AUTH_PAP = H("0304c023")
AUTH_EAP = H("0304c227")
MRU = H("01040ffb")
MAGIC = H("050612345678")


class Lookup:
    """A password lookup that records its calls."""

    def __init__(self, password: str | None = PASSWORD) -> None:
        self.password = password
        self.calls: list[tuple[str, str]] = []

    def __call__(self, username: str, server: str) -> str | None:
        self.calls.append((username, server))
        return self.password


def chap_exchange(
    watcher: AuthWatcher,
    success: bytes = AUTH_RESPONSE + b" M=Access granted",
    *,
    acfc: bool = False,
    name: bytes = USER,
    ident: int = 7,
) -> AuthSucceeded | AuthFailed | None:
    assert watcher.from_pppd(lcp_ack(MRU, AUTH_MSCHAPV2, MAGIC)) is None
    challenge = ppp(CHAP, 1, ident, value(AUTH_CHALLENGE, b"sstpd"), acfc=acfc)
    assert watcher.from_server(challenge) is None
    assert watcher.from_pppd(ppp(CHAP, 2, ident, value(MSCHAPV2_VALUE, name), acfc=acfc)) is None
    assert not watcher.done
    return watcher.from_server(ppp(CHAP, 3, ident, success, acfc=acfc))


# --- MS-CHAPv2 over CHAP -------------------------------------------------------------


@pytest.mark.parametrize("acfc", [False, True])
def test_mschapv2_derives_rfc3079_keys(acfc: bool) -> None:
    lookup = Lookup()
    watcher = AuthWatcher(lookup)
    event = chap_exchange(watcher, acfc=acfc)
    assert event == AuthSucceeded(method="MS-CHAPv2", hlak=HLAK, keys_known=True)
    assert lookup.calls == [("User", "sstpd")]
    assert watcher.done
    # Done: nothing more is reported and the lookup is not called again.
    assert watcher.from_server(ppp(CHAP, 3, 7, AUTH_RESPONSE)) is None
    assert watcher.from_pppd(ppp(IPCP, 1, 1, H("0306 0a000001"))) is None
    assert lookup.calls == [("User", "sstpd")]


def test_hlak_not_in_repr() -> None:
    event = chap_exchange(AuthWatcher(Lookup()))
    assert HLAK.hex() not in repr(event).lower()
    assert repr(HLAK) not in repr(event)
    assert "MS-CHAPv2" in repr(event)


def test_mschapv2_success_without_authenticator_response_fails() -> None:
    # pppd refuses such a Success (chapms2_check_success), so the link will not come up.
    event = chap_exchange(AuthWatcher(Lookup()), success=b"M=Welcome")
    assert event == AuthFailed(
        method="MS-CHAPv2", message="MS-CHAPv2 Success without S=<authenticator>"
    )
    assert chap_exchange(AuthWatcher(Lookup(None)), success=b"") == event


def test_lower_case_authenticator_response_accepted() -> None:
    event = chap_exchange(
        AuthWatcher(Lookup()), success=AUTH_RESPONSE.lower().replace(b"s=", b"S=")
    )
    assert isinstance(event, AuthSucceeded)
    assert event.hlak == HLAK


def test_domain_is_not_hashed_but_given_to_lookup() -> None:
    lookup = Lookup()
    event = chap_exchange(AuthWatcher(lookup), name=b"CORP\\User")
    assert isinstance(event, AuthSucceeded)
    assert event.hlak == HLAK
    assert lookup.calls == [("CORP\\User", "sstpd")]


def test_password_other_than_pppds_means_keys_unknown() -> None:
    # pppd, not the watcher, judges the login: it checked S= with its own password.
    event = chap_exchange(AuthWatcher(Lookup("clientpass")))
    assert isinstance(event, AuthSucceeded)
    assert (event.method, event.hlak, event.keys_known) == ("MS-CHAPv2", ZEROS, False)
    assert "authenticator response" in event.why_unknown
    assert "clientpass" not in event.why_unknown


def test_forged_authenticator_response_gives_no_keys() -> None:
    forged = b"S=" + b"0" * 40 + b" M=hello"
    event = chap_exchange(AuthWatcher(Lookup()), success=forged)
    assert isinstance(event, AuthSucceeded)
    assert not event.keys_known


@pytest.mark.parametrize("lookup", [None, Lookup(None)])
def test_no_password_means_keys_unknown(lookup: Lookup | None) -> None:
    event = chap_exchange(AuthWatcher(lookup))
    assert event == AuthSucceeded(method="MS-CHAPv2", hlak=ZEROS, keys_known=False)
    assert isinstance(event, AuthSucceeded) and event.why_unknown == "no password at hand"


def test_lookup_errors_propagate() -> None:
    def broken(username: str, server: str) -> str | None:
        raise LookupError("no secrets file")

    with pytest.raises(LookupError):
        chap_exchange(AuthWatcher(broken))


def test_mschapv2_failure_message() -> None:
    message = b"E=691 R=0 C=0123456789ABCDEF0123456789ABCDEF V=3 M=Authentication failure"
    watcher = AuthWatcher(Lookup())
    watcher.from_server(ppp(CHAP, 1, 9, value(AUTH_CHALLENGE, b"sstpd")))
    watcher.from_pppd(ppp(CHAP, 2, 9, value(MSCHAPV2_VALUE, USER)))
    event = watcher.from_server(ppp(CHAP, 4, 9, message))
    assert event == AuthFailed(method="MS-CHAPv2", message=message.decode())
    assert watcher.done


def test_failure_message_is_made_printable() -> None:
    watcher = AuthWatcher()
    watcher.from_pppd(lcp_ack(AUTH_CHAP_MD5))
    event = watcher.from_server(ppp(CHAP, 4, 1, b"no\x1b[31m\xffway\x00"))
    assert event == AuthFailed(method="CHAP-MD5", message="no?[31m\ufffdway")


def test_success_identifier_is_not_checked() -> None:
    # pppd takes the first Success or Failure whatever its Identifier; so do we.
    watcher = AuthWatcher(Lookup())
    watcher.from_server(ppp(CHAP, 1, 7, value(AUTH_CHALLENGE, b"sstpd")))
    watcher.from_pppd(ppp(CHAP, 2, 7, value(MSCHAPV2_VALUE, USER)))
    event = watcher.from_server(ppp(CHAP, 3, 6, AUTH_RESPONSE))
    assert isinstance(event, AuthSucceeded)
    assert event.hlak == HLAK


def test_mschapv2_detected_without_lcp() -> None:
    watcher = AuthWatcher(Lookup())
    watcher.from_server(ppp(CHAP, 1, 1, value(AUTH_CHALLENGE, b"")))
    watcher.from_pppd(ppp(CHAP, 2, 1, value(MSCHAPV2_VALUE, USER)))
    event = watcher.from_server(ppp(CHAP, 3, 1, AUTH_RESPONSE))
    assert event == AuthSucceeded(method="MS-CHAPv2", hlak=HLAK, keys_known=True)


def test_rechallenge_uses_the_answered_challenge() -> None:
    # The server retransmits a new challenge after pppd answered the first: the
    # Success answers the first Response, verified with the first challenge.
    watcher = AuthWatcher(Lookup())
    watcher.from_server(ppp(CHAP, 1, 7, value(AUTH_CHALLENGE, b"sstpd")))
    watcher.from_pppd(ppp(CHAP, 2, 7, value(MSCHAPV2_VALUE, USER)))
    watcher.from_server(ppp(CHAP, 1, 8, value(bytes(16), b"sstpd")))
    event = watcher.from_server(ppp(CHAP, 3, 7, AUTH_RESPONSE))
    assert isinstance(event, AuthSucceeded)
    assert event.hlak == HLAK


@pytest.mark.parametrize("use_pppd_hash", [True, False])
def test_non_ascii_password_picks_the_hash_the_server_confirmed(use_pppd_hash: bool) -> None:
    password = "pässwörd\U0001f511"
    password_hash = (
        crypto.pppd_password_hash(password) if use_pppd_hash else crypto.nt_password_hash(password)
    )
    success = crypto.generate_authenticator_response(
        None, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER, password_hash=password_hash
    ).encode()
    event = chap_exchange(AuthWatcher(Lookup(password)), success=success)
    send, recv = crypto.mppe_keys_from_password_hash(password_hash, NT_RESPONSE)
    assert event == AuthSucceeded(method="MS-CHAPv2", hlak=send + recv, keys_known=True)


def test_non_ascii_password_without_authenticator_uses_pppd_hash() -> None:
    # The Success went unseen; pppd's IPCP shows it was accepted.
    password = "pässwörd"
    watcher = AuthWatcher(Lookup(password))
    watcher.from_server(ppp(CHAP, 1, 7, value(AUTH_CHALLENGE, b"sstpd")))
    watcher.from_pppd(ppp(CHAP, 2, 7, value(MSCHAPV2_VALUE, USER)))
    event = watcher.from_pppd(ppp(IPCP, 1, 1))
    send, recv = crypto.mppe_keys_from_password_hash(
        crypto.pppd_password_hash(password), NT_RESPONSE
    )
    assert event == AuthSucceeded(method="MS-CHAPv2", hlak=send + recv, keys_known=True)


def test_eap_mschapv2_success_without_authenticator_derives_keys() -> None:
    *_, last = eap_exchange(AuthWatcher(Lookup()), success_message=b"M=OK")
    assert last == AuthSucceeded(method="EAP-MSCHAPv2", hlak=HLAK, keys_known=True)


# --- other CHAP algorithms and PAP ----------------------------------------------------


def test_chap_md5() -> None:
    watcher = AuthWatcher(Lookup())
    watcher.from_pppd(lcp_ack(MRU, AUTH_CHAP_MD5))
    watcher.from_server(ppp(CHAP, 1, 3, value(bytes(range(16)), b"srv")))
    watcher.from_pppd(ppp(CHAP, 2, 3, value(bytes(16), USER)))
    event = watcher.from_server(ppp(CHAP, 3, 3, b"Welcome"))
    assert event == AuthSucceeded(method="CHAP-MD5", hlak=ZEROS, keys_known=True)


def test_mschap_v1_keys_are_unknown() -> None:
    watcher = AuthWatcher(Lookup())
    watcher.from_pppd(lcp_ack(AUTH_MSCHAP))
    watcher.from_server(ppp(CHAP, 1, 3, value(bytes(8), b"srv")))
    watcher.from_pppd(ppp(CHAP, 2, 3, value(bytes(49), USER)))
    event = watcher.from_server(ppp(CHAP, 3, 3, b""))
    assert event == AuthSucceeded(method="MS-CHAP", hlak=ZEROS, keys_known=False)


def test_pap_ack() -> None:
    watcher = AuthWatcher(Lookup())
    watcher.from_pppd(lcp_ack(AUTH_PAP))
    watcher.from_pppd(ppp(PAP, 1, 1, b"\x04User\x0aclientPass"))
    event = watcher.from_server(ppp(PAP, 2, 1, b"\x02ok"))
    assert event == AuthSucceeded(method="PAP", hlak=ZEROS, keys_known=True)


def test_pap_nak() -> None:
    watcher = AuthWatcher()
    watcher.from_pppd(ppp(PAP, 1, 1, b"\x04User\x03bad"))
    event = watcher.from_server(ppp(PAP, 3, 1, b"\x0cbad password", acfc=True))
    assert event == AuthFailed(method="PAP", message="bad password")
    assert AuthWatcher().from_server(ppp(PAP, 3, 1)) == AuthFailed(method="PAP", message="PAP Nak")


# --- EAP ------------------------------------------------------------------------------


def eap_mschapv2(opcode: int, ms_id: int, payload: bytes) -> bytes:
    return bytes([26, opcode, ms_id]) + struct.pack("!H", 4 + len(payload)) + payload


def eap_exchange(
    watcher: AuthWatcher, success_message: bytes = AUTH_RESPONSE + b" M=OK", *, nak: bool = False
) -> list[AuthSucceeded | AuthFailed | None]:
    events = [
        watcher.from_pppd(lcp_ack(AUTH_EAP)),
        watcher.from_server(ppp(EAP, 1, 1, b"\x01")),
        watcher.from_pppd(ppp(EAP, 2, 1, b"\x01User")),
    ]
    if nak:
        events.append(watcher.from_server(ppp(EAP, 1, 2, b"\x0d\x20")))  # EAP-TLS Start
        events.append(watcher.from_pppd(ppp(EAP, 2, 2, b"\x03\x1a")))  # Nak, wants 26
    challenge = eap_mschapv2(1, 5, value(AUTH_CHALLENGE, b"nps"))
    events.append(watcher.from_server(ppp(EAP, 1, 3, challenge)))
    response = eap_mschapv2(2, 5, value(MSCHAPV2_VALUE, USER))
    events.append(watcher.from_pppd(ppp(EAP, 2, 3, response)))
    events.append(watcher.from_server(ppp(EAP, 1, 4, eap_mschapv2(3, 5, success_message))))
    events.append(watcher.from_pppd(ppp(EAP, 2, 4, b"\x1a\x03")))
    events.append(watcher.from_server(ppp(EAP, 3, 4)))
    return events


@pytest.mark.parametrize("nak", [False, True])
def test_eap_mschapv2_derives_keys(nak: bool) -> None:
    lookup = Lookup()
    watcher = AuthWatcher(lookup)
    *before, last = eap_exchange(watcher, nak=nak)
    assert before == [None] * len(before)
    assert last == AuthSucceeded(method="EAP-MSCHAPv2", hlak=HLAK, keys_known=True)
    assert lookup.calls == [("User", "nps")]


def test_eap_mschapv2_wrong_password() -> None:
    *_, last = eap_exchange(AuthWatcher(Lookup("nope")))
    assert isinstance(last, AuthSucceeded)
    assert (last.method, last.keys_known) == ("EAP-MSCHAPv2", False)


def test_eap_mschapv2_without_password() -> None:
    *_, last = eap_exchange(AuthWatcher(Lookup(None)))
    assert last == AuthSucceeded(method="EAP-MSCHAPv2", hlak=ZEROS, keys_known=False)


def test_eap_mschapv2_failure() -> None:
    watcher = AuthWatcher(Lookup())
    message = b"E=691 R=1 C=00112233445566778899AABBCCDDEEFF V=3 M=Access denied"
    watcher.from_server(ppp(EAP, 1, 3, eap_mschapv2(1, 5, value(AUTH_CHALLENGE, b"nps"))))
    watcher.from_pppd(ppp(EAP, 2, 3, eap_mschapv2(2, 5, value(MSCHAPV2_VALUE, USER))))
    assert watcher.from_server(ppp(EAP, 1, 4, eap_mschapv2(4, 5, message))) is None
    assert watcher.from_pppd(ppp(EAP, 2, 4, b"\x1a\x04")) is None
    event = watcher.from_server(ppp(EAP, 4, 4))
    assert event == AuthFailed(method="EAP-MSCHAPv2", message=message.decode())


def test_eap_failure_without_message() -> None:
    watcher = AuthWatcher()
    watcher.from_pppd(ppp(EAP, 2, 1, b"\x01User"))
    assert watcher.from_server(ppp(EAP, 4, 1)) == AuthFailed(method="EAP", message="EAP Failure")


@pytest.mark.parametrize(
    ("eap_type", "method", "keys_known"),
    [(13, "EAP-TLS", False), (25, "PEAP", False), (4, "EAP-MD5", True), (99, "EAP-99", False)],
)
def test_other_eap_methods(eap_type: int, method: str, keys_known: bool) -> None:
    watcher = AuthWatcher(Lookup())
    watcher.from_server(ppp(EAP, 1, 1, b"\x01"))
    watcher.from_pppd(ppp(EAP, 2, 1, b"\x01User"))
    watcher.from_server(ppp(EAP, 1, 2, bytes([eap_type, 0])))
    watcher.from_pppd(ppp(EAP, 2, 2, bytes([eap_type, 0, 1, 2])))
    event = watcher.from_server(ppp(EAP, 3, 2))
    assert event == AuthSucceeded(method=method, hlak=ZEROS, keys_known=keys_known)


# --- no authentication, network phase, framing -----------------------------------------


@pytest.mark.parametrize("ncp", [IPCP, IPV6CP, CCP])
def test_no_auth_reported_when_pppd_starts_an_ncp(ncp: int) -> None:
    watcher = AuthWatcher(Lookup())
    assert watcher.from_pppd(lcp_ack(MRU, MAGIC)) is None
    # The server's NCP frames do not count: only pppd knows its phase.
    assert watcher.from_server(ppp(IPCP, 1, 1, H("03060a000001"))) is None
    event = watcher.from_pppd(ppp(ncp, 1, 1, b""))
    assert event == AuthSucceeded(method="none", hlak=ZEROS, keys_known=True)


def test_ncp_without_acfc() -> None:
    watcher = AuthWatcher()
    event = watcher.from_pppd(ppp(IPCP, 1, 1, acfc=True))
    assert event == AuthSucceeded(method="none", hlak=ZEROS, keys_known=True)


def test_missed_success_is_completed_by_the_network_phase() -> None:
    watcher = AuthWatcher(Lookup())
    watcher.from_pppd(lcp_ack(AUTH_MSCHAPV2))
    watcher.from_server(ppp(CHAP, 1, 7, value(AUTH_CHALLENGE, b"sstpd")))
    watcher.from_pppd(ppp(CHAP, 2, 7, value(MSCHAPV2_VALUE, USER)))
    watcher.from_server(ppp(CHAP, 3, 7, AUTH_RESPONSE)[:-5])  # truncated: ignored
    assert not watcher.done
    event = watcher.from_pppd(ppp(IPCP, 1, 1))
    assert event == AuthSucceeded(method="MS-CHAPv2", hlak=HLAK, keys_known=True)


@pytest.mark.parametrize(
    ("option", "method", "keys_known"),
    [(AUTH_MSCHAPV2, "MS-CHAPv2", False), (AUTH_PAP, "PAP", True), (AUTH_EAP, "EAP", False)],
)
def test_network_phase_after_unseen_auth(option: bytes, method: str, keys_known: bool) -> None:
    watcher = AuthWatcher(Lookup())
    watcher.from_pppd(lcp_ack(option))
    event = watcher.from_pppd(ppp(IPCP, 1, 1))
    assert event == AuthSucceeded(method=method, hlak=ZEROS, keys_known=keys_known)


def test_lcp_renegotiation_replaces_the_auth_protocol() -> None:
    watcher = AuthWatcher()
    watcher.from_pppd(lcp_ack(AUTH_PAP))
    watcher.from_pppd(lcp_ack(MRU))
    assert watcher.from_pppd(ppp(IPCP, 1, 1)) == AuthSucceeded(
        method="none", hlak=ZEROS, keys_known=True
    )


def test_malformed_lcp_ack_is_ignored() -> None:
    watcher = AuthWatcher()
    watcher.from_pppd(lcp_ack(AUTH_PAP))
    watcher.from_pppd(ppp(LCP, 2, 2, H("0301c023")))  # option length 1
    watcher.from_pppd(ppp(LCP, 2, 3, H("0106")))  # runs past the end
    event = watcher.from_pppd(ppp(IPCP, 1, 1))
    assert isinstance(event, AuthSucceeded)
    assert event.method == "PAP"


def test_protocol_field_compression() -> None:
    watcher = AuthWatcher()
    ipv4 = H("4500001c0000000040010000c0a80001c0a80002")
    # IP with a one-byte protocol, with and without FF 03: not an NCP, not auth.
    assert watcher.from_pppd(b"\x21" + ipv4) is None
    assert watcher.from_pppd(b"\xff\x03\x21" + ipv4) is None
    assert watcher.from_server(b"\x21" + ppp(CHAP, 3, 1, AUTH_RESPONSE)) is None
    assert watcher.from_pppd(b"\x00\x21" + ipv4) is None
    assert not watcher.done


def test_padding_after_the_packet_is_ignored() -> None:
    watcher = AuthWatcher()
    watcher.from_pppd(ppp(PAP, 1, 1, b"\x04User\x03bad"))
    event = watcher.from_server(ppp(PAP, 3, 1, b"\x03bad") + b"\x00" * 10)
    assert event == AuthFailed(method="PAP", message="bad")


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xff",
        b"\xff\x03",
        b"\xff\x03\xc2",
        b"\xc2\x23",
        b"\xc2\x23\x03\x07\x00",
        b"\xc2\x23\x03\x07\x00\x03",  # length below 4
        b"\xc2\x23\x03\x07\x00\x10",  # length past the end
        b"\xc2\x23\x01\x07\x00\x04",  # Challenge without a value size
        b"\xc2\x23\x01\x07\x00\x05\x10",  # value size past the end
        b"\xc2\x27\x01\x01\x00\x06\x1a\x01",  # EAP-MSCHAPv2 Challenge too short
        b"\xc2\x27\x02\x01\x00\x06\x1a\x02",
        b"\xc0\x23\x03\x01\x00\x04",
        b"\xc0\x23\x03\x01\x00\x05\x09",  # message length past the end
    ],
)
def test_short_frames_are_ignored(frame: bytes) -> None:
    watcher = AuthWatcher(Lookup())
    assert watcher.from_pppd(frame) is None
    event = watcher.from_server(frame)
    assert event is None or isinstance(event, AuthFailed)  # a bare PAP Nak is a Nak


def test_eap_mschapv2_response_with_wrong_value_size_is_ignored() -> None:
    watcher = AuthWatcher(Lookup())
    watcher.from_server(ppp(EAP, 1, 3, eap_mschapv2(1, 5, value(AUTH_CHALLENGE, b"nps"))))
    watcher.from_pppd(ppp(EAP, 2, 3, eap_mschapv2(2, 5, value(MSCHAPV2_VALUE[:48], USER))))
    event = watcher.from_server(ppp(EAP, 3, 4))
    assert event == AuthSucceeded(method="EAP-MSCHAPv2", hlak=ZEROS, keys_known=False)


# --- fuzzing --------------------------------------------------------------------------

PREFIXES = st.sampled_from([b"", b"\xff\x03"])
PROTOCOLS = st.sampled_from([LCP, PAP, CHAP, EAP, IPCP, IPV6CP, 0x0021, 0xC025])


PACKET_DATA = st.one_of(
    st.binary(max_size=70),
    st.sampled_from(
        [
            value(MSCHAPV2_VALUE, USER),
            value(AUTH_CHALLENGE, b"s"),
            AUTH_RESPONSE,
            eap_mschapv2(2, 5, value(MSCHAPV2_VALUE, USER)),
            eap_mschapv2(1, 5, value(AUTH_CHALLENGE, b"s")),
            eap_mschapv2(3, 5, AUTH_RESPONSE),
        ]
    ),
    st.builds(lambda t, d: bytes([t]) + d, st.integers(0, 30), st.binary(max_size=60)),
)
PACKETS = st.builds(
    lambda code, ident, data, extra: struct.pack("!BBH", code, ident, 4 + len(data)) + data + extra,
    st.integers(0, 6),
    st.integers(0, 3),
    PACKET_DATA,
    st.binary(max_size=3),
)
# Frames that get past the protocol check, with random and partly valid bodies.
FRAMES = st.builds(
    lambda prefix, protocol, body: prefix + protocol.to_bytes(2, "big") + body,
    PREFIXES,
    PROTOCOLS,
    st.one_of(st.binary(max_size=80), PACKETS),
)


SEQUENCES = st.lists(
    st.tuples(st.booleans(), st.one_of(FRAMES, st.binary(max_size=60))), max_size=12
)


def run_sequence(sequence: list[tuple[bool, bytes]]) -> None:
    watcher = AuthWatcher(Lookup())
    for from_server, frame in sequence:
        event = watcher.from_server(frame) if from_server else watcher.from_pppd(frame)
        if event is not None:
            assert watcher.done
            if isinstance(event, AuthSucceeded):
                assert len(event.hlak) == 32
                assert event.keys_known or event.hlak == ZEROS


@settings(max_examples=200)
@given(SEQUENCES)
def test_fuzz_never_raises(sequence: list[tuple[bool, bytes]]) -> None:
    run_sequence(sequence)


@pytest.mark.slow
# Bounded so CI stays within its time: each example is a sequence of frames.
@settings(max_examples=10_000, deadline=None)
@given(SEQUENCES)
def test_fuzz_never_raises_slow(sequence: list[tuple[bool, bytes]]) -> None:
    run_sequence(sequence)
