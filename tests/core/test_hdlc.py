"""Tests of sstp_pppd.core.hdlc against hand-made vectors and per-byte references."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sstp_pppd.core import hdlc

# --- slow, obviously-correct references (per-byte loops are fine in tests) ---


def ref_fcs16(data: bytes, fcs: int = 0xFFFF) -> int:
    """RFC 1662 C.2, bit by bit."""
    for byte in data:
        fcs ^= byte
        for _ in range(8):
            fcs = (fcs >> 1) ^ 0x8408 if fcs & 1 else fcs >> 1
    return fcs


def ref_encode(frame: bytes, accm: int = 0xFFFFFFFF) -> bytes:
    fcs = ref_fcs16(frame) ^ 0xFFFF
    out = bytearray(b"\x7e")
    for byte in frame + bytes((fcs & 0xFF, fcs >> 8)):
        if byte in (0x7D, 0x7E) or (byte < 0x20 and accm >> byte & 1):
            out += bytes((0x7D, byte ^ 0x20))
        else:
            out.append(byte)
    out.append(0x7E)
    return bytes(out)


def ref_decode(
    data: bytes, max_length: int = hdlc.DEFAULT_MAX_LENGTH
) -> tuple[list[bytes], dict[str, int]]:
    """RFC 1662 4.2 receiver: a 7D escapes the next octet, whatever it is."""
    frames: list[bytes] = []
    counts = {"bad_fcs": 0, "too_short": 0, "oversized": 0, "aborted": 0}
    buf = bytearray()
    raw = 0  # escaped bytes since the last flag
    escaped = False
    for byte in data:
        if byte == 0x7E:
            if raw == 0:
                pass
            elif raw > max_length:
                counts["oversized"] += 1
            elif escaped:
                counts["aborted"] += 1
            elif len(buf) < 4:
                counts["too_short"] += 1
            elif ref_fcs16(bytes(buf)) != 0xF0B8:
                counts["bad_fcs"] += 1
            else:
                frames.append(bytes(buf[:-2]))
            buf.clear()
            raw = 0
            escaped = False
            continue
        raw += 1
        if escaped:
            buf.append(byte ^ 0x20)
            escaped = False
        elif byte == 0x7D:
            escaped = True
        else:
            buf.append(byte)
    if raw > max_length:  # the Decoder gives up on it before its flag comes
        counts["oversized"] += 1
    return frames, counts


def counters(decoder: hdlc.Decoder) -> dict[str, int]:
    return {
        "bad_fcs": decoder.bad_fcs,
        "too_short": decoder.too_short,
        "oversized": decoder.oversized,
        "aborted": decoder.aborted,
    }


def feed_chunks(decoder: hdlc.Decoder, data: bytes, cuts: list[int]) -> list[bytes]:
    frames: list[bytes] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        frames += decoder.feed(data[start:cut])
        start = max(start, cut)
    return frames


# pppd's first LCP Configure-Request: ACCM 0, Magic-Number, PFC, ACFC.
LCP_CONFREQ = bytes.fromhex("ff03c021 01010014 020600000000 050612345678 0702 0802")
# Written out from RFC 1662 by hand: every byte < 0x20 becomes 7D, byte^0x20.
# The FCS, 0xEF4C, goes least significant byte first and needs no escape.
LCP_CONFREQ_WIRE = bytes.fromhex(
    "7e ff 7d23 c021 7d21 7d21 7d20 7d34"
    " 7d22 7d26 7d20 7d20 7d20 7d20"
    " 7d25 7d26 7d32 345678"
    " 7d27 7d22 7d28 7d22"
    " 4cef 7e"
)
# An LCP Terminate-Request whose FCS bytes are 7E 1B: both need escaping.
LCP_TERMREQ = bytes.fromhex("ff03c021 05c70004")
LCP_TERMREQ_WIRE = bytes.fromhex("7e ff 7d23 c021 7d25 c7 7d20 7d24 7d5e 7d3b 7e")
LCP_TERMREQ_WIRE_ACCM0 = bytes.fromhex("7e ff03c021 05c70004 7d5e 1b 7e")

accms = st.one_of(
    st.sampled_from([0, hdlc.ACCM_ALL, 0x000A0000, 1, 0x80000000, 0x00000003, 0x7]),
    st.integers(0, 0xFFFFFFFF),
)
frame_bytes = st.binary(min_size=2, max_size=120) | st.lists(
    st.sampled_from(b"\x7e\x7d\x5d\x5e\x00\x01\x11\x13\x20\x1f\xff"), min_size=2, max_size=60
).map(bytes)
# Bytes that hit every branch of the decoder far more often than uniform ones.
noisy = st.lists(
    st.sampled_from(b"\x7e\x7d\x5d\x5e\x00\x20\xff") | st.integers(0, 255), max_size=200
).map(bytes)
stream = st.lists(
    noisy | st.builds(hdlc.encode, frame_bytes, accms) | st.just(b"\x7d\x7e"), max_size=6
).map(b"".join)


# --- fcs16 ---


def test_fcs16_check_value() -> None:
    # CRC-16/X-25 (this FCS with the final complement): check value 0x906E.
    assert hdlc.fcs16(b"123456789") ^ 0xFFFF == 0x906E
    assert hdlc.fcs16(b"") == 0xFFFF


def test_fcs16_good_residue() -> None:
    fcs = hdlc.fcs16(LCP_CONFREQ) ^ 0xFFFF
    assert fcs == ref_fcs16(LCP_CONFREQ) ^ 0xFFFF == 0xEF4C
    assert hdlc.fcs16(LCP_CONFREQ + fcs.to_bytes(2, "little")) == hdlc.GOOD_FCS == 0xF0B8


@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_fcs16_matches_reference(data: bytes, init: int) -> None:
    assert hdlc.fcs16(data) == ref_fcs16(data)
    assert hdlc.fcs16(data, init) == ref_fcs16(data, init)


@given(st.binary(max_size=100), st.binary(max_size=100))
def test_fcs16_continues(head: bytes, rest: bytes) -> None:
    assert hdlc.fcs16(rest, hdlc.fcs16(head)) == hdlc.fcs16(head + rest)


# --- encode ---


def test_encode_lcp_configure_request_by_hand() -> None:
    assert hdlc.encode(LCP_CONFREQ) == LCP_CONFREQ_WIRE
    assert ref_encode(LCP_CONFREQ) == LCP_CONFREQ_WIRE


def test_encode_escapes_fcs_bytes() -> None:
    assert hdlc.encode(LCP_TERMREQ) == LCP_TERMREQ_WIRE
    assert hdlc.encode(LCP_TERMREQ, 0) == LCP_TERMREQ_WIRE_ACCM0


def test_encode_accm_selects_control_characters() -> None:
    frame = b"\x7e\x7d\x00\x11\x13\x20"
    fcs = (ref_fcs16(frame) ^ 0xFFFF).to_bytes(2, "little")
    assert fcs == b"\x19\x23"
    assert hdlc.encode(frame, 0) == bytes.fromhex("7e 7d5e 7d5d 00 11 13 20 19 23 7e")
    # XON/XOFF only, as a modem link would ask for: 0x19 stays bare.
    assert hdlc.encode(frame, 0x000A0000) == bytes.fromhex("7e 7d5e 7d5d 00 7d31 7d33 20 19 23 7e")
    assert hdlc.encode(frame, 1 << 0x19) == bytes.fromhex("7e 7d5e 7d5d 00 11 13 20 7d39 23 7e")
    # Bits above 31 are meaningless and ignored.
    assert hdlc.encode(frame, 1 << 32) == hdlc.encode(frame, 0)


@given(st.binary(max_size=300) | frame_bytes, accms)
@example(b"", hdlc.ACCM_ALL)
@example(b"\x00" * 40, 1)
@example(bytes(range(256)), 0xFFFFFFFE)
def test_encode_matches_reference(frame: bytes, accm: int) -> None:
    assert hdlc.encode(frame, accm) == ref_encode(frame, accm)


@given(st.lists(frame_bytes, max_size=8), accms)
def test_encode_frames_shares_flags(frames: list[bytes], accm: int) -> None:
    batch = hdlc.encode_frames(frames, accm)
    if not frames:
        assert batch == b""
        return
    assert batch == b"\x7e" + b"\x7e".join(ref_encode(f, accm)[1:-1] for f in frames) + b"\x7e"
    assert hdlc.Decoder().feed(batch) == frames


def test_encode_frames_accepts_any_iterable() -> None:
    frames = (f for f in [LCP_TERMREQ, LCP_CONFREQ])
    assert hdlc.encode_frames(frames) == LCP_TERMREQ_WIRE + LCP_CONFREQ_WIRE[1:]
    assert hdlc.encode_frames(iter([]), 0) == b""


# --- Decoder ---


def test_decode_hand_vectors() -> None:
    decoder = hdlc.Decoder()
    assert decoder.feed(LCP_CONFREQ_WIRE + LCP_TERMREQ_WIRE) == [LCP_CONFREQ, LCP_TERMREQ]
    assert decoder.feed(LCP_TERMREQ_WIRE_ACCM0) == [LCP_TERMREQ]
    assert counters(decoder) == {"bad_fcs": 0, "too_short": 0, "oversized": 0, "aborted": 0}


def test_decode_shared_separate_and_missing_flags() -> None:
    a, b, c = LCP_CONFREQ, LCP_TERMREQ, b"\xff\x03\x00\x21" + bytes(range(256))
    wa, wb, wc = hdlc.encode(a), hdlc.encode(b), hdlc.encode(c, 0)
    stream = (
        wa
        + wb  # separate flags
        + wc[1:]  # shared flag
        + b"\x7e\x7e\x7e"  # empty frames: silent
        + wa[1:]  # no opening flag after the flag run
    )
    decoder = hdlc.Decoder()
    assert decoder.feed(stream) == [a, b, c, a]
    assert counters(decoder) == {"bad_fcs": 0, "too_short": 0, "oversized": 0, "aborted": 0}
    # A first frame without an opening flag is still a frame.
    assert hdlc.Decoder().feed(wb[1:]) == [b]


def test_decode_bad_fcs_dropped_and_counted() -> None:
    wire = bytearray(LCP_CONFREQ_WIRE)
    wire[3] ^= 0x01  # inside an escape pair: 7D 23 -> 7D 22
    decoder = hdlc.Decoder()
    assert decoder.feed(bytes(wire) + LCP_TERMREQ_WIRE) == [LCP_TERMREQ]
    assert decoder.bad_fcs == 1
    wire = bytearray(LCP_TERMREQ_WIRE)
    wire[-2] ^= 0x80  # last FCS byte
    assert decoder.feed(bytes(wire)) == []
    assert decoder.bad_fcs == 2


def test_decode_abort_sequence() -> None:
    decoder = hdlc.Decoder()
    aborted = LCP_CONFREQ_WIRE[:-1] + b"\x7d\x7e"
    assert decoder.feed(aborted + LCP_TERMREQ_WIRE[1:]) == [LCP_TERMREQ]
    assert decoder.aborted == 1
    assert decoder.bad_fcs == 0
    # 7D 7D 7E: the second 7D is escaped data, so the flag is a real one.
    assert decoder.feed(b"\x7e\x41\x42\x43\x7d\x7d\x7e") == []
    assert (decoder.aborted, decoder.bad_fcs) == (1, 1)


def test_decode_escape_pair_split_across_feeds() -> None:
    wire = LCP_TERMREQ_WIRE
    cut = wire.index(b"\x7d\x5e") + 1
    decoder = hdlc.Decoder()
    assert decoder.feed(wire[:cut]) == []
    assert decoder.feed(wire[cut:]) == [LCP_TERMREQ]
    # Abort split the same way.
    assert decoder.feed(wire[:cut]) == []
    assert decoder.feed(b"\x7e") == []
    assert decoder.aborted == 1


def test_decode_double_escape_is_escaped_escape() -> None:
    # 7D 7D 41 is an escaped 7D (5D) then 41; pppd never sends it, but the
    # result must follow RFC 1662 4.2 rather than anything ad hoc.
    frame = b"\xff\x03\x5d\x41\x42"
    fcs = (ref_fcs16(frame) ^ 0xFFFF).to_bytes(2, "little")
    assert fcs == b"\xd4\x5d"
    assert hdlc.Decoder().feed(bytes.fromhex("7e ff 7d23 7d7d 41 42 d45d 7e")) == [frame]
    # A run of three: escaped 7D, then an escape for 61.
    assert hdlc.Decoder().feed(bytes.fromhex("7e ff 03 7d7d7d61 42 d45d 7e")) == [frame]


def test_decode_too_short() -> None:
    decoder = hdlc.Decoder()
    assert decoder.feed(b"\x7e\x01\x7e\x01\x02\x7e\x7d\x23\x02\x03\x7e") == []
    assert decoder.too_short == 3
    # The shortest deliverable frame: 2 bytes and the FCS.
    assert decoder.feed(hdlc.encode(b"\xc0\x21")) == [b"\xc0\x21"]
    assert hdlc.Decoder().feed(hdlc.encode(b"\x21")) == []


@pytest.mark.parametrize("chunk", [1, 7, 100, 10_000])
def test_decode_oversized_frame_bounded(chunk: int) -> None:
    decoder = hdlc.Decoder(max_length=100)
    big = hdlc.encode(b"A" * 99, 0)
    exact = hdlc.encode(b"A" * 98, 0)
    assert (len(big), len(exact)) == (101 + 2, 100 + 2)  # one byte too many; just fits
    data = big + exact + b"\x55" * 5000 + b"\x7e" + exact
    frames = []
    for i in range(0, len(data), chunk):
        frames += decoder.feed(data[i : i + chunk])
        assert decoder._partial_length <= 100
        assert sum(map(len, decoder._partial)) == decoder._partial_length
    assert frames == [b"A" * 98] * 2
    assert decoder.oversized == 2
    assert counters(decoder) == {"bad_fcs": 0, "too_short": 0, "oversized": 2, "aborted": 0}


def test_decode_accepts_bytes_like() -> None:
    wire = LCP_CONFREQ_WIRE
    assert hdlc.Decoder().feed(bytearray(wire)) == [LCP_CONFREQ]
    assert hdlc.Decoder().feed(memoryview(wire)) == [LCP_CONFREQ]
    assert all(type(f) is bytes for f in hdlc.Decoder().feed(bytearray(wire)))


@given(st.lists(frame_bytes, max_size=6), accms, st.lists(st.integers(0, 4000), max_size=8))
def test_round_trip_any_chunking(frames: list[bytes], accm: int, cuts: list[int]) -> None:
    data = b"".join(hdlc.encode(f, accm) for f in frames)
    decoder = hdlc.Decoder()
    assert feed_chunks(decoder, data, cuts) == frames
    assert counters(decoder) == {"bad_fcs": 0, "too_short": 0, "oversized": 0, "aborted": 0}


def test_round_trip_split_at_every_offset() -> None:
    frames = [LCP_TERMREQ, b"\x7e\x7d\x00\x7d\x7e", LCP_CONFREQ]
    data = hdlc.encode_frames(frames) + hdlc.encode(frames[1], 0)
    want = [*frames, frames[1]]
    for cut in range(len(data) + 1):
        for second in (cut, cut + 1, cut + 5):
            assert feed_chunks(hdlc.Decoder(), data, [cut, second]) == want, (cut, second)
    decoder = hdlc.Decoder()
    assert [f for i in range(len(data)) for f in decoder.feed(data[i : i + 1])] == want


@given(stream, st.lists(st.integers(0, 2000), max_size=6))
def test_decoder_matches_reference_on_noise(data: bytes, cuts: list[int]) -> None:
    decoder = hdlc.Decoder(max_length=150)
    frames = feed_chunks(decoder, data, cuts)
    assert all(type(f) is bytes for f in frames)
    assert (frames, counters(decoder)) == ref_decode(data, max_length=150)


@given(st.binary(max_size=500))
def test_decoder_never_raises_on_garbage(data: bytes) -> None:
    decoder = hdlc.Decoder()
    assert (decoder.feed(data), counters(decoder)) == ref_decode(data)


@pytest.mark.slow
# 20,000 examples against the per-byte reference: ~1.5 CPU-min (100,000 took 7).
@settings(
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(stream | st.binary(max_size=300), st.lists(st.integers(0, 2000), max_size=6))
def test_decoder_matches_reference_slow(data: bytes, cuts: list[int]) -> None:
    decoder = hdlc.Decoder(max_length=120)
    assert (feed_chunks(decoder, data, cuts), counters(decoder)) == ref_decode(data, 120)
