"""Tests of the SSTP packet codec and stream decoder (sstp_pppd.core.messages)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sstp_pppd.core.errors import FramingError, ProtocolError, SstpError
from sstp_pppd.core.messages import (
    MAX_DATA_PAYLOAD,
    AttributeId,
    ControlPacket,
    CryptoBinding,
    CryptoBindingRequest,
    DataPacket,
    EncapsulatedProtocolId,
    HashProtocol,
    MessageType,
    Packet,
    StatusCode,
    StatusInfo,
    StreamDecoder,
    UnknownAttribute,
    call_abort,
    call_connect_request,
    call_disconnect,
    call_disconnect_ack,
    decode,
    echo_request,
    echo_response,
    encode_data,
)

from .. import vectors

H = bytes.fromhex

# [MS-SSTP] 4.7 / shared/protocol.md section 4, vector A (tests/vectors.py).
NONCE = vectors.NONCE
CERT_HASH = vectors.CERT_HASH
CMAC = vectors.CMAC

CONNECT_REQUEST = H("10 01 00 0E 00 01 00 01 00 01 00 06 00 01")
CONNECT_ACK = H("10 01 00 30 00 02 00 01 00 04 00 28 00 00 00 03") + NONCE
CALL_CONNECTED = H("10 01 00 70 00 04 00 01 00 03 00 68 00 00 00 02") + NONCE + CERT_HASH + CMAC
LCP_FRAME = H("FF 03 C0 21 01 01 00 04")
DATA = H("10 00 00 0C") + LCP_FRAME
# sstp-server (sorz): STATUS_INFO value is only the u32 status; DISCONNECT uses ID 0.
SORZ_ABORT = H("10 01 00 10 00 05 00 01 00 02 00 08 00 00 00 07")
SORZ_DISCONNECT = H("10 01 00 10 00 06 00 01 00 00 00 08 00 00 00 00")
# SoftEther: no attributes at all.
SE_ABORT = H("10 01 00 08 00 05 00 00")
SE_DISCONNECT = H("10 01 00 08 00 06 00 00")
BAD_LENGTH = StatusCode.INVALID_ATTRIB_VALUE_LENGTH
BAD_VALUE = StatusCode.VALUE_NOT_SUPPORTED
NAK = H("10 01 00 18 00 03 00 01 00 02 00 10 00 00 00 01 00 00 00 04 00 01 00 02")


# -- enums and constructors --------------------------------------------------------------


def test_enum_values_follow_the_spec() -> None:
    assert [m.value for m in MessageType] == list(range(1, 10))
    assert MessageType.ECHO_RESPONSE == 9
    assert [a.value for a in AttributeId] == [0, 1, 2, 3, 4]
    assert [s.value for s in StatusCode] == list(range(12))
    assert StatusCode.STATUS_INFO_NOT_SUPPORTED_IN_MSG == 0xB
    assert HashProtocol.CERT_HASH_PROTOCOL_SHA1 == 1
    assert HashProtocol.CERT_HASH_PROTOCOL_SHA256 == 2


def test_call_connect_request_matches_spec_bytes() -> None:
    assert call_connect_request().encode() == CONNECT_REQUEST
    assert decode(CONNECT_REQUEST) == call_connect_request()


@pytest.mark.parametrize(
    ("packet", "wire"),
    [
        (call_abort(), "10 01 00 14 00 05 00 01 00 02 00 0C 00 00 00 00 00 00 00 00"),
        (call_abort(7, 3), "10 01 00 14 00 05 00 01 00 02 00 0C 00 00 00 03 00 00 00 07"),
        (call_disconnect(), "10 01 00 14 00 06 00 01 00 02 00 0C 00 00 00 00 00 00 00 00"),
        (call_disconnect(8), "10 01 00 14 00 06 00 01 00 02 00 0C 00 00 00 00 00 00 00 08"),
        (call_disconnect_ack(), "10 01 00 08 00 07 00 00"),
        (echo_request(), "10 01 00 08 00 08 00 00"),
        (echo_response(), "10 01 00 08 00 09 00 00"),
    ],
)
def test_convenience_constructors_wire_bytes(packet: ControlPacket, wire: str) -> None:
    assert packet.encode() == H(wire)
    assert decode(H(wire)) == packet


# -- decoding real packets -------------------------------------------------------------------


def test_call_connect_ack_with_crypto_binding_request() -> None:
    assert len(CONNECT_ACK) == 48
    packet = decode(CONNECT_ACK)
    assert packet == ControlPacket(
        message_type=MessageType.CALL_CONNECT_ACK,
        attributes=(CryptoBindingRequest(hash_bitmask=3, nonce=NONCE),),
    )
    assert packet.encode() == CONNECT_ACK


def test_call_connected_layout() -> None:
    packet = ControlPacket(
        message_type=MessageType.CALL_CONNECTED,
        attributes=(
            CryptoBinding(
                hash_protocol=HashProtocol.CERT_HASH_PROTOCOL_SHA256,
                nonce=NONCE,
                cert_hash=CERT_HASH,
                compound_mac=CMAC,
            ),
        ),
    )
    wire = packet.encode()
    assert len(wire) == 112
    assert wire == CALL_CONNECTED
    assert wire[:12] == H("10 01 00 70 00 04 00 01 00 03 00 68")
    assert wire[15] == 2 and wire[16:48] == NONCE and wire[48:80] == CERT_HASH
    assert wire[80:] == CMAC
    assert decode(wire) == packet


def test_data_packet() -> None:
    assert decode(DATA) == DataPacket(payload=LCP_FRAME)
    assert encode_data(LCP_FRAME) == DATA
    assert DataPacket(payload=LCP_FRAME).encode() == DATA
    assert decode(H("10 00 00 04")) == DataPacket(payload=b"")


def test_decode_accepts_bytearray_and_memoryview() -> None:
    assert decode(bytearray(CONNECT_ACK)) == decode(CONNECT_ACK)
    assert decode(memoryview(DATA)) == DataPacket(payload=LCP_FRAME)


def test_nak_with_status_info_and_attrib_value() -> None:
    assert decode(NAK) == ControlPacket(
        message_type=MessageType.CALL_CONNECT_NAK,
        attributes=(
            StatusInfo(
                attrib_id=AttributeId.ENCAPSULATED_PROTOCOL_ID,
                status=StatusCode.VALUE_NOT_SUPPORTED,
                attrib_value=H("00 01 00 02"),
            ),
        ),
    )
    assert decode(NAK).encode() == NAK


def test_sstp_server_short_status_info() -> None:
    assert decode(SORZ_ABORT) == call_abort(StatusCode.INVALID_FRAME_RECEIVED)


def test_sstp_server_disconnect_with_attribute_id_zero() -> None:
    assert decode(SORZ_DISCONNECT) == ControlPacket(
        message_type=MessageType.CALL_DISCONNECT,
        attributes=(UnknownAttribute(attribute_id=0, value=bytes(4)),),
    )


def test_sstp_server_hash_bitmask_zero() -> None:
    ack = CONNECT_ACK[:15] + b"\x00" + NONCE
    assert decode(ack) == ControlPacket(
        message_type=MessageType.CALL_CONNECT_ACK,
        attributes=(CryptoBindingRequest(hash_bitmask=0, nonce=NONCE),),
    )


@pytest.mark.parametrize(
    ("wire", "message_type"),
    [(SE_ABORT, MessageType.CALL_ABORT), (SE_DISCONNECT, MessageType.CALL_DISCONNECT)],
)
def test_softether_attribute_less_abort_and_disconnect(
    wire: bytes, message_type: MessageType
) -> None:
    assert decode(wire) == ControlPacket(message_type=message_type, attributes=())


def test_num_attr_is_ignored_in_favour_of_the_length() -> None:
    claims_one_has_none = H("10 01 00 08 00 05 00 01")
    assert decode(claims_one_has_none) == ControlPacket(message_type=MessageType.CALL_ABORT)
    claims_none_has_one = CONNECT_REQUEST[:7] + b"\x00" + CONNECT_REQUEST[8:]
    assert decode(claims_none_has_one) == call_connect_request()
    claims_five = CONNECT_ACK[:7] + b"\x05" + CONNECT_ACK[8:]
    assert decode(claims_five) == decode(CONNECT_ACK)


def test_reserved_bits_and_bytes_are_ignored() -> None:
    wire = bytearray(CONNECT_ACK)
    wire[1] = 0xFF  # reserved bits around the C bit
    wire[2] |= 0xF0  # reserved bits above the 12-bit packet length
    wire[8] = 0xAA  # attribute Reserved
    wire[10] |= 0x70  # reserved bits above the 12-bit attribute length
    wire[12:15] = b"\x01\x02\x03"  # CRYPTO_BINDING_REQ reserved bytes
    assert decode(bytes(wire)) == decode(CONNECT_ACK)
    data = bytearray(DATA)
    data[1] = 0xFE  # C bit clear: still a data packet
    assert decode(bytes(data)) == DataPacket(payload=LCP_FRAME)


def test_attributes_keep_wire_order() -> None:
    attributes = (
        StatusInfo(attrib_id=1, status=4),
        UnknownAttribute(attribute_id=0x42, value=b"xyz"),
        EncapsulatedProtocolId(protocol_id=1),
        StatusInfo(attrib_id=0, status=0),
    )
    packet = ControlPacket(message_type=MessageType.CALL_CONNECT_NAK, attributes=attributes)
    decoded = decode(packet.encode())
    assert isinstance(decoded, ControlPacket)
    assert decoded.attributes == attributes


# -- malformed input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wire",
    [
        "",
        "10",
        "10 01 00",
        "20 01 00 08 00 08 00 00",  # version 2.0
        "00 00 00 04",
        "10 00 00 03",  # length under 4
        "10 00 00 00",
        "10 00 00 0D ff 03 c0 21 01 01 00 04",  # length past the data
        "10 00 00 0B ff 03 c0 21 01 01 00 04",  # trailing bytes
        "10 01 0F FF 00 08 00 00",
    ],
)
def test_framing_errors(wire: str) -> None:
    with pytest.raises(FramingError):
        decode(H(wire))


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        # control packets under 8 bytes: framed, but not a control message
        ("10 01 00 04", StatusCode.INVALID_FRAME_RECEIVED),
        ("10 01 00 07 00 08 00", StatusCode.INVALID_FRAME_RECEIVED),
        # 1-3 stray bytes cannot hold an attribute header
        ("10 01 00 09 00 08 00 00 00", StatusCode.INVALID_FRAME_RECEIVED),
        ("10 01 00 0B 00 08 00 01 00 02 00", StatusCode.INVALID_FRAME_RECEIVED),
        # attribute length under 4 or past the end of the packet
        ("10 01 00 0C 00 05 00 01 00 02 00 00", StatusCode.INVALID_ATTRIB_VALUE_LENGTH),
        ("10 01 00 0C 00 05 00 01 00 02 00 03", StatusCode.INVALID_ATTRIB_VALUE_LENGTH),
        ("10 01 00 0C 00 05 00 01 00 02 00 05", StatusCode.INVALID_ATTRIB_VALUE_LENGTH),
        ("10 01 00 10 00 05 00 01 00 02 00 0C 00 00 00 07", StatusCode.INVALID_ATTRIB_VALUE_LENGTH),
        # fixed-size attributes with another size
        ("10 01 00 0D 00 01 00 01 00 01 00 05 01", StatusCode.INVALID_ATTRIB_VALUE_LENGTH),
        ("10 01 00 0F 00 01 00 01 00 01 00 07 00 01 00", StatusCode.INVALID_ATTRIB_VALUE_LENGTH),
        ("10 01 00 0C 00 05 00 01 00 02 00 04", StatusCode.INVALID_ATTRIB_VALUE_LENGTH),
        # a STATUS_INFO value of 7 bytes
        ("10 01 00 13 00 05 00 01 00 02 00 0B 00 00 00 00 00 00 00", BAD_LENGTH),
    ],
)
def test_protocol_errors(wire: str, status: int) -> None:
    with pytest.raises(ProtocolError) as exc:
        decode(H(wire))
    assert not isinstance(exc.value, FramingError)
    assert exc.value.status == status


@pytest.mark.parametrize(
    ("message_type", "attribute_id", "size"),
    [
        *[
            (MessageType.CALL_CONNECT_ACK, AttributeId.CRYPTO_BINDING_REQ, n)
            for n in (0, 35, 37, 100)
        ],
        *[(MessageType.CALL_CONNECTED, AttributeId.CRYPTO_BINDING, n) for n in (0, 36, 99, 101)],
        *[
            (MessageType.CALL_CONNECT_REQUEST, AttributeId.ENCAPSULATED_PROTOCOL_ID, n)
            for n in (0, 4)
        ],
    ],
)
def test_fixed_size_attributes_reject_other_sizes(
    message_type: MessageType, attribute_id: AttributeId, size: int
) -> None:
    wire = H("10 01") + (12 + size).to_bytes(2, "big") + message_type.to_bytes(2, "big")
    wire += H("00 01 00") + bytes((attribute_id,)) + (4 + size).to_bytes(2, "big") + bytes(size)
    with pytest.raises(ProtocolError) as exc:
        decode(wire)
    assert exc.value.status == StatusCode.INVALID_ATTRIB_VALUE_LENGTH


@pytest.mark.parametrize("raw_type", [0x0000, 0x000A, 0x0101, 0xFFFF])
def test_unknown_message_type(raw_type: int) -> None:
    wire = H("10 01 00 08") + raw_type.to_bytes(2, "big") + H("00 00")
    with pytest.raises(ProtocolError) as exc:
        decode(wire)
    assert exc.value.status == StatusCode.UNACCEPTED_FRAME_RECEIVED
    assert f"{raw_type:#06x}" in str(exc.value)


# -- encoding limits ---------------------------------------------------------------------------


def test_encode_data_limits() -> None:
    largest = encode_data(bytes(MAX_DATA_PAYLOAD))
    assert largest[:4] == H("10 00 0F FF") and len(largest) == 4095
    assert decode(largest) == DataPacket(payload=bytes(MAX_DATA_PAYLOAD))
    with pytest.raises(ProtocolError):
        encode_data(bytes(MAX_DATA_PAYLOAD + 1))
    with pytest.raises(ProtocolError):
        DataPacket(payload=bytes(5000)).encode()


def test_control_packet_too_long_to_encode() -> None:
    attributes = tuple(UnknownAttribute(attribute_id=9, value=bytes(1000)) for _ in range(5))
    packet = ControlPacket(message_type=MessageType.CALL_CONNECT_NAK, attributes=attributes)
    with pytest.raises(ProtocolError):
        packet.encode()


@pytest.mark.parametrize(
    ("build", "status"),
    [
        (lambda: CryptoBindingRequest(hash_bitmask=3, nonce=bytes(31)), BAD_LENGTH),
        (lambda: CryptoBindingRequest(hash_bitmask=256, nonce=NONCE), BAD_VALUE),
        (
            lambda: CryptoBinding(
                hash_protocol=2, nonce=NONCE, cert_hash=bytes(20), compound_mac=CMAC
            ),
            BAD_LENGTH,
        ),
        (
            lambda: CryptoBinding(
                hash_protocol=2, nonce=NONCE, cert_hash=CERT_HASH, compound_mac=b""
            ),
            BAD_LENGTH,
        ),
        (
            lambda: CryptoBinding(
                hash_protocol=-1, nonce=NONCE, cert_hash=CERT_HASH, compound_mac=CMAC
            ),
            BAD_VALUE,
        ),
        (lambda: EncapsulatedProtocolId(protocol_id=0x10000), BAD_VALUE),
        (lambda: StatusInfo(attrib_id=0, status=2**32), BAD_VALUE),
        (lambda: StatusInfo(attrib_id=300, status=0), BAD_VALUE),
        (lambda: StatusInfo(attrib_id=0, status=0, attrib_value=bytes(4076)), BAD_LENGTH),
        (lambda: UnknownAttribute(attribute_id=2, value=b""), BAD_VALUE),
        (lambda: UnknownAttribute(attribute_id=256, value=b""), BAD_VALUE),
        (lambda: UnknownAttribute(attribute_id=5, value=bytes(4084)), BAD_LENGTH),
        (lambda: ControlPacket(message_type=10), StatusCode.UNACCEPTED_FRAME_RECEIVED),  # type: ignore[arg-type]
    ],
)
def test_constructors_reject_what_the_wire_cannot_carry(
    build: Callable[[], object], status: int
) -> None:
    with pytest.raises(ProtocolError) as exc:
        build()
    assert exc.value.status == status


def test_control_packet_normalises_its_fields() -> None:
    packet = ControlPacket(message_type=8, attributes=[])  # type: ignore[arg-type]
    assert packet.message_type is MessageType.ECHO_REQUEST
    assert packet == echo_request() and hash(packet) == hash(echo_request())


# -- stream decoder ---------------------------------------------------------------------------

STREAM_PACKETS = [
    CONNECT_ACK,
    DATA,
    encode_data(bytes(range(256)) * 3),
    H("10 01 00 08 00 08 00 00"),
    SORZ_DISCONNECT,
    encode_data(b""),
    SE_ABORT,
]
STREAM = b"".join(STREAM_PACKETS)
EXPECTED = [decode(p) for p in STREAM_PACKETS]


def feed_all(decoder: StreamDecoder, chunks: list[bytes]) -> list[Packet]:
    return [packet for chunk in chunks for packet in decoder.feed(chunk)]


def test_stream_whole() -> None:
    decoder = StreamDecoder()
    assert decoder.feed(STREAM) == EXPECTED
    assert decoder.buffered == 0


def test_stream_split_at_every_offset() -> None:
    for offset in range(len(STREAM) + 1):
        decoder = StreamDecoder()
        assert feed_all(decoder, [STREAM[:offset], STREAM[offset:]]) == EXPECTED, offset
        assert decoder.buffered == 0


def test_stream_split_at_every_pair_of_offsets_around_the_control_packets() -> None:
    head = STREAM[:70]
    expected = [decode(CONNECT_ACK), decode(DATA)]
    for first in range(len(head) + 1):
        for second in range(first, len(head) + 1):
            chunks = [head[:first], head[first:second], head[second:]]
            decoder = StreamDecoder()
            assert feed_all(decoder, chunks) == expected
            assert decoder.buffered == 70 - 48 - 12


def test_stream_byte_by_byte() -> None:
    decoder = StreamDecoder()
    chunks = [STREAM[i : i + 1] for i in range(len(STREAM))]
    assert feed_all(decoder, chunks) == EXPECTED


def test_stream_waits_for_incomplete_packets() -> None:
    decoder = StreamDecoder()
    assert decoder.feed(CONNECT_ACK[:3]) == []
    assert decoder.buffered == 3
    assert decoder.feed(CONNECT_ACK[3:47]) == []
    assert decoder.feed(bytearray(CONNECT_ACK[47:])) == [decode(CONNECT_ACK)]
    assert decoder.buffered == 0


def test_stream_bad_version_fails_on_the_first_byte_and_stays_failed() -> None:
    decoder = StreamDecoder()
    with pytest.raises(FramingError):
        decoder.feed(b"H")  # e.g. an HTTP error page instead of SSTP
    with pytest.raises(FramingError):
        decoder.feed(DATA)


def test_stream_length_under_4_is_a_framing_error() -> None:
    decoder = StreamDecoder()
    with pytest.raises(FramingError):
        decoder.feed(H("10 00 00 02"))


def test_stream_reports_a_framing_error_after_the_good_packets() -> None:
    decoder = StreamDecoder()
    assert decoder.feed(DATA + echo_request().encode() + b"\x20\x00") == [
        DataPacket(payload=LCP_FRAME),
        echo_request(),
    ]
    with pytest.raises(FramingError):
        decoder.feed(b"")
    with pytest.raises(FramingError):
        decoder.feed(DATA)


def test_stream_goes_on_after_a_protocol_error() -> None:
    bad = H("10 01 00 08 00 63 00 00")  # unknown message type 0x63
    decoder = StreamDecoder()
    assert decoder.feed(DATA + bad + SE_ABORT) == [DataPacket(payload=LCP_FRAME)]
    with pytest.raises(ProtocolError) as exc:
        decoder.feed(b"")
    assert exc.value.status == StatusCode.UNACCEPTED_FRAME_RECEIVED
    assert decoder.feed(b"") == [ControlPacket(message_type=MessageType.CALL_ABORT)]
    assert decoder.feed(b"") == []
    assert decoder.buffered == 0


# -- hypothesis: round trips -------------------------------------------------------------------

u8 = st.integers(0, 0xFF)
blobs32 = st.binary(min_size=32, max_size=32)
attributes = st.one_of(
    st.builds(EncapsulatedProtocolId, protocol_id=st.integers(0, 0xFFFF)),
    st.builds(
        StatusInfo,
        attrib_id=u8,
        status=st.integers(0, 2**32 - 1),
        attrib_value=st.binary(max_size=80),
    ),
    st.builds(
        CryptoBinding, hash_protocol=u8, nonce=blobs32, cert_hash=blobs32, compound_mac=blobs32
    ),
    st.builds(CryptoBindingRequest, hash_bitmask=u8, nonce=blobs32),
    st.builds(
        UnknownAttribute,
        attribute_id=st.sampled_from([0, *range(5, 256)]),
        value=st.binary(max_size=80),
    ),
)
control_packets = st.builds(
    ControlPacket,
    message_type=st.sampled_from(MessageType),
    attributes=st.lists(attributes, max_size=6).map(tuple),
)
data_packets = st.builds(DataPacket, payload=st.binary(max_size=MAX_DATA_PAYLOAD))
packets = st.one_of(control_packets, data_packets)
small_packets = st.one_of(control_packets, st.builds(DataPacket, payload=st.binary(max_size=300)))


@given(packets)
def test_round_trip(packet: Packet) -> None:
    wire = packet.encode()
    assert decode(wire) == packet
    assert StreamDecoder().feed(wire) == [packet]


@settings(max_examples=50)
@given(st.lists(small_packets, max_size=8), st.data())
def test_stream_random_splits(items: list[Packet], data: st.DataObject) -> None:
    stream = b"".join(p.encode() for p in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    decoder = StreamDecoder()
    assert feed_all(decoder, chunks) == items
    assert decoder.buffered == 0


# -- hypothesis: fuzzing ---------------------------------------------------------------------

SAMPLES = [
    CONNECT_REQUEST,
    CONNECT_ACK,
    CALL_CONNECTED,
    DATA,
    SORZ_ABORT,
    SORZ_DISCONNECT,
    SE_ABORT,
    NAK,
    call_abort(5, 1).encode(),
]


def _mutate(args: tuple[bytes, list[tuple[int, int]], int, bool]) -> bytes:
    sample, edits, resize, fix_length = args
    wire = bytearray(sample)
    for index, value in edits:
        wire[index % len(wire)] = value
    if resize < 0:
        del wire[resize:]
    else:
        wire += bytes(resize)
    if fix_length and len(wire) >= 4:
        # Keeps the packet framed so the mutation reaches the attribute parser.
        wire[2:4] = (len(wire) & 0xFFF).to_bytes(2, "big")
    return bytes(wire)


def _synthesise(args: tuple[int, int, list[tuple[int, int, int]]]) -> bytes:
    flags, raw_type, chunks = args
    body = b"".join(
        bytes((0, aid, 0, (size + 4 + delta) & 0xFF)) + bytes(size) for aid, size, delta in chunks
    )
    length = 8 + len(body)
    return (
        bytes((0x10, flags))
        + length.to_bytes(2, "big")
        + raw_type.to_bytes(2, "big")
        + b"\x00\x01"
        + body
    )


_SIZES = [0, 1, 2, 3, 4, 5, 8, 9, 35, 36, 37, 99, 100, 101]
_DELTAS = [0, 0, 0, -5, -1, 1, 3]
mutated = st.tuples(
    st.sampled_from(SAMPLES),
    st.lists(st.tuples(st.integers(0, 127), u8), max_size=3),
    st.integers(-12, 6),
    st.booleans(),
).map(_mutate)
# Control packets built from plausible attribute headers with sizes around the legal ones.
synthesised = st.tuples(
    st.sampled_from([0, 1, 0x81]),
    st.integers(0, 10),
    st.lists(
        st.tuples(
            st.integers(0, 6),
            st.sampled_from(_SIZES),
            st.sampled_from(_DELTAS),
        ),
        max_size=3,
    ),
).map(_synthesise)
fuzz_inputs = st.one_of(st.binary(max_size=64), mutated, synthesised)


def check_decode(data: bytes) -> None:
    try:
        packet = decode(data)
    except FramingError:
        pass  # the stream decoder may just wait for more, or find trailing bytes
    except ProtocolError as exc:
        assert exc.status in set(StatusCode)
        # A well-framed bad packet: the stream decoder rejects it the same way.
        with pytest.raises(ProtocolError) as stream_exc:
            StreamDecoder().feed(data)
        assert not isinstance(stream_exc.value, FramingError)
        assert stream_exc.value.status == exc.status
    else:
        assert decode(packet.encode()) == packet
        assert StreamDecoder().feed(data) == [packet]


def check_stream(chunks: list[bytes], expected: list[Packet] | None = None) -> None:
    decoder = StreamDecoder()
    received: list[Packet] = []
    failed = False
    for chunk in [*chunks, b""]:
        try:
            received += decoder.feed(chunk)
        except SstpError:
            failed = True
    if expected is not None:
        assert not failed and received == expected and decoder.buffered == 0


@settings(max_examples=200)
@given(fuzz_inputs)
def test_decode_fuzz(data: bytes) -> None:
    check_decode(data)


@settings(max_examples=100)
@given(st.lists(fuzz_inputs, max_size=4))
def test_stream_fuzz(chunks: list[bytes]) -> None:
    check_stream(chunks)


def _random_case(rng: random.Random) -> bytes:
    """One fuzz input from a seeded PRNG: the same three shapes as ``fuzz_inputs``."""
    shape = rng.randrange(3)
    if shape == 0:
        raw = bytearray(rng.randbytes(rng.randrange(65)))
        if raw and rng.random() < 0.7:
            raw[0] = 0x10  # get past the version check most of the time
        return _mutate((bytes(raw), [], 0, rng.random() < 0.5)) if raw else b""
    if shape == 1:
        edits = [(rng.randrange(128), rng.randrange(256)) for _ in range(rng.randrange(4))]
        sample = rng.choice(SAMPLES)
        return _mutate((sample, edits, rng.randrange(-12, 7), rng.random() < 0.7))
    chunks = [
        (rng.randrange(7), rng.choice(_SIZES), rng.choice(_DELTAS)) for _ in range(rng.randrange(4))
    ]
    return _synthesise((rng.choice([0, 1, 0x81]), rng.randrange(11), chunks))


def _random_chunks(rng: random.Random) -> tuple[list[bytes], list[Packet] | None]:
    """A stream of valid and fuzzed packets cut at random places, and what it decodes to
    when it has only valid packets."""
    fuzz = rng.random() < 0.7
    parts = [
        _random_case(rng) if fuzz and rng.random() < 0.5 else rng.choice(SAMPLES)
        for _ in range(rng.randrange(1, 5))
    ]
    stream = b"".join(parts)
    cuts = sorted(rng.randrange(len(stream) + 1) for _ in range(rng.randrange(5)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    return chunks, None if fuzz else [decode(part) for part in parts]


def check_seed(seed: int) -> None:
    rng = random.Random(seed)
    check_decode(_random_case(rng))
    check_stream(*_random_chunks(rng))


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_seeded_fuzz_quick(seed: int) -> None:
    check_seed(seed)


# Hypothesis's own engine costs ~0.8-1.3 ms of CPU per example on this machine even for
# an empty test, against ~0.05 ms for decoding one fuzz input and ~0.08 ms for one
# fuzzed stream; structured strategies cost 2-3 ms. So the long run draws one integer
# seed per example, builds the inputs with a PRNG (a failure reports the seed, which
# reproduces it), and puts decode and the stream decoder through the same 100,000
# examples: each gets 100,000 inputs for the price of one engine run (~2 minutes).
@pytest.mark.slow
@settings(
    max_examples=100_000,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_decode_and_stream_fuzz_slow(seed: int) -> None:
    check_seed(seed)
