"""The parts ClientConnection composes, each alone: httpphase, keywait, authwatch, callsetup.

The client's behaviour through them is tests/core/test_client.py's; these pin each
part's own contract (bytes or verdicts in, events or bindings out).
"""

from __future__ import annotations

import pytest

from sstp_pppd.core import crypto
from sstp_pppd.core.authwatch import AuthWatch, network_layer
from sstp_pppd.core.callsetup import EARLY_FRAMES_MAX, CallSetup, send_copy
from sstp_pppd.core.client import ClientConnection
from sstp_pppd.core.client_events import (
    KEEPALIVE_ENDED,
    CallConnected,
    CallEnded,
    HttpAccepted,
    KeySource,
    Outcome,
    ended,
    ended_by_loss,
)
from sstp_pppd.core.connection import State
from sstp_pppd.core.errors import UsageError
from sstp_pppd.core.events import Aborted, ConnectionClosed, Disconnected, KeepaliveExpired
from sstp_pppd.core.httpphase import HTTP_TIMEOUT, HttpPhase
from sstp_pppd.core.keywait import KEY_WAIT, Binding, KeyWait
from sstp_pppd.core.lcpnudge import LcpResent
from sstp_pppd.core.messages import HashProtocol
from sstp_pppd.core.pppwatch import AuthSucceeded

from .test_client import GUID, HTTP_200, IPCP_REQUEST, IPV4, LCP_REQUEST, acked, mschapv2
from .test_connection import abort, ack, tr
from .test_connection import requested as sstp_requested
from .test_pppwatch import MAGIC, MRU, lcp_ack

KEYED = AuthSucceeded(method="MS-CHAPv2", hlak=bytes(range(32)), keys_known=True)
KEYLESS = AuthSucceeded(method="PAP", hlak=bytes(32), keys_known=True)
UNKNOWN = AuthSucceeded(method="EAP-TLS", hlak=bytes(32), keys_known=False)
SEND, RECV = bytes(range(16)), bytes(range(16, 32))


# ----- httpphase ------------------------------------------------------------------------------


def test_http_phase_request_deadline_and_accepted_head_split_anywhere() -> None:
    http = HttpPhase("vpn.example", GUID)
    assert http.deadline is None
    assert http.start(5.0).startswith(b"SSTP_DUPLEX_POST /sra_")
    assert http.deadline == 5.0 + HTTP_TIMEOUT
    with pytest.raises(UsageError):
        http.start(6.0)
    assert http.receive(HTTP_200[:20]) == []
    events = http.receive(HTTP_200[20:] + b"sstp")
    assert events == [HttpAccepted(status=200, reason="OK", warnings=(), trailing=b"sstp")]
    assert http.accepted and http.deadline is None and http.trailing == b"sstp"
    assert http.receive(b"more") == []  # the SSTP stream is not the phase's
    with pytest.raises(UsageError):
        http.start(7.0)


def test_http_phase_timeout_then_nothing_more() -> None:
    http = HttpPhase("vpn.example", GUID, timeout=10.0)
    http.start(0.0)
    assert http.due(9.9) == []
    (end, closed) = http.due(10.0)
    assert end == CallEnded(
        outcome=Outcome.HTTP_FAILED,
        message="the server did not answer the HTTP request within 10 s",
    )
    assert closed == ConnectionClosed()
    assert http.deadline is None
    assert http.receive(HTTP_200) == [] and http.connection_lost() == []
    assert not http.accepted


def test_http_phase_closed_by_the_server_or_by_us() -> None:
    http = HttpPhase("vpn.example", GUID)
    http.start(0.0)
    http.receive(b"HTTP/1.1 200 OK\r\n")
    (end, closed) = http.connection_lost()
    assert isinstance(end, CallEnded) and end.outcome is Outcome.HTTP_FAILED
    assert closed == ConnectionClosed()
    assert http.connection_lost() == []  # reported once
    ours = HttpPhase("vpn.example", GUID)
    ours.start(0.0)
    ours.close()
    assert ours.deadline is None
    assert ours.connection_lost() == [] and ours.due(1e9) == []


# ----- keywait --------------------------------------------------------------------------------


def test_keys_without_a_plugin_bind_at_once() -> None:
    keys = KeyWait()
    assert keys.verdict(KEYED, 1.0) == Binding(
        method="MS-CHAPv2", hlak=KEYED.hlak, source=KeySource.PASSWORD
    )
    assert KeyWait().verdict(KEYLESS, 1.0) == Binding(
        method="PAP", hlak=bytes(32), source=KeySource.NONE
    )
    assert keys.deadline is None


def test_expected_plugin_keys_are_awaited_and_win() -> None:
    keys = KeyWait()
    keys.expect_plugin_keys()
    assert keys.verdict(KEYED, 1.0) is None
    assert keys.deadline == 1.0 + KEY_WAIT
    assert keys.due(1.0 + KEY_WAIT - 0.1) is None
    binding = keys.keys_received(SEND, RECV)
    assert binding == Binding(
        method="MS-CHAPv2", hlak=crypto.hlak(SEND, RECV), source=KeySource.PLUGIN
    )
    assert keys.deadline is None and keys.due(1e9) is None


def test_a_keyless_method_waits_for_no_plugin() -> None:
    keys = KeyWait()
    keys.expect_plugin_keys()
    assert keys.verdict(KEYLESS, 1.0) == Binding(
        method="PAP", hlak=bytes(32), source=KeySource.NONE
    )


def test_plugin_keys_before_the_verdict_win_at_once() -> None:
    keys = KeyWait()
    assert keys.keys_received(SEND, RECV) is None  # nothing waits yet: kept
    assert keys.verdict(UNKNOWN, 1.0) == Binding(
        method="EAP-TLS", hlak=crypto.hlak(SEND, RECV), source=KeySource.PLUGIN
    )


def test_unknown_keys_bind_with_zeros_after_the_wait_or_at_once_without_one() -> None:
    keys = KeyWait(2.0)
    assert keys.verdict(UNKNOWN, 1.0) is None
    zeros = Binding(
        method="EAP-TLS",
        hlak=bytes(32),
        source=KeySource.ZERO,
        why_unknown="this method's keys come only from pppd",
    )
    assert keys.due(3.0) == zeros
    assert keys.deadline is None and keys.due(4.0) is None
    assert KeyWait(0.0).verdict(UNKNOWN, 1.0) == zeros


def test_binding_hlak_not_in_repr() -> None:
    assert "hlak" not in repr(Binding(method="x", hlak=bytes(32), source=KeySource.ZERO))


# ----- authwatch ------------------------------------------------------------------------------


def test_network_layer_is_data_not_control() -> None:
    assert not network_layer([LCP_REQUEST, IPCP_REQUEST])
    assert network_layer([IPCP_REQUEST, IPV4])
    assert not network_layer([])


def test_auth_watch_verdict_once_and_batch_path_after_it() -> None:
    auth = AuthWatch()
    assert auth.watching and not auth.idle
    assert auth.needs_frames(b"any data packets")
    assert auth.from_pppd(lcp_ack(MRU, MAGIC)) is None
    assert auth.from_pppd(IPCP_REQUEST) == AuthSucceeded(
        method="none", hlak=bytes(32), keys_known=True
    )
    assert not auth.watching
    assert auth.from_pppd(IPCP_REQUEST) is None and auth.from_server([IPCP_REQUEST]) is None
    # Only LCP still matters, to the tracker: a batch without its header stays a batch.
    assert not auth.needs_frames(IPV4)
    assert auth.needs_frames(b"\x10\x00\x00\x0c" + LCP_REQUEST)
    auth.binding_accepted()
    assert auth.idle and not auth.needs_frames(LCP_REQUEST)
    assert auth.lcp_frames([LCP_REQUEST], from_pppd=True) == []


def test_auth_watch_link_end_drops_the_tracker() -> None:
    auth = AuthWatch()
    assert auth.lcp_frames([LCP_REQUEST], from_pppd=True) == []
    assert auth.link_ended(closing=True) == []
    assert auth.watching and not auth.idle  # the watcher stays: its verdict may still come
    auth.from_pppd(lcp_ack(MRU, MAGIC))
    assert auth.from_pppd(IPCP_REQUEST) is not None
    assert auth.idle


# ----- callsetup ------------------------------------------------------------------------------


def test_frames_held_until_the_ack_in_order_and_capped() -> None:
    conn = sstp_requested()
    setup = CallSetup(conn, KEY_WAIT)
    many = [bytes([i]) for i in range(EARLY_FRAMES_MAX + 5)]
    assert setup.hold(many[:3]) and setup.hold(many[3:])
    tr(conn, ack(3))
    assert setup.acked(HashProtocol.CERT_HASH_PROTOCOL_SHA256) == many[:EARLY_FRAMES_MAX]
    assert setup.held is None and not setup.hold([b"x"])
    assert not setup.hold_rest([b"x"])


def test_a_verdict_waiting_for_keys_holds_frames_then_connect_gives_them_back() -> None:
    conn = sstp_requested()
    setup = CallSetup(conn, KEY_WAIT)
    setup.tls_up(b"cert")
    tr(conn, ack(3))
    setup.acked(HashProtocol.CERT_HASH_PROTOCOL_SHA256)
    assert setup.verdict(UNKNOWN, 1.0) is None
    assert setup.hold_rest([b"a", b"b"]) and setup.hold([b"c"])
    binding = setup.keys.keys_received(SEND, RECV)
    assert binding is not None
    done = setup.connect(binding, 1.5)
    assert done == (
        CallConnected(method="EAP-TLS", key_source=KeySource.PLUGIN),
        [b"a", b"b", b"c"],
    )
    assert conn.state is State.CLIENT_CALL_CONNECTED
    assert conn.data_to_send()[4:6] == b"\x00\x04"  # CALL_CONNECTED
    assert setup.held is None


def test_connect_on_an_ending_call_binds_nothing() -> None:
    conn = sstp_requested()
    setup = CallSetup(conn, KEY_WAIT)
    tr(conn, ack(3))
    tr(conn, abort())
    conn.data_to_send()
    assert setup.connect(Binding(method="PAP", hlak=bytes(32), source=KeySource.NONE), 1.0) is None
    assert setup.held is None and conn.data_to_send() == b""
    copy = (LCP_REQUEST, LcpResent(identifier=1, after=0.5))
    assert send_copy(conn, copy) == []


def test_send_copy_queues_the_frame() -> None:
    conn = sstp_requested()
    tr(conn, ack(3))
    event = LcpResent(identifier=1, after=0.5)
    assert send_copy(conn, (LCP_REQUEST, event)) == [event]
    assert conn.data_to_send().endswith(LCP_REQUEST)


# ----- how a call ended; the client's one timer -----------------------------------------------


def test_endings_as_outcomes() -> None:
    assert ended(KeepaliveExpired(), asked=False, bound=False) is KEEPALIVE_ENDED
    assert ended(Disconnected(status=0), asked=True, bound=True).outcome is Outcome.DISCONNECTED
    aborted = ended(Aborted(status=3, local=False, unframeable=False), asked=False, bound=True)
    assert aborted.outcome is Outcome.SERVER_ABORTED
    assert ended_by_loss("") == CallEnded(
        outcome=Outcome.CONNECTION_LOST, message="the server closed the connection"
    )
    assert ended_by_loss("reset").message == "the server closed the connection: reset"


def test_next_deadline_with_parts_alive_but_nothing_due() -> None:
    # Parts still there (HTTP phase, set-up, rule 6) with no deadline of their own: none.
    c = ClientConnection(host="vpn.example", correlation_id=GUID)
    assert c.next_deadline() is None


def test_next_deadline_is_the_earliest_part() -> None:
    c = ClientConnection(host="vpn.example", correlation_id=GUID, lcp_nudge=None)
    c.start(b"cert", 0.0)
    assert c.next_deadline() == HTTP_TIMEOUT
    c.receive_data(HTTP_200, 1.0)
    sstp = c.next_deadline()  # the SSTP machine's negotiation timer, from 1.0
    assert sstp is not None and 1.0 < sstp
    # MS-CHAPv2 without the password: its keys are awaited from 2.0.
    c = acked(lcp_nudge=None)
    sstp = c.next_deadline()
    assert sstp is not None and sstp > 2.0 + KEY_WAIT
    assert isinstance(mschapv2(c)[0], AuthSucceeded)
    assert c.next_deadline() == 2.0 + KEY_WAIT
    events = c.handle_timer(2.0 + KEY_WAIT)
    assert [type(e) for e in events] == [CallConnected]
    after = c.next_deadline()  # the SSTP machine's again, its hello timer now
    assert after is not None and after > 2.0 + KEY_WAIT
