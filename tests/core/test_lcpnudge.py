"""The early copy of pppd's first LCP Configure-Request (sstp_pppd.core.lcpnudge).

The frames are the ones pppd 2.4.9 and sstp-server's pppd exchanged in User-Mode Linux
(bench/README.md, connect_bench.py ``--verbose``, as sstpd logged them). The rule is
proven on :class:`LcpNudge` and, bytes in and bytes out, through
:class:`ClientConnection` and its one timer, as the transport drives it.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sstp_pppd.core import hdlc
from sstp_pppd.core.client import ClientConnection, ClientEvent, PppFrames
from sstp_pppd.core.lcpnudge import NUDGE_DELAY, LcpNudge, LcpResent, lcp_code

from .test_client import CHAP_CHALLENGE, HTTP_200, acked, client, frames, lookup, mschapv2
from .test_connection import DISCONNECT_ACK, REQUEST, ack, data, disconnect

H = bytes.fromhex
#: pppd's first request: id 1, <asyncmap 0x0> <magic 0x76447c06> <pcomp> <accomp>.
PPPD_CONFREQ = H("ff03c02101010014020600000000050676447c0607020802")
#: pppd's restart after the 3 s timer would send these very bytes; a new request has id 2.
PPPD_CONFREQ_2 = H("ff03c02101020014020600000000050676447c0607020802")
#: The server's request (id 1, <auth chap MS-v2>) and its Ack of pppd's request.
SERVER_CONFREQ = H("ff03c021010100190206000000000305c223810506ecb9824d07020802")
SERVER_CONFACK = H("ff03c02102010014020600000000050676447c0607020802")
#: pppd's Configure-Ack of the server's request.
PPPD_ACK_OF_SERVER = H("ff03c021020100190206000000000305c223810506ecb9824d07020802")
#: pppd giving up: Terminate-Request id 2 "User request".
PPPD_TERMREQ = H("ff03c02105020010") + b"User request"
#: The same request with address/control and protocol compressed (RFC 1661 6.5/6.6).
COMPRESSED_CONFREQ = H("c02101010014020600000000050676447c0607020802")


def run_timer(c: ClientConnection, now: float) -> list[ClientEvent]:
    """What the transport does: fire the timer if the core asked for one by ``now``."""
    deadline = c.next_deadline()
    if deadline is None or deadline > now:
        return []
    return c.handle_timer(now)


def held_until_ack(**kwargs: object) -> ClientConnection:
    """pty mode: pppd's request arrives before the ACK, is held, goes out at t=1.0."""
    c = client(**kwargs)
    c.receive_data(HTTP_200, 0.0)
    assert c.data_to_send() == REQUEST
    assert c.frames_from_pppd([PPPD_CONFREQ], 0.5) == []
    assert c.data_to_send() == b""
    c.receive_data(ack(3), 1.0)
    assert c.data_to_send() == data(PPPD_CONFREQ)
    return c


# ----- the rule on its own ----------------------------------------------------------------


def test_lcp_code_reads_real_frames_and_nothing_else() -> None:
    assert lcp_code(PPPD_CONFREQ) == 1
    assert lcp_code(COMPRESSED_CONFREQ) == 1
    assert lcp_code(SERVER_CONFACK) == 2
    assert lcp_code(PPPD_TERMREQ) == 5
    assert lcp_code(PPPD_CONFREQ[:-1]) is None  # Length says more than there is
    assert lcp_code(H("ff03c223010100080102")) is None  # CHAP, not LCP
    assert lcp_code(b"") is None


def test_nudge_resends_the_same_bytes_once_at_the_deadline() -> None:
    nudge = LcpNudge()
    nudge.relayed([PPPD_CONFREQ], 10.0)
    assert nudge.deadline == 10.0 + NUDGE_DELAY
    assert nudge.due(10.0 + NUDGE_DELAY - 0.01) is None
    assert nudge.due(10.0 + NUDGE_DELAY) == (
        PPPD_CONFREQ,
        LcpResent(identifier=1, after=NUDGE_DELAY),
    )
    assert nudge.done and nudge.deadline is None
    assert nudge.due(100.0) is None
    nudge.relayed([PPPD_CONFREQ_2], 101.0)  # pppd's own restart: no second copy
    assert nudge.deadline is None


def test_nudge_delay_runs_from_the_latest_request() -> None:
    nudge = LcpNudge(delay=0.5)
    nudge.relayed([PPPD_CONFREQ], 1.0)
    nudge.relayed([PPPD_CONFREQ_2], 1.3)
    assert nudge.due(1.5) is None
    assert nudge.due(1.8) == (PPPD_CONFREQ_2, LcpResent(identifier=2, after=0.5))


def test_nudge_stops_when_the_server_speaks_or_pppd_moves_on() -> None:
    spoke = LcpNudge()
    spoke.relayed([PPPD_CONFREQ], 1.0)
    spoke.server_spoke()
    assert spoke.due(9.0) is None and spoke.done
    terminated = LcpNudge()
    terminated.relayed([PPPD_CONFREQ, PPPD_TERMREQ], 1.0)
    assert terminated.due(9.0) is None and terminated.done
    acked_already = LcpNudge()  # pppd acked something: it heard the server
    acked_already.relayed([SERVER_CONFACK], 1.0)
    acked_already.relayed([PPPD_CONFREQ], 1.1)
    assert acked_already.due(9.0) is None


@given(st.lists(st.binary(max_size=40), max_size=8), st.floats(0, 1e6))
def test_nudge_resends_only_a_frame_pppd_sent_as_a_configure_request(
    sent: list[bytes], now: float
) -> None:
    nudge = LcpNudge()
    nudge.relayed(sent, now)
    due = nudge.due(now + NUDGE_DELAY)
    if due is None:
        return
    frame, event = due
    assert frame in sent and lcp_code(frame) == 1
    assert all(lcp_code(f) == 1 for f in sent)  # anything else would have stopped it
    assert frame == sent[-1]
    assert 0 <= event.identifier <= 255


def test_server_request_first_arms_the_copy_for_pppds_answer_once() -> None:
    nudge = LcpNudge()
    nudge.relayed([PPPD_CONFREQ], 1.0)
    assert nudge.server_frames([SERVER_CONFREQ]) is None
    assert nudge.deadline is None and not nudge.done  # (a) is off, (b) waits
    assert nudge.due(9.0) is None
    assert nudge.relayed([PPPD_ACK_OF_SERVER], 1.25) == (
        PPPD_CONFREQ,
        LcpResent(identifier=1, after=0.25, server_asked=True),
    )
    assert nudge.done
    assert nudge.relayed([PPPD_ACK_OF_SERVER], 1.3) is None
    nudge.server_frames([SERVER_CONFREQ])
    assert nudge.relayed([PPPD_ACK_OF_SERVER], 1.4) is None
    assert nudge.due(9.0) is None


def test_no_copy_unless_the_server_opens_with_a_request_that_answers_nothing() -> None:
    cases: list[tuple[list[bytes], list[list[bytes]]]] = [
        ([PPPD_CONFREQ], [[SERVER_CONFACK]]),  # the first copy arrived
        ([PPPD_CONFREQ], [[SERVER_CONFACK, SERVER_CONFREQ]]),
        ([PPPD_CONFREQ], [[SERVER_CONFREQ, SERVER_CONFACK]]),  # answered in the same batch
        ([PPPD_CONFREQ], [[SERVER_CONFREQ], [SERVER_CONFACK]]),  # answered before pppd
        ([PPPD_CONFREQ], [[COMPRESSED_CONFREQ[:-1]]]),  # no well-formed LCP packet
        ([PPPD_CONFREQ], [[]]),
        ([PPPD_CONFREQ, PPPD_TERMREQ], [[SERVER_CONFREQ]]),  # pppd moved on
        ([], [[SERVER_CONFREQ]]),  # launch mode: pppd has sent nothing yet
    ]
    for sent, batches in cases:
        nudge = LcpNudge()
        nudge.relayed(sent, 1.0)
        for batch in batches:
            nudge.server_frames(batch)
        assert nudge.done, (sent, batches)
        assert nudge.relayed([PPPD_ACK_OF_SERVER], 1.2) is None
        assert nudge.due(9.0) is None
        nudge.relayed([PPPD_CONFREQ], 9.0)  # nor for a later request
        assert nudge.due(99.0) is None


def test_no_copy_when_pppd_resends_its_request_itself() -> None:
    nudge = LcpNudge()
    nudge.relayed([PPPD_CONFREQ], 1.0)
    nudge.server_frames([SERVER_CONFREQ])
    assert nudge.relayed([PPPD_CONFREQ], 4.0) is None and nudge.done


def test_an_ack_of_another_request_is_no_answer() -> None:
    """An Ack whose Identifier is not the request's does not answer it (RFC 1661 5.2)."""
    nudge = LcpNudge()
    nudge.relayed([PPPD_CONFREQ_2], 1.0)
    nudge.server_frames([SERVER_CONFREQ, SERVER_CONFACK])  # SERVER_CONFACK: id 1
    nudge.server_frames([SERVER_CONFACK])
    copy = nudge.relayed([PPPD_ACK_OF_SERVER], 1.5)
    assert copy == (PPPD_CONFREQ_2, LcpResent(identifier=2, after=0.5, server_asked=True))


def test_no_copy_for_the_server_after_the_silent_one() -> None:
    nudge = LcpNudge()
    nudge.relayed([PPPD_CONFREQ], 1.0)
    assert nudge.due(1.0 + NUDGE_DELAY) is not None
    nudge.server_frames([SERVER_CONFREQ])
    assert nudge.relayed([PPPD_ACK_OF_SERVER], 1.6) is None


_SERVER = st.sampled_from([SERVER_CONFREQ, SERVER_CONFACK, PPPD_TERMREQ]) | st.binary(max_size=30)


@given(
    st.lists(st.binary(max_size=40), max_size=4),
    st.lists(st.lists(_SERVER, max_size=3), max_size=3),
    st.lists(st.binary(max_size=40), max_size=3),
)
def test_at_most_one_copy_whatever_the_server_and_pppd_send(
    sent: list[bytes], batches: list[list[bytes]], answer: list[bytes]
) -> None:
    nudge = LcpNudge()
    nudge.relayed([PPPD_CONFREQ, *sent], 1.0)
    for batch in batches:
        nudge.server_frames(batch)
    copies = [nudge.relayed(answer, 1.1), nudge.due(9.0), nudge.relayed(answer, 9.5)]
    made = [c for c in copies if c is not None]
    assert len(made) <= 1
    if copies[0] is not None:
        frame, event = copies[0]
        assert frame == [PPPD_CONFREQ, *sent][-1] and lcp_code(frame) == 1
        assert batches and batches[0] and lcp_code(batches[0][0]) == 1 and event.server_asked
        assert answer and lcp_code(answer[0]) != 1
        served = [f for b in batches for f in b]
        assert SERVER_CONFACK not in served or event.identifier != 1


# ----- through the client, as the transport drives it -------------------------------------


def test_silent_server_gets_one_copy_at_the_deadline() -> None:
    c = held_until_ack()
    assert c.next_deadline() == 1.0 + NUDGE_DELAY
    assert run_timer(c, 1.0 + NUDGE_DELAY - 0.01) == []
    assert c.data_to_send() == b""
    events = run_timer(c, 1.0 + NUDGE_DELAY)
    assert events == [LcpResent(identifier=1, after=NUDGE_DELAY)]
    assert c.data_to_send() == data(PPPD_CONFREQ)
    # Not twice: the next deadline is the SSTP negotiation timer, far away.
    later = c.next_deadline()
    assert later is not None and later > 10.0
    assert run_timer(c, 9.0) == []
    assert c.data_to_send() == b""


def test_launch_mode_request_after_the_ack_gets_its_copy_too() -> None:
    c = acked()  # ACK at t=0, pppd started afterwards
    assert c.frames_from_pppd([PPPD_CONFREQ], 0.8) == []
    assert c.data_to_send() == data(PPPD_CONFREQ)
    assert run_timer(c, 0.8 + NUDGE_DELAY) == [LcpResent(identifier=1, after=NUDGE_DELAY)]
    assert c.data_to_send() == data(PPPD_CONFREQ)


def test_packets_from_pppd_feed_it_too() -> None:
    """The relay's batch path (hdlc.PacketDecoder output) goes through the same rule."""
    c = acked()
    c.packets_from_pppd(data(PPPD_CONFREQ), 0.2)
    assert c.data_to_send() == data(PPPD_CONFREQ)
    assert run_timer(c, 0.2 + NUDGE_DELAY) == [LcpResent(identifier=1, after=NUDGE_DELAY)]
    assert c.data_to_send() == data(PPPD_CONFREQ)


def test_lcp_first_server_gets_the_copy_ahead_of_pppds_answer() -> None:
    """pty mode against a pppd without ``silent``: the held request went out at the ACK,
    as the server was starting its pppd; that pppd's own request is the first frame back.
    The copy goes out ahead of pppd's answer to it, and only once."""
    c = held_until_ack()
    assert c.receive_data(data(SERVER_CONFREQ), 1.25) == [PppFrames(frames=[SERVER_CONFREQ])]
    assert c.data_to_send() == b""
    assert c.frames_from_pppd([PPPD_ACK_OF_SERVER], 1.5) == [
        LcpResent(identifier=1, after=0.5, server_asked=True)
    ]
    assert c.data_to_send() == frames(PPPD_CONFREQ, PPPD_ACK_OF_SERVER)
    # Not twice: no timer copy, none for the server's Ack of either copy or its retry.
    deadline = c.next_deadline()
    assert deadline is not None and deadline > 10.0
    assert run_timer(c, 1.0 + NUDGE_DELAY) == []
    assert c.receive_data(data(SERVER_CONFACK), 1.6) == [PppFrames(frames=[SERVER_CONFACK])]
    assert c.receive_data(data(SERVER_CONFACK), 1.61) == [PppFrames(frames=[SERVER_CONFACK])]
    assert c.receive_data(data(SERVER_CONFREQ), 4.0) == [PppFrames(frames=[SERVER_CONFREQ])]
    c.frames_from_pppd([PPPD_ACK_OF_SERVER], 4.01)
    assert c.data_to_send() == data(PPPD_ACK_OF_SERVER)


def test_the_copy_goes_in_the_batch_path_too() -> None:
    """pppd's answer through packets_from_pppd (the relay's batch path): copy first."""
    c = held_until_ack()
    c.receive_data(data(SERVER_CONFREQ), 1.25)
    assert c.packets_from_pppd(data(PPPD_ACK_OF_SERVER), 1.5) == [
        LcpResent(identifier=1, after=0.5, server_asked=True)
    ]
    assert c.data_to_send() == frames(PPPD_CONFREQ, PPPD_ACK_OF_SERVER)


def test_launch_mode_request_crossing_the_servers_gets_the_copy() -> None:
    """pppd started after the ACK: its request and the server's crossed on the wire."""
    c = acked()
    c.frames_from_pppd([PPPD_CONFREQ], 0.5)
    assert c.data_to_send() == data(PPPD_CONFREQ)
    c.receive_data(data(SERVER_CONFREQ), 0.6)
    assert c.frames_from_pppd([PPPD_ACK_OF_SERVER], 0.75) == [
        LcpResent(identifier=1, after=0.25, server_asked=True)
    ]
    assert c.data_to_send() == frames(PPPD_CONFREQ, PPPD_ACK_OF_SERVER)


def test_the_copy_is_of_pppds_latest_request() -> None:
    c = acked()
    c.frames_from_pppd([PPPD_CONFREQ], 0.1)
    c.frames_from_pppd([PPPD_CONFREQ_2], 0.3)
    c.data_to_send()
    c.receive_data(data(SERVER_CONFREQ), 0.4)
    assert c.frames_from_pppd([PPPD_ACK_OF_SERVER], 0.5) == [
        LcpResent(identifier=2, after=0.2, server_asked=True)
    ]
    assert c.data_to_send() == frames(PPPD_CONFREQ_2, PPPD_ACK_OF_SERVER)


def test_no_copy_when_a_silent_servers_ack_follows_its_request() -> None:
    """A ``silent`` server answers pppd's request with its own request, then its Ack; in
    two reads, the Ack still comes before pppd's answer: the first copy arrived."""
    c = held_until_ack()
    assert c.receive_data(data(SERVER_CONFREQ), 1.1) == [PppFrames(frames=[SERVER_CONFREQ])]
    assert c.receive_data(data(SERVER_CONFACK), 1.1) == [PppFrames(frames=[SERVER_CONFACK])]
    assert c.frames_from_pppd([PPPD_ACK_OF_SERVER], 1.2) == []
    assert c.data_to_send() == data(PPPD_ACK_OF_SERVER)


def test_no_copy_when_the_server_answered_first() -> None:
    """The server's first frame is its Ack of pppd's request: the first copy arrived."""
    c = held_until_ack()
    assert c.receive_data(data(SERVER_CONFACK), 1.1) == [PppFrames(frames=[SERVER_CONFACK])]
    assert c.data_to_send() == b""
    assert c.receive_data(data(SERVER_CONFREQ), 1.2) == [PppFrames(frames=[SERVER_CONFREQ])]
    assert run_timer(c, 1.0 + NUDGE_DELAY) == []
    assert c.data_to_send() == b""


def test_no_copy_when_the_batch_with_the_servers_request_answers_pppds() -> None:
    c = held_until_ack()
    events = c.receive_data(data(SERVER_CONFREQ) + data(SERVER_CONFACK), 1.1)
    assert events == [PppFrames(frames=[SERVER_CONFREQ, SERVER_CONFACK])]
    assert c.data_to_send() == b""


def test_no_copy_when_the_servers_first_frame_is_not_lcp() -> None:
    c = held_until_ack()
    assert c.receive_data(data(CHAP_CHALLENGE), 1.1) == [PppFrames(frames=[CHAP_CHALLENGE])]
    assert c.receive_data(data(SERVER_CONFREQ), 1.2) == [PppFrames(frames=[SERVER_CONFREQ])]
    assert c.frames_from_pppd([PPPD_ACK_OF_SERVER], 1.3) == []
    assert c.data_to_send() == data(PPPD_ACK_OF_SERVER)


def test_no_copy_when_pppd_sent_something_else_since() -> None:
    c = acked()
    c.frames_from_pppd([PPPD_CONFREQ, PPPD_TERMREQ], 0.1)
    c.data_to_send()
    assert c.receive_data(data(SERVER_CONFREQ), 0.3) == [PppFrames(frames=[SERVER_CONFREQ])]
    assert c.frames_from_pppd([PPPD_ACK_OF_SERVER], 0.4) == []
    assert c.data_to_send() == data(PPPD_ACK_OF_SERVER)


def test_no_second_copy_after_the_silent_one() -> None:
    """The server answers only after the timer's copy: that copy was the one."""
    c = held_until_ack()
    assert run_timer(c, 1.0 + NUDGE_DELAY) == [LcpResent(identifier=1, after=NUDGE_DELAY)]
    assert c.data_to_send() == data(PPPD_CONFREQ)
    assert c.receive_data(data(SERVER_CONFREQ), 1.6) == [PppFrames(frames=[SERVER_CONFREQ])]
    assert c.frames_from_pppd([PPPD_ACK_OF_SERVER], 1.7) == []
    assert c.data_to_send() == data(PPPD_ACK_OF_SERVER)


def test_the_batch_path_is_free_of_it_once_the_copy_went(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the copy and authentication, pppd's batches are queued as they are: the
    rule costs nothing per frame from then on."""
    c = held_until_ack(password_lookup=lookup)
    c.receive_data(data(SERVER_CONFREQ), 1.25)
    c.frames_from_pppd([PPPD_ACK_OF_SERVER], 1.3)
    assert c.data_to_send() == frames(PPPD_CONFREQ, PPPD_ACK_OF_SERVER)
    mschapv2(c)
    assert c.call_connected
    c.data_to_send()

    def no_split(packets: bytes) -> list[bytes]:
        raise AssertionError("the batch was split into frames")

    monkeypatch.setattr(hdlc, "split_packets", no_split)
    ipv4 = b"\xff\x03\x00\x21" + bytes(20)
    assert c.packets_from_pppd(data(ipv4) + data(ipv4), 3.0) == []
    assert c.data_to_send() == frames(ipv4, ipv4)


def test_no_copy_when_the_server_spoke_before_pppd_did() -> None:
    """lcp-first server: its request arrives before pppd's own; pppd's is never copied."""
    c = acked()
    c.receive_data(data(SERVER_CONFREQ), 0.1)
    assert c.frames_from_pppd([PPPD_CONFREQ], 0.2) == []
    assert c.data_to_send() == data(PPPD_CONFREQ)
    assert run_timer(c, 0.2 + NUDGE_DELAY) == []
    assert c.data_to_send() == b""


def test_no_copy_after_teardown_began() -> None:
    asked = held_until_ack()
    asked.disconnect(1.2)
    asked.data_to_send()  # CALL_DISCONNECT
    assert all(not isinstance(e, LcpResent) for e in run_timer(asked, 1.0 + NUDGE_DELAY))
    assert asked.data_to_send() == b""

    closing = held_until_ack()
    closing.expect_close()  # pppd is ending, the goodbye follows
    assert run_timer(closing, 1.0 + NUDGE_DELAY) == []
    assert closing.data_to_send() == b""

    told = held_until_ack()
    told.receive_data(disconnect(), 1.2)
    assert told.data_to_send() == DISCONNECT_ACK
    assert all(not isinstance(e, LcpResent) for e in run_timer(told, 1.0 + NUDGE_DELAY))
    assert told.data_to_send() == b""

    lost = held_until_ack()
    lost.connection_lost(1.2)
    assert run_timer(lost, 1.0 + NUDGE_DELAY) == []
    assert lost.data_to_send() == b""


def test_nothing_before_the_ack() -> None:
    """Held frames have not gone out: nothing to copy, no timer for it."""
    c = client()
    c.receive_data(HTTP_200, 0.0)
    c.data_to_send()
    c.frames_from_pppd([PPPD_CONFREQ], 0.1)
    deadline = c.next_deadline()
    assert deadline is not None and deadline > 10.0  # the negotiation timer only


def test_a_client_without_it() -> None:
    c = acked(lcp_nudge=None)
    c.frames_from_pppd([PPPD_CONFREQ], 0.1)
    assert c.data_to_send() == frames(PPPD_CONFREQ)
    assert run_timer(c, 0.1 + NUDGE_DELAY) == []
    assert c.data_to_send() == b""
