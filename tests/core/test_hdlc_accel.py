"""The C accelerator (core/_hdlc.c) against the pure-Python reference, byte for byte.

Both PacketDecoders must return the same bytes and the same counters after every feed,
whatever the input and however it is split; both encode_packets must return the same
stream and the same count of consumed bytes.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sstp_pppd.core import hdlc

_hdlc = pytest.importorskip("sstp_pppd.core._hdlc", reason="C accelerator not built")

COUNTERS = ("bad_fcs", "too_short", "aborted", "oversized", "too_big", "buffered")


def counters(decoder: object) -> dict[str, int]:
    return {name: getattr(decoder, name) for name in COUNTERS}


def packet(frame: bytes) -> bytes:
    return (0x10000000 | (4 + len(frame))).to_bytes(4, "big") + frame


# A stream pppd could write, plus what it could not: garbage, aborts, bad FCS, lone escapes.
_frames = st.binary(min_size=0, max_size=300)
_piece = st.one_of(
    st.builds(hdlc.encode, _frames, st.sampled_from([0, hdlc.ACCM_ALL, 0xA])),
    st.builds(lambda f: hdlc.encode(f)[:-1] + b"\x7d\x7e", _frames),  # aborted
    st.builds(lambda f: hdlc.encode(f)[:-3] + b"\x00\x7e", _frames),  # bad FCS
    st.binary(max_size=40),
    st.sampled_from([b"\x7e", b"\x7d", b"\x7d\x7d", b"\x7e\x7e", b"\x7d\x5e", b"}"]),
)
_stream = st.lists(_piece, max_size=12).map(b"".join)
_limits = st.one_of(
    st.just((hdlc.DEFAULT_MAX_LENGTH, hdlc.MAX_SSTP_PAYLOAD)),
    st.tuples(st.integers(0, 400), st.integers(0, hdlc.MAX_SSTP_PAYLOAD)),
)


@settings(max_examples=400, deadline=None)
@given(_stream, st.lists(st.integers(0, 400), max_size=8), _limits)
def test_decoders_agree_feed_by_feed(data: bytes, cuts: list[int], limits: tuple[int, int]) -> None:
    ref, fast = hdlc.PyPacketDecoder(*limits), _hdlc.PacketDecoder(*limits)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        chunk = data[start:end]
        assert fast.feed(chunk) == ref.feed(chunk)
        assert counters(fast) == counters(ref)


@settings(max_examples=100, deadline=None)
@given(st.lists(_piece, max_size=5).map(b"".join), _limits)
def test_decoders_agree_at_every_split_point(data: bytes, limits: tuple[int, int]) -> None:
    ref = hdlc.PyPacketDecoder(*limits)
    expected = ref.feed(data)
    for i in range(len(data) + 1):
        fast = _hdlc.PacketDecoder(*limits)
        assert fast.feed(data[:i]) + fast.feed(data[i:]) == expected
        assert counters(fast) == counters(ref)


@settings(max_examples=200, deadline=None)
@given(st.lists(_frames, max_size=10))
def test_packet_decoder_returns_the_frames_as_sstp_packets(frames: list[bytes]) -> None:
    data = hdlc.encode_frames(frames)
    kept = [f for f in frames if len(f) >= 2]  # shorter ones are under 4 octets with the FCS
    assert _hdlc.PacketDecoder().feed(data) == b"".join(map(packet, kept))
    assert hdlc.split_packets(b"".join(map(packet, kept))) == kept
    assert hdlc.Decoder().feed(data) == kept


def test_byte_by_byte_and_views() -> None:
    data = hdlc.encode_frames([b"\xff\x03\xc0\x21\x01\x01\x00\x04", bytes(range(256))])
    fast, ref = _hdlc.PacketDecoder(), hdlc.PyPacketDecoder()
    out_fast = b"".join(fast.feed(memoryview(data)[i : i + 1]) for i in range(len(data)))
    out_ref = b"".join(ref.feed(bytearray(data[i : i + 1])) for i in range(len(data)))
    assert out_fast == out_ref
    assert len(out_fast) == 2 * 4 + 8 + 256


def test_too_big_for_sstp_is_dropped_and_counted() -> None:
    big = bytes(hdlc.MAX_SSTP_PAYLOAD + 1)
    for decoder in (_hdlc.PacketDecoder(), hdlc.PyPacketDecoder()):
        assert decoder.feed(hdlc.encode(big) + hdlc.encode(b"ok")) == packet(b"ok")
        assert decoder.too_big == 1


def test_limits_are_checked() -> None:
    for cls in (_hdlc.PacketDecoder, hdlc.PyPacketDecoder):
        with pytest.raises(ValueError, match="out of range"):
            cls(max_payload=hdlc.MAX_SSTP_PAYLOAD + 1)


_sstp_piece = st.one_of(
    _frames.map(packet),
    _frames.map(packet),
    st.binary(max_size=12).map(lambda b: bytes.fromhex("1001") + (4 + len(b)).to_bytes(2) + b),
    st.binary(max_size=10),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_sstp_piece, max_size=10).map(b"".join), st.integers(0, 2**32 - 1))
def test_encoders_agree(data: bytes, accm: int) -> None:
    assert _hdlc.encode_packets(data, accm) == hdlc.py_encode_packets(data, accm)
    assert _hdlc.encode_packets(data) == hdlc.py_encode_packets(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=2, max_size=300), max_size=10), st.integers(0, 2**32 - 1))
def test_encode_then_decode_round_trips(frames: list[bytes], accm: int) -> None:
    packets = b"".join(map(packet, frames))
    stream, consumed = _hdlc.encode_packets(packets, accm)
    assert consumed == len(packets)
    assert _hdlc.PacketDecoder().feed(stream) == packets


def test_encode_packets_stops_at_control_packets() -> None:
    control = bytes.fromhex("1001000800080000")  # ECHO_REQUEST
    data = packet(b"ab") + control + packet(b"cd")
    assert _hdlc.encode_packets(data) == (hdlc.encode(b"ab"), 6)
    assert _hdlc.encode_packets(control) == (b"", 0)
    assert _hdlc.encode_packets(packet(b"ab")[:-1]) == (b"", 0)


def test_selected_implementation() -> None:
    # With the accelerator importable (this module runs only then), hdlc picks it.
    assert hdlc.ACCELERATED
    assert hdlc.PacketDecoder is _hdlc.PacketDecoder


def test_the_environment_can_refuse_the_accelerator() -> None:
    import os
    import subprocess
    import sys

    probe = "from sstp_pppd.core import hdlc; print(hdlc.ACCELERATED, hdlc.PacketDecoder.__name__)"
    env = {**os.environ, "SSTP_PPPD_PURE_PYTHON": "1"}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "PyPacketDecoder"]
