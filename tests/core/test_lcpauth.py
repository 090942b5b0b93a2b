"""LCP's authentication agreement (sstp_pppd.core.lcpauth), with the frames real pppd sends.

The sequences are those pppd 2.4.9 logged (``debug``) in User-Mode Linux against
sstp-server 0.7.2's pppd (tests/e2e/test_realcause.py), byte for byte as RFC 1661 encodes
them: asyncmap, auth, magic, pcomp and accomp options, identifiers as logged.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sstp_pppd.core.client import CallEnded, ClientConnection, Outcome
from sstp_pppd.core.events import ConnectionClosed, PppFrames
from sstp_pppd.core.lcpauth import AuthNotAgreed, LcpAuthTracker, auth_method_name

from .test_client import CHAP_FAILURE, acked, connected, data, frames
from .test_connection import disconnect
from .test_pppwatch import CHAP, IPCP, LCP, ppp

H = bytes.fromhex
ASYNCMAP, PCOMP, ACCOMP = H("020600000000"), H("0702"), H("0802")
SERVER_MAGIC, PPPD_MAGIC = H("0506b9a23789"), H("0506a342b7d7")
AUTH_EAP, AUTH_MD5, AUTH_V2 = H("0304c227"), H("0305c22305"), H("0305c22381")
AUTH_PAP = H("0304c023")


def lcp(code: int, ident: int, *options: bytes) -> bytes:
    return ppp(LCP, code, ident, b"".join(options))


def request(ident: int, magic: bytes, auth: bytes = b"") -> bytes:
    """A Configure-Request as pppd 2.4.9 sends it: <asyncmap 0x0> [<auth>] <magic> ..."""
    return lcp(1, ident, ASYNCMAP, auth, magic, PCOMP, ACCOMP)


def ack(ident: int, magic: bytes, auth: bytes = b"") -> bytes:
    return lcp(2, ident, ASYNCMAP, auth, magic, PCOMP, ACCOMP)


TERM_REFUSED = ppp(LCP, 5, 3, b"peer refused to authenticate")
IPCP_REQUEST = ppp(IPCP, 1, 1, H("03060000000002060f01"))


def server_asks(auth: bytes, answer: bytes) -> list[tuple[str, bytes]]:
    """What pppd logged when the server's pppd insisted on ``auth`` and pppd refused it."""
    return [
        ("pppd", request(1, PPPD_MAGIC)),
        ("server", request(1, SERVER_MAGIC, auth)),
        ("pppd", answer),
        ("server", ack(1, PPPD_MAGIC)),
        ("server", request(2, SERVER_MAGIC)),  # it stops asking
        ("pppd", ack(2, SERVER_MAGIC)),
        ("pppd", IPCP_REQUEST),  # LCP is open without authentication
        ("server", TERM_REFUSED),
    ]


def feed(tracker: LcpAuthTracker, sequence: list[tuple[str, bytes]]) -> list[AuthNotAgreed]:
    found = []
    for sender, frame in sequence:
        verdict = tracker.from_pppd(frame) if sender == "pppd" else tracker.from_server(frame)
        if verdict is not None:
            found.append(verdict)
    return found


def test_server_insists_on_eap_that_pppd_naks() -> None:
    tracker = LcpAuthTracker()
    (verdict,) = feed(tracker, server_asks(AUTH_EAP, lcp(3, 1, AUTH_MD5)))
    assert verdict.method == "EAP"
    assert verdict.message == (
        "PPP authentication method not agreed: the server asked for EAP, pppd refused it "
        "(Configure-Nak suggesting CHAP-MD5), then the server ended the link "
        '("peer refused to authenticate"); allow EAP in pppd\'s options (remove refuse-eap '
        "if set), or ask the server to offer CHAP-MD5"
    )
    assert tracker.done and tracker.link_ended() is None


def test_server_insists_on_mschapv2_that_pppd_naks() -> None:
    (verdict,) = feed(LcpAuthTracker(), server_asks(AUTH_V2, lcp(3, 1, AUTH_MD5)))
    assert verdict.method == "MS-CHAPv2"
    assert "the server asked for MS-CHAPv2, pppd refused it" in verdict.message
    assert "remove refuse-mschap-v2 if set" in verdict.message


def test_server_insists_on_pap_that_pppd_naks() -> None:
    """pppd 2.4.9 with refuse-pap Naks <auth pap> with <auth eap>."""
    (verdict,) = feed(LcpAuthTracker(), server_asks(AUTH_PAP, lcp(3, 1, AUTH_EAP)))
    assert verdict.method == "PAP" and "remove refuse-pap if set" in verdict.message
    assert "(Configure-Nak suggesting EAP)" in verdict.message
    assert verdict.message.endswith("or ask the server to offer EAP")


def test_pppd_that_may_use_no_method_rejects() -> None:
    """pppd's "No auth is possible": every method refused, or no password for the user."""
    (verdict,) = feed(LcpAuthTracker(), server_asks(AUTH_V2, lcp(4, 1, AUTH_V2)))
    assert "pppd refused to authenticate at all (Configure-Reject)" in verdict.message
    assert "give pppd a password for the user" in verdict.message
    assert "remove refuse-mschap-v2 if set" in verdict.message


def test_pppd_requires_the_server_to_authenticate_and_ends_the_link() -> None:
    sequence = [
        ("pppd", request(1, PPPD_MAGIC, AUTH_MD5)),
        ("server", request(1, SERVER_MAGIC)),
        ("pppd", ack(1, SERVER_MAGIC)),
        ("server", lcp(4, 1, AUTH_MD5)),
        ("pppd", request(2, PPPD_MAGIC)),
        ("server", ack(2, PPPD_MAGIC)),
        ("pppd", TERM_REFUSED),
    ]
    (verdict,) = feed(LcpAuthTracker(), sequence)
    assert verdict.method == "CHAP-MD5"
    assert verdict.message.startswith(
        "PPP authentication method not agreed: pppd required the server to authenticate "
        "itself with CHAP-MD5, the server refused (Configure-Reject), then pppd ended the "
        'link ("peer refused to authenticate"); add noauth to pppd\'s options (or drop '
        "auth/require-chap)"
    )


def test_a_refusal_followed_by_an_agreement_is_no_cause() -> None:
    """The server asks for EAP, pppd suggests CHAP-MD5, the server takes it: agreed, so a
    later Terminate-Request (a failed login) is the authentication watcher's business."""
    sequence = [
        ("server", request(1, SERVER_MAGIC, AUTH_EAP)),
        ("pppd", lcp(3, 1, AUTH_MD5)),
        ("server", request(2, SERVER_MAGIC, AUTH_MD5)),
        ("pppd", ack(2, SERVER_MAGIC, AUTH_MD5)),
        ("server", ppp(LCP, 5, 3, b"Authentication failed")),
    ]
    tracker = LcpAuthTracker()
    assert feed(tracker, sequence) == []
    assert tracker.link_ended() is None


def test_no_refusal_no_verdict() -> None:
    sequence = [
        ("server", request(1, SERVER_MAGIC, AUTH_V2)),
        ("pppd", ack(1, SERVER_MAGIC, AUTH_V2)),
        ("server", ppp(LCP, 5, 3, b"")),
    ]
    tracker = LcpAuthTracker()
    assert feed(tracker, sequence) == []
    assert tracker.link_ended() is None


def test_the_call_ending_without_terminate_request() -> None:
    """A server that hangs up after the Nak (SoftEther's way) without a Terminate-Request."""
    tracker = LcpAuthTracker()
    assert feed(tracker, server_asks(AUTH_EAP, lcp(3, 1, AUTH_MD5))[:3]) == []
    verdict = tracker.link_ended()
    assert verdict is not None
    assert "pppd refused it (Configure-Nak suggesting CHAP-MD5), then the call ended;" in (
        verdict.message
    )
    assert tracker.link_ended() is None  # once


def test_the_first_refusal_counts() -> None:
    tracker = LcpAuthTracker()
    feed(tracker, [("server", request(1, SERVER_MAGIC, AUTH_EAP)), ("pppd", lcp(3, 1, AUTH_MD5))])
    feed(tracker, [("server", request(2, SERVER_MAGIC, AUTH_V2)), ("pppd", lcp(4, 2, AUTH_V2))])
    verdict = tracker.link_ended()
    assert verdict is not None and verdict.method == "EAP"


def test_protocol_reject_of_an_authentication_protocol() -> None:
    tracker = LcpAuthTracker()
    rejected = ppp(LCP, 8, 4, H("c227") + H("0101000901"))  # EAP, then the rejected packet
    assert tracker.from_pppd(rejected) is None
    verdict = tracker.from_server(ppp(LCP, 5, 5, b""))
    assert verdict is not None and verdict.method == "EAP"
    assert verdict.message == (
        "PPP authentication method not agreed: pppd rejected EAP packets (Protocol-Reject), "
        "then the server ended the link; allow EAP in pppd's options (remove refuse-eap if "
        "set), or ask the server for another method"
    )
    tracker = LcpAuthTracker()
    tracker.from_server(ppp(LCP, 8, 4, H("c223") + H("0207000e10")))
    verdict = tracker.link_ended()
    assert verdict is not None
    assert "the server rejected CHAP packets (Protocol-Reject), then the call ended;" in (
        verdict.message
    )
    # A Protocol-Reject of anything else (IPv6CP, CCP) is no authentication matter.
    other = LcpAuthTracker()
    assert other.from_pppd(ppp(LCP, 8, 1, H("8057") + H("01010004"))) is None
    assert other.link_ended() is None


def test_frames_without_address_and_control_and_malformed_ones() -> None:
    tracker = LcpAuthTracker()
    assert tracker.from_server(request(1, SERVER_MAGIC, AUTH_EAP)[2:]) is None
    assert tracker.from_pppd(b"\xc0\x21\x03\x01\x00\x09\x03\x05") is None  # truncated
    assert tracker.from_pppd(lcp(3, 1, H("0301c2"))) is None  # bad option length
    assert tracker.link_ended() is None
    assert tracker.from_pppd(lcp(3, 1, AUTH_MD5)[2:]) is None
    assert tracker.link_ended() is not None


def test_method_names() -> None:
    assert [auth_method_name(v) for v in (H("c023"), H("c227"), H("c22305"), H("c22380"))] == [
        "PAP",
        "EAP",
        "CHAP-MD5",
        "MS-CHAP",
    ]
    assert auth_method_name(H("c22381")) == "MS-CHAPv2"
    assert auth_method_name(H("c223")) == "CHAP"
    assert auth_method_name(H("c22399")) == "CHAP algorithm 0x99"
    assert auth_method_name(H("c025")) == "protocol 0xc025"
    assert auth_method_name(b"\xc0") == "an unreadable method"


def test_terminate_reason_is_printable_and_short() -> None:
    tracker = LcpAuthTracker()
    feed(tracker, server_asks(AUTH_EAP, lcp(3, 1, AUTH_MD5))[:3])
    verdict = tracker.from_server(ppp(LCP, 5, 9, b"bad\nreason\x00" + b"x" * 200))
    assert verdict is not None
    assert '("bad?reason?' in verdict.message and "x" * 81 not in verdict.message
    assert verdict.message.isprintable()


frame_bytes = st.one_of(
    st.binary(max_size=64),
    st.builds(
        lambda code, ident, body, acfc: ppp(LCP, code, ident, body, acfc=acfc),
        st.integers(0, 12),
        st.integers(0, 255),
        st.binary(max_size=40),
        st.booleans(),
    ),
    st.builds(
        lambda code, options: lcp(code, 1, *options),
        st.integers(1, 4),
        st.lists(st.sampled_from([AUTH_EAP, AUTH_MD5, AUTH_V2, AUTH_PAP, SERVER_MAGIC])),
    ),
)


@given(st.lists(st.tuples(st.booleans(), frame_bytes), max_size=30), st.booleans())
def test_never_raises_and_says_one_printable_line(
    sequence: list[tuple[bool, bytes]], end: bool
) -> None:
    tracker = LcpAuthTracker()
    verdicts = [
        (tracker.from_pppd if from_pppd else tracker.from_server)(frame)
        for from_pppd, frame in sequence
    ]
    if end:
        verdicts.append(tracker.link_ended())
    found = [v for v in verdicts if v is not None]
    assert len(found) <= 1
    for verdict in found:
        assert verdict.message.isprintable()
        assert verdict.message.startswith("PPP authentication method not agreed: ")


# ----- in the client: the verdict comes before the ending it explains ---------------------


def pppd_sends(c: ClientConnection, *frames_: bytes) -> list[object]:
    return list(c.frames_from_pppd(list(frames_), 1.0))


def test_client_reports_the_refusal_before_the_server_disconnect() -> None:
    c = acked()
    events: list[object] = []
    for sender, frame in server_asks(AUTH_EAP, lcp(3, 1, AUTH_MD5)):
        if sender == "pppd":
            events += pppd_sends(c, frame)
        else:
            events += c.receive_data(data(frame), 1.0)
    c.data_to_send()
    verdicts = [e for e in events if isinstance(e, AuthNotAgreed)]
    assert [v.method for v in verdicts] == ["EAP"]
    # It came with the Terminate-Request, ahead of the frame relayed to pppd.
    assert events[-2:] == [verdicts[0], PppFrames(frames=[TERM_REFUSED])]
    end = c.receive_data(disconnect(), 2.0)
    assert [type(e) for e in end] == [CallEnded]


def test_client_reports_the_refusal_when_the_server_just_hangs_up() -> None:
    c = acked()
    c.receive_data(data(request(1, SERVER_MAGIC, AUTH_EAP)), 1.0)
    c.packets_from_pppd(data(lcp(3, 1, AUTH_MD5)), 1.0)  # the relay's batch path
    assert c.data_to_send() == frames(lcp(3, 1, AUTH_MD5))
    events = c.receive_data(disconnect(), 2.0)
    assert [type(e) for e in events] == [AuthNotAgreed, CallEnded]
    events = acked().connection_lost(2.0)
    assert [type(e) for e in events] == [CallEnded, ConnectionClosed]  # nothing to explain
    c = acked()
    c.receive_data(data(request(1, SERVER_MAGIC, AUTH_EAP)), 1.0)
    pppd_sends(c, lcp(3, 1, AUTH_MD5))
    events = c.connection_lost(2.0)
    assert [type(e) for e in events] == [AuthNotAgreed, CallEnded, ConnectionClosed]
    assert isinstance(events[1], CallEnded) and events[1].outcome is Outcome.CONNECTION_LOST


def test_client_says_nothing_when_we_end_the_call() -> None:
    c = acked()
    c.receive_data(data(request(1, SERVER_MAGIC, AUTH_EAP)), 1.0)
    pppd_sends(c, lcp(3, 1, AUTH_MD5))
    c.expect_close()
    assert [type(e) for e in c.receive_data(disconnect(), 2.0)] == [CallEnded]


def test_client_forgets_lcp_once_the_binding_is_accepted() -> None:
    c = connected()
    ipv4 = b"\xff\x03\x00\x21" + bytes(20)
    c.receive_data(data(ipv4), 3.0)
    assert c.binding_accepted
    # A refusal now (LCP renegotiated) is no cause of this call's setup failing.
    c.receive_data(data(request(5, SERVER_MAGIC, AUTH_EAP)), 4.0)
    pppd_sends(c, lcp(3, 5, AUTH_MD5))
    assert [type(e) for e in c.receive_data(disconnect(), 5.0)] == [CallEnded]


def test_a_failed_login_is_not_a_disagreement() -> None:
    c = acked()
    c.receive_data(data(request(1, SERVER_MAGIC, AUTH_V2)), 1.0)
    pppd_sends(c, ack(1, SERVER_MAGIC, AUTH_V2))
    c.receive_data(data(ppp(CHAP, 1, 7, H("10") + bytes(16) + b"sstpd")), 1.0)
    events = c.receive_data(data(CHAP_FAILURE), 2.0)
    events += c.receive_data(data(ppp(LCP, 5, 3, b"Authentication failed")), 2.0)
    assert not [e for e in events if isinstance(e, AuthNotAgreed)]


def test_no_binding_on_ncp_frames_that_cross_the_terminate_request() -> None:
    """pppd's IPCP may reach us after the server's Terminate-Request: no success then."""
    c = acked()
    sequence = server_asks(AUTH_EAP, lcp(3, 1, AUTH_MD5))
    ipcp = sequence.pop(-2)
    for sender, frame in sequence:
        if sender == "pppd":
            pppd_sends(c, frame)
        else:
            c.receive_data(data(frame), 1.0)
    c.data_to_send()
    assert pppd_sends(c, ipcp[1]) == []
    assert not c.call_connected
    assert c.data_to_send() == frames(ipcp[1])


def test_batches_without_lcp_skip_the_tracker_and_lcp_in_a_batch_reaches_it() -> None:
    """Bound but no frame from the server yet: pppd's data goes the batch path as it is,
    and an LCP frame in a batch is still seen (the refusal before the server hangs up)."""
    c = connected()
    c.data_to_send()
    ipv4 = b"\xff\x03\x00\x21" + bytes(20)
    assert c.packets_from_pppd(data(ipv4) + data(ipv4), 3.0) == []
    assert c.data_to_send() == frames(ipv4, ipv4)
    c.receive_data(data(request(5, SERVER_MAGIC, AUTH_EAP)), 4.0)
    c.packets_from_pppd(data(ipv4) + data(lcp(3, 5, AUTH_MD5)), 4.0)
    assert c.data_to_send() == frames(ipv4, lcp(3, 5, AUTH_MD5))
    assert [type(e) for e in c.receive_data(disconnect(), 5.0)] == [AuthNotAgreed, CallEnded]
