"""The client object's decisions, bytes in and events out (sstp_pppd.core.client).

What tests/transport/test_tunnel.py proves through a subprocess and a TLS fake server is
proven here without I/O: early frames held and released in order, CALL_CONNECTED on the
auth verdict with the right MAC (SHA-256 and SHA-1), the binding accepted, each way a
call ends, unframeable bytes, and the keys a pppd plugin hands in. CALL_CONNECTED is
checked against an HMAC computed here with hashlib, not with the package's crypto.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from sstp_pppd.core.client import (
    EARLY_FRAMES_MAX,
    BindingAccepted,
    CallConnected,
    CallEnded,
    ClientConnection,
    ClientEvent,
    FrameDropped,
    HttpAccepted,
    KeySource,
    LcpResent,
    Outcome,
)
from sstp_pppd.core.events import (
    ConnectAcked,
    ConnectionClosed,
    EchoRequested,
    PppFrames,
)
from sstp_pppd.core.messages import HashProtocol, StatusCode
from sstp_pppd.core.pppwatch import AuthFailed, AuthSucceeded

from .test_connection import (
    DISCONNECT_ACK,
    ECHO_REQUEST,
    NONCE,
    REQUEST,
    abort,
    ack,
    control,
    data,
    disconnect,
)
from .test_pppwatch import (
    AUTH_CHALLENGE,
    AUTH_MSCHAPV2,
    AUTH_PAP,
    AUTH_RESPONSE,
    CHAP,
    EAP,
    HLAK,
    IPCP,
    LCP,
    MAGIC,
    MRU,
    MSCHAPV2_VALUE,
    PAP,
    PASSWORD,
    USER,
    lcp_ack,
    ppp,
    value,
)

H = bytes.fromhex
CERT = b"the server's leaf certificate, DER"
GUID = "{BA195980-CD49-458B-9E23-C84EE0ADCD75}"
HTTP_200 = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n"
    b"Server: Microsoft-HTTPAPI/2.0\r\n\r\n"
)
LCP_REQUEST = ppp(LCP, 1, 1, MRU + MAGIC)
CHAP_CHALLENGE = ppp(CHAP, 1, 7, value(AUTH_CHALLENGE, b"sstpd"))
CHAP_RESPONSE = ppp(CHAP, 2, 7, value(MSCHAPV2_VALUE, USER))
CHAP_SUCCESS = ppp(CHAP, 3, 7, AUTH_RESPONSE + b" M=Access granted")
CHAP_FAILURE = ppp(CHAP, 4, 7, b"E=691 R=0 C=00 V=3 M=denied")
IPCP_REQUEST = ppp(IPCP, 1, 1, H("03060a000001"))
IPV4 = b"\xff\x03\x00\x21" + bytes(range(40))
#: A 64-byte MSK as EAP-TLS gives it: the HLAK is its first 32 bytes.
MSK = bytes(range(100, 164))


def lookup(username: str, server: str) -> str | None:
    return PASSWORD


def expected_call_connected(hash_protocol: int, hlak: bytes, cert: bytes = CERT) -> bytes:
    """[MS-SSTP] 2.2.10/3.2.5.2, computed independently of sstp_pppd.core.crypto."""
    name, size = ("sha256", 32) if hash_protocol == 2 else ("sha1", 20)
    cert_hash = hashlib.new(name, cert).digest().ljust(32, b"\x00")
    seed = b"SSTP inner method derived CMK" + bytes([size, 0, 1])
    cmk = hmac.new(hlak, seed, name).digest()
    unsigned = H(f"100100700004000100030068 0000000{hash_protocol}") + NONCE + cert_hash
    mac = hmac.new(cmk, unsigned + bytes(32), name).digest().ljust(32, b"\x00")
    return unsigned + mac


def client(**kwargs: object) -> ClientConnection:
    c = ClientConnection(host="vpn.example", correlation_id=GUID, **kwargs)  # type: ignore[arg-type]
    c.start(CERT, 0.0)
    request = c.data_to_send()
    assert request.startswith(b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ ")
    assert f"SSTPCORRELATIONID: {GUID}".encode() in request
    return c


def http_done(**kwargs: object) -> ClientConnection:
    c = client(**kwargs)
    events = c.receive_data(HTTP_200, 0.0)
    assert events == [HttpAccepted(status=200, reason="OK", warnings=(), trailing=b"")]
    assert c.data_to_send() == REQUEST
    return c


def acked(bitmask: int = 3, **kwargs: object) -> ClientConnection:
    c = http_done(**kwargs)
    events = c.receive_data(ack(bitmask), 0.0)
    assert [type(e) for e in events] == [ConnectAcked]
    assert c.data_to_send() == b""
    return c


def frames(*frames: bytes) -> bytes:
    return b"".join(data(f) for f in frames)


def relay(c: ClientConnection, *frames_: bytes) -> list[ClientEvent]:
    """pppd sends ``frames_``; the SSTP data packets they became must be queued."""
    events = c.frames_from_pppd(list(frames_), 1.0)
    assert c.data_to_send() == frames(*frames_)
    return events


def mschapv2(c: ClientConnection, success: bytes = CHAP_SUCCESS) -> list[ClientEvent]:
    """Run MS-CHAPv2 up to the server's verdict; the verdict's events are returned."""
    relay(c, lcp_ack(MRU, AUTH_MSCHAPV2, MAGIC))
    assert c.receive_data(data(CHAP_CHALLENGE), 1.0) == [PppFrames(frames=[CHAP_CHALLENGE])]
    relay(c, CHAP_RESPONSE)
    return c.receive_data(data(success), 2.0)


def connected() -> ClientConnection:
    c = acked(password_lookup=lookup)
    mschapv2(c)
    assert c.data_to_send() == expected_call_connected(2, HLAK)
    assert c.call_connected
    return c


def sent_type(c: ClientConnection) -> int:
    """The message type of the one control packet queued for the server."""
    raw = c.data_to_send()
    assert raw[:2] == b"\x10\x01" and int.from_bytes(raw[2:4]) == len(raw), raw.hex()
    return int.from_bytes(raw[4:6])


def ended(events: list[ClientEvent]) -> CallEnded:
    (end,) = [e for e in events if isinstance(e, CallEnded)]
    return end


# ----- HTTP ---------------------------------------------------------------------------------


def test_one_receive_data_takes_the_head_and_the_sstp_bytes_after_it() -> None:
    c = client()
    events = c.receive_data(HTTP_200 + ack(3), 5.0)
    assert events == [
        HttpAccepted(status=200, reason="OK", warnings=(), trailing=ack(3)),
        ConnectAcked(hash_protocol=HashProtocol.CERT_HASH_PROTOCOL_SHA256, nonce=NONCE),
    ]
    assert c.data_to_send() == REQUEST


def test_head_split_anywhere() -> None:
    c = client()
    for i in range(len(HTTP_200) - 1):
        assert c.receive_data(HTTP_200[i : i + 1], 0.0) == []
    assert [type(e) for e in c.receive_data(HTTP_200[-1:], 0.0)] == [HttpAccepted]


def test_http_refusal_ends_the_call_and_later_bytes_are_ignored() -> None:
    c = client()
    events = c.receive_data(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 0.0)
    end = ended(events)
    assert (end.outcome, end.status) == (Outcome.HTTP_FAILED, 404)
    assert "404" in end.message
    assert events[-1] == ConnectionClosed()
    assert c.receive_data(ack(3), 0.0) == []
    assert c.data_to_send() == b""
    assert c.next_deadline() is None


def test_http_timeout() -> None:
    c = ClientConnection(host="vpn.example", correlation_id=GUID, http_timeout=60.0)
    c.start(CERT, 10.0)
    assert c.next_deadline() == 70.0
    assert c.handle_timer(69.9) == []
    events = c.handle_timer(70.0)
    assert ended(events).message == "the server did not answer the HTTP request within 60 s"
    assert events[-1] == ConnectionClosed()


def test_closed_during_http() -> None:
    c = client()
    c.receive_data(b"HTTP/1.1 200 OK\r\n", 0.0)
    end = ended(c.connection_lost(1.0))
    assert end.outcome is Outcome.HTTP_FAILED
    assert "closed" in end.message


# ----- early frames, CALL_CONNECTED ------------------------------------------------------


def test_frames_before_the_ack_are_held_and_released_in_order() -> None:
    c = client()
    early = [ppp(LCP, 1, i, MRU) for i in range(EARLY_FRAMES_MAX + 6)]
    assert c.frames_from_pppd(early[:3], 0.0) == []  # during HTTP
    c.receive_data(HTTP_200, 0.0)
    assert c.data_to_send() == REQUEST
    assert c.frames_from_pppd(early[3:], 0.0) == []  # before the ACK
    assert c.data_to_send() == b""
    c.receive_data(ack(3), 1.0)
    # The first 64 in pppd's order; beyond that, dropped (pppd retransmits).
    assert c.data_to_send() == frames(*early[:EARLY_FRAMES_MAX])
    relay(c, LCP_REQUEST)  # and from now on straight through


def test_rule_6_the_servers_first_request_sends_the_held_one_again_ahead_of_pppd() -> None:
    """pty mode, a server whose pppd speaks first: the request held until the ACK went
    while the server was starting its pppd; its own request brings the copy, sent ahead
    of pppd's answer to it, and the call goes on to CALL_CONNECTED as ever."""
    c = http_done(password_lookup=lookup)
    assert c.frames_from_pppd([LCP_REQUEST], 0.5) == []
    c.receive_data(ack(3), 1.0)
    assert c.data_to_send() == frames(LCP_REQUEST)
    server_request = ppp(LCP, 1, 1, MRU + AUTH_MSCHAPV2 + MAGIC)
    assert c.receive_data(data(server_request), 1.25) == [PppFrames(frames=[server_request])]
    answer = lcp_ack(MRU, AUTH_MSCHAPV2, MAGIC)
    assert c.frames_from_pppd([answer], 1.5) == [
        LcpResent(identifier=1, after=0.5, server_asked=True)
    ]
    assert c.data_to_send() == frames(LCP_REQUEST, answer)
    assert c.receive_data(data(lcp_ack(MRU, MAGIC)), 1.3) == [
        PppFrames(frames=[lcp_ack(MRU, MAGIC)])
    ]
    assert c.receive_data(data(CHAP_CHALLENGE), 1.3) == [PppFrames(frames=[CHAP_CHALLENGE])]
    relay(c, CHAP_RESPONSE)
    assert [type(e) for e in c.receive_data(data(CHAP_SUCCESS), 2.0)] == [
        AuthSucceeded,
        CallConnected,
        PppFrames,
    ]
    assert c.data_to_send() == expected_call_connected(2, HLAK)


def test_mschapv2_binds_with_the_password_keys_and_sha256() -> None:
    c = acked(password_lookup=lookup)
    events = mschapv2(c)
    assert events == [
        AuthSucceeded(method="MS-CHAPv2", hlak=HLAK, keys_known=True),
        CallConnected(method="MS-CHAPv2", key_source=KeySource.PASSWORD),
        PppFrames(frames=[CHAP_SUCCESS]),
    ]
    # CALL_CONNECTED comes before the Success is relayed on, hence before any NCP.
    assert c.data_to_send() == expected_call_connected(2, HLAK)
    relay(c, IPCP_REQUEST)


def test_pap_binds_with_zeros_and_sha1() -> None:
    c = acked(bitmask=1, password_lookup=lookup)
    relay(c, lcp_ack(MRU, AUTH_PAP, MAGIC))
    relay(c, ppp(PAP, 1, 1, b"\x04User\x0a" + PASSWORD.encode()))
    events = c.receive_data(data(ppp(PAP, 2, 1, b"\x02ok")), 1.0)
    assert CallConnected(method="PAP", key_source=KeySource.NONE) in events
    assert c.data_to_send() == expected_call_connected(1, bytes(32))


def test_auth_failure_sends_no_call_connected() -> None:
    c = acked(password_lookup=lookup)
    events = mschapv2(c, CHAP_FAILURE)
    assert isinstance(events[0], AuthFailed)
    assert "E=691" in events[0].message
    assert events[1:] == [PppFrames(frames=[CHAP_FAILURE])]
    assert c.data_to_send() == b""
    assert not c.call_connected


def test_no_auth_binds_when_pppd_starts_its_ncp_and_before_that_frame() -> None:
    c = acked()
    relay(c, lcp_ack(MRU, MAGIC))
    events = c.frames_from_pppd([IPCP_REQUEST], 1.0)
    assert events == [
        AuthSucceeded(method="none", hlak=bytes(32), keys_known=True),
        CallConnected(method="none", key_source=KeySource.NONE),
    ]
    assert c.data_to_send() == expected_call_connected(2, bytes(32)) + frames(IPCP_REQUEST)


def test_binding_accepted_on_the_first_network_layer_frame() -> None:
    c = connected()
    assert c.receive_data(frames(IPCP_REQUEST), 3.0) == [PppFrames(frames=[IPCP_REQUEST])]
    assert not c.binding_accepted
    events = c.receive_data(frames(IPCP_REQUEST, IPV4), 3.0)
    assert events == [BindingAccepted(), PppFrames(frames=[IPCP_REQUEST, IPV4])]
    assert c.receive_data(frames(IPV4), 3.0) == [PppFrames(frames=[IPV4])]  # once


def test_oversized_frame_from_pppd_costs_only_itself() -> None:
    c = connected()
    big = b"\xff\x03\x00\x21" + bytes(4500)
    events = c.frames_from_pppd([IPV4, big, IPV4], 3.0)
    assert [type(e) for e in events] == [FrameDropped]
    assert c.data_to_send() == frames(IPV4, IPV4)


# ----- how calls end -----------------------------------------------------------------------


@pytest.mark.parametrize("bound", [False, True])
def test_server_abort(bound: bool) -> None:
    c = connected() if bound else acked()
    end = ended(c.receive_data(abort(StatusCode.INVALID_FRAME_RECEIVED), 3.0))
    assert end.outcome is Outcome.SERVER_ABORTED
    assert "INVALID_FRAME_RECEIVED" in end.message
    assert ("rejected the crypto binding" in end.message) is bound
    assert sent_type(c) == 5  # answered with CALL_ABORT


def test_server_disconnect_unasked_and_asked() -> None:
    c = connected()
    end = ended(c.receive_data(disconnect(), 3.0))
    assert (end.outcome, end.message) == (
        Outcome.SERVER_DISCONNECTED,
        "the server disconnected the call (NO_ERROR)",
    )
    c = connected()
    assert c.disconnect(3.0) == []
    assert sent_type(c) == 6
    assert ended(c.receive_data(DISCONNECT_ACK, 3.5)).outcome is Outcome.DISCONNECTED
    c = connected()
    c.expect_close()  # pppd is being stopped: the server's goodbye is no failure
    assert ended(c.receive_data(disconnect(), 3.0)).outcome is Outcome.DISCONNECTED


def test_disconnect_with_nothing_to_say_goodbye_to() -> None:
    assert client().disconnect(0.0) == [ConnectionClosed()]
    c = client()
    c.disconnect(0.0)
    assert c.connection_lost(0.5) == []  # we closed: no HTTP failure to report


def test_keepalive() -> None:
    c = connected()
    assert c.next_deadline() == 2.0 + 60.0
    assert c.handle_timer(62.0) == []
    assert c.data_to_send() == ECHO_REQUEST
    events = c.handle_timer(122.0)
    assert ended(events).outcome is Outcome.KEEPALIVE_EXPIRED
    assert events[-1] == ConnectionClosed()
    assert c.data_to_send() == b""  # no CALL_ABORT: the server is gone


def test_echo_request_is_answered() -> None:
    c = connected()
    assert c.receive_data(ECHO_REQUEST, 3.0) == [EchoRequested()]
    assert c.data_to_send() == control(9)


def test_unframeable_bytes_are_their_own_outcome_and_send_nothing() -> None:
    c = acked()
    events = c.receive_data(H("2001000800050000"), 1.0)
    end = ended(events)
    assert end.outcome is Outcome.UNFRAMEABLE
    assert "abort" not in end.message
    assert events[-1] == ConnectionClosed()
    assert c.data_to_send() == b""


def test_unknown_message_type_is_aborted() -> None:
    c = acked()
    end = ended(c.receive_data(H("1001000800770000"), 1.0))
    assert end.outcome is Outcome.PROTOCOL_ERROR
    assert "UNACCEPTED_FRAME_RECEIVED" in end.message
    assert sent_type(c) == 5


def test_connection_lost() -> None:
    c = connected()
    events = c.connection_lost(3.0, "Connection reset by peer")
    assert events == [
        CallEnded(
            outcome=Outcome.CONNECTION_LOST,
            message="the server closed the connection: Connection reset by peer",
        ),
        ConnectionClosed(),
    ]
    c = connected()
    c.expect_close()
    assert c.connection_lost(3.0) == [ConnectionClosed()]


# ----- keys from a pppd plugin -----------------------------------------------------------


def eap_tls(c: ClientConnection) -> list[ClientEvent]:
    """An EAP-TLS exchange to the server's Success: keys the watcher cannot know."""
    c.receive_data(data(ppp(EAP, 1, 1, b"\x01")), 1.0)
    relay(c, ppp(EAP, 2, 1, b"\x01User"))
    c.receive_data(data(ppp(EAP, 1, 2, b"\x0d\x20")), 1.0)
    relay(c, ppp(EAP, 2, 2, b"\x0d\x00"))
    return c.receive_data(data(ppp(EAP, 3, 2)), 2.0)


def test_plugin_keys_given_early_win_over_the_password() -> None:
    c = acked(password_lookup=lookup)
    send, recv = bytes(range(16)), bytes(range(16, 32))
    assert c.keys_received(send, recv, 1.0) == []
    assert CallConnected(method="MS-CHAPv2", key_source=KeySource.PLUGIN) in mschapv2(c)
    assert c.data_to_send() == expected_call_connected(2, send + recv)


def test_unknown_keys_hold_call_connected_and_pppd_frames_until_the_plugin() -> None:
    c = acked(key_wait=3.0)
    events = eap_tls(c)
    assert events[0] == AuthSucceeded(method="EAP-TLS", hlak=bytes(32), keys_known=False)
    assert c.data_to_send() == b""
    assert c.next_deadline() == 5.0
    # pppd got the Success and starts IPCP: held, so it cannot precede CALL_CONNECTED.
    assert c.frames_from_pppd([IPCP_REQUEST, LCP_REQUEST], 2.5) == []
    assert c.data_to_send() == b""
    events = c.keys_received(MSK, b"", 2.6)
    assert events == [CallConnected(method="EAP-TLS", key_source=KeySource.PLUGIN)]
    assert c.data_to_send() == expected_call_connected(2, MSK[:32]) + frames(
        IPCP_REQUEST, LCP_REQUEST
    )
    assert c.next_deadline() == 2.6 + 60.0  # the hello timer, the key wait is over
    assert c.keys_received(bytes(32), b"", 3.0) == []  # too late: ignored
    relay(c, IPCP_REQUEST)


def test_keys_that_never_come_bind_with_zeros_after_the_wait() -> None:
    c = acked(key_wait=3.0)
    eap_tls(c)
    assert c.handle_timer(4.9) == []
    events = c.handle_timer(5.0)
    assert events == [
        CallConnected(
            method="EAP-TLS",
            key_source=KeySource.ZERO,
            why_unknown="this method's keys come only from pppd",
        )
    ]
    assert c.data_to_send() == expected_call_connected(2, bytes(32))


def test_no_key_wait_binds_with_zeros_at_once() -> None:
    c = acked(key_wait=0.0)
    events = eap_tls(c)
    assert (
        CallConnected(
            method="EAP-TLS",
            key_source=KeySource.ZERO,
            why_unknown="this method's keys come only from pppd",
        )
        in events
    )
    assert c.data_to_send() == expected_call_connected(2, bytes(32))


def test_keys_arriving_before_the_verdict_are_used_at_once_for_unknown_keys() -> None:
    c = acked(key_wait=3.0)
    send, recv = bytes(range(1, 17)), bytes(range(17, 33))
    c.keys_received(send, recv, 1.0)
    assert CallConnected(method="EAP-TLS", key_source=KeySource.PLUGIN) in eap_tls(c)
    assert c.data_to_send() == expected_call_connected(2, send + recv)


def test_an_expected_plugin_is_waited_for_even_when_the_password_gives_keys() -> None:
    # pppd loads a key plugin: its keys (pppd's own) win over the password's, which the
    # transport may have found in pppd's options or chap-secrets.
    c = acked(password_lookup=lookup, key_wait=3.0)
    c.expect_plugin_keys()
    events = mschapv2(c)
    assert not [e for e in events if isinstance(e, CallConnected)]
    assert c.data_to_send() == b""
    send, recv = bytes(range(16)), bytes(range(16, 32))
    assert c.keys_received(send, recv, 2.1) == [
        CallConnected(method="MS-CHAPv2", key_source=KeySource.PLUGIN)
    ]
    assert c.data_to_send() == expected_call_connected(2, send + recv)


def test_an_expected_plugin_that_stays_silent_leaves_the_password_keys() -> None:
    c = acked(password_lookup=lookup, key_wait=3.0)
    c.expect_plugin_keys()
    mschapv2(c)
    assert c.handle_timer(4.9) == []
    assert c.handle_timer(5.0) == [CallConnected(method="MS-CHAPv2", key_source=KeySource.PASSWORD)]
    assert c.data_to_send() == expected_call_connected(2, HLAK)


def test_an_expected_plugin_is_not_waited_for_by_a_method_without_keys() -> None:
    c = acked(key_wait=3.0)
    c.expect_plugin_keys()
    relay(c, lcp_ack(MRU, AUTH_PAP, MAGIC))
    relay(c, ppp(PAP, 1, 1, b"\x04User\x0a" + PASSWORD.encode()))
    events = c.receive_data(data(ppp(PAP, 2, 1, b"\x02ok")), 1.0)
    assert CallConnected(method="PAP", key_source=KeySource.NONE) in events
