"""The relay's batch path of Connection against its per-frame path.

``receive_hdlc`` must give pppd the same frames, in the same order, with the same events,
output and timers as ``receive_data`` followed by ``hdlc.encode_frames`` of each
``PppFrames``, however the server's bytes are split; ``send_data_packets`` must queue what
``send_ppp_frame`` would.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sstp_pppd.core import hdlc
from sstp_pppd.core.connection import Connection, PppFrames, State
from sstp_pppd.core.errors import UsageError
from tests.core.test_connection import (
    ECHO_REQUEST,
    ECHO_RESPONSE,
    abort,
    acked,
    connected,
    data,
    disconnect,
    requested,
)

_packets = st.lists(
    st.one_of(
        st.binary(min_size=0, max_size=200).map(data),
        st.binary(min_size=0, max_size=200).map(data),
        st.just(ECHO_REQUEST),
        st.just(ECHO_RESPONSE),
        st.sampled_from([abort(), disconnect(), b"\x11\x00\x00\x04", b"\x10\x00\x00\x02"]),
    ),
    max_size=10,
).map(b"".join)


def per_frame(conn: Connection, data_: bytes, now: float) -> tuple[bytes, list[object]]:
    events = conn.receive_data(data_, now)
    stream = b"".join(hdlc.encode_frames(e.frames) for e in events if isinstance(e, PppFrames))
    return stream, [e for e in events if not isinstance(e, PppFrames)]


def batched(conn: Connection, data_: bytes, now: float) -> tuple[bytes, list[object]]:
    stream, events = conn.receive_hdlc(data_, now)
    stream += b"".join(hdlc.encode_frames(e.frames) for e in events if isinstance(e, PppFrames))
    return stream, [e for e in events if not isinstance(e, PppFrames)]


@settings(max_examples=300, deadline=None)
@given(_packets, st.lists(st.integers(0, 2000), max_size=6), st.sampled_from(["acked", "up"]))
def test_receive_hdlc_agrees_with_receive_data(wire: bytes, cuts: list[int], start: str) -> None:
    ref, fast = (connected(), connected()) if start == "up" else (acked(), acked())
    bounds = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        now = float(i)
        ref_stream, ref_events = per_frame(ref, wire[lo:hi], now)
        fast_stream, fast_events = batched(fast, wire[lo:hi], now)
        assert hdlc.Decoder().feed(fast_stream) == hdlc.Decoder().feed(ref_stream)
        assert fast_events == ref_events
        assert fast.data_to_send() == ref.data_to_send()
        assert fast.state is ref.state
        assert fast.next_deadline() == ref.next_deadline()


def test_a_split_data_packet_goes_on_in_the_batch_path() -> None:
    conn = connected()
    wire = data(b"\xff\x03\x00\x21hello") + data(b"\xff\x03\x00\x21world")
    first, events = conn.receive_hdlc(wire[:5], 1.0)
    assert (first, events) == (b"", [])
    rest, events = conn.receive_hdlc(wire[5:], 2.0)
    assert events == []
    assert rest == hdlc.encode_frames([b"\xff\x03\x00\x21hello", b"\xff\x03\x00\x21world"])
    assert conn.next_deadline() == 2.0 + 60.0  # the hello timer, from the last traffic


def test_send_data_packets_queues_what_send_ppp_frame_would() -> None:
    frames = [b"\xff\x03\xc0\x21\x01\x01\x00\x04", b"\x00\x21" + bytes(100)]
    ref, fast = connected(), connected()
    for frame in frames:
        ref.send_ppp_frame(frame)
    fast.send_data_packets(hdlc.PacketDecoder().feed(hdlc.encode_frames(frames)))
    assert fast.data_to_send() == ref.data_to_send()


def test_send_data_packets_refused_before_the_ack() -> None:
    conn = requested()
    assert conn.state is State.CLIENT_CONNECT_REQUEST_SENT
    with pytest.raises(UsageError, match="cannot send PPP frames"):
        conn.send_data_packets(data(b"x"))
