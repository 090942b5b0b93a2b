"""The sstp-api codec: sstpc 1.0.18's measured bytes, strict bounds, hypothesis round trips."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sstp_pppd.core.keymsg import (
    AF_INET,
    AF_INET6,
    ApiMessage,
    AttrType,
    KeyMessageError,
    MsgType,
    addr_reply,
    decode,
    parse_header,
    parse_sockaddr,
    sockaddr,
)
from sstp_pppd.errors import SstpError

#: The ADDR reply of the real sstpc 1.0.18 (server 127.0.0.1:47541), captured on loopback.
SSTPC_ADDR_REPLY = bytes.fromhex(
    "7074737324000300030009003132372e302e302e31000000040010000200b9b57f0000010000000000000000"
)
SEND = bytes(range(1, 17))
RECV = bytes(range(101, 117))


def test_sstpc_addr_reply_decodes() -> None:
    msg = decode(SSTPC_ADDR_REPLY)
    assert msg.type is MsgType.ACK
    assert msg.get(AttrType.GATEWAY) == b"127.0.0.1"
    raw = msg.get(AttrType.ADDR)
    assert raw is not None and parse_sockaddr(raw) == ("127.0.0.1", 47541)
    assert addr_reply("127.0.0.1", "127.0.0.1", 47541).encode() == SSTPC_ADDR_REPLY


def test_auth_layout() -> None:
    msg = ApiMessage(MsgType.AUTH, ((AttrType.MPPE_SEND, SEND), (AttrType.MPPE_RECV, RECV)))
    raw = msg.encode()
    assert raw[:8] == struct.pack("=IHH", 0x73737470, 40, 1)
    assert raw[8:12] == struct.pack("=HH", 1, 16) and raw[12:28] == SEND
    assert raw[28:32] == struct.pack("=HH", 2, 16) and raw[32:] == RECV
    assert decode(raw).keys == (SEND, RECV)


def test_bare_ack_and_addr() -> None:
    assert ApiMessage(MsgType.ACK).encode() == struct.pack("=IHH", 0x73737470, 0, 3)
    assert decode(struct.pack("=IHH", 0x73737470, 0, 2)) == ApiMessage(MsgType.ADDR)


def test_missing_keys_are_empty() -> None:
    assert decode(ApiMessage(MsgType.AUTH).encode()).keys == (b"", b"")


def test_last_padding_may_be_missing() -> None:
    body = struct.pack("=HH", 3, 5) + b"hello"
    raw = struct.pack("=IHH", 0x73737470, len(body), 3) + body
    assert decode(raw).get(AttrType.GATEWAY) == b"hello"


def test_sockaddr_matches_the_kernel_layout() -> None:
    assert AF_INET == socket.AF_INET and AF_INET6 == socket.AF_INET6
    raw = sockaddr("192.0.2.7", 443)
    assert len(raw) == 16
    assert raw[:2] == struct.pack("=H", socket.AF_INET)
    assert raw[2:8] == struct.pack("!H", 443) + socket.inet_aton("192.0.2.7")
    raw6 = sockaddr("2001:db8::1", 8443)
    assert len(raw6) == 28
    assert raw6[8:24] == socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    assert parse_sockaddr(raw6) == ("2001:db8::1", 8443)
    assert parse_sockaddr(sockaddr("fe80::1%3", 1)) == ("fe80::1%3", 1)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x70\x74\x73\x73\x00\x00",
        struct.pack("=IHH", 0x73737471, 0, 1),
        struct.pack("=IHH", 0x73737470, 0, 4),
        struct.pack("=IHH", 0x73737470, 0, 0),
        struct.pack("=IHH", 0x73737470, 4, 1),
        struct.pack("=IHH", 0x73737470, 0, 1) + b"x",
        struct.pack("=IHH", 0x73737470, 3, 1) + b"abc",
        struct.pack("=IHH", 0x73737470, 8, 1) + struct.pack("=HH", 1, 16) + b"abcd",
        struct.pack("=IHH", 0x73737470, 11, 1) + struct.pack("=HH", 1, 1) + b"abcd" + b"xyz",
    ],
)
def test_malformed(raw: bytes) -> None:
    with pytest.raises(KeyMessageError):
        decode(raw)


@pytest.mark.parametrize(
    "args", [("h.example", 1), ("10.0.0.1", 70000), ("fe80::1%99999999999", 1)]
)
def test_bad_sockaddr_input(args: tuple[str, int]) -> None:
    with pytest.raises(KeyMessageError):
        sockaddr(*args)


def test_oversized_payload_is_refused() -> None:
    with pytest.raises(KeyMessageError):
        ApiMessage(MsgType.ACK, ((3, bytes(40000)), (3, bytes(40000)))).encode()


def test_repr_never_shows_keys() -> None:
    msg = ApiMessage(MsgType.AUTH, ((AttrType.MPPE_SEND, b"\xab" * 16),))
    assert "ab" not in repr(msg).lower().replace("auth", "") and "16B" in repr(msg)


attributes = st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=6).map(
    tuple
)
messages = st.builds(ApiMessage, st.sampled_from(MsgType), attributes)


@given(messages)
def test_round_trip(msg: ApiMessage) -> None:
    raw = msg.encode()
    assert len(raw) % 4 == 0
    assert parse_header(raw[:8]) == (msg.type, len(raw) - 8)
    assert decode(raw) == msg


@settings(max_examples=300)
@given(st.binary(max_size=80), st.integers(0, 3), st.integers(0, 80))
def test_fuzz_raises_only_our_errors(tail: bytes, kind: int, length: int) -> None:
    for raw in (tail, struct.pack("=IHH", 0x73737470, length, kind) + tail):
        try:
            msg = decode(raw)
        except KeyMessageError as exc:
            assert isinstance(exc, SstpError)
            continue
        assert decode(msg.encode()) == msg


@given(st.ip_addresses(), st.integers(0, 0xFFFF))
def test_sockaddr_round_trip(ip: object, port: int) -> None:
    assert parse_sockaddr(sockaddr(str(ip), port)) == (str(ip), port)
