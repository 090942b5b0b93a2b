"""Packet tracing (--log-level 4-6) never shows authentication frames."""

from __future__ import annotations

import logging

import pytest

from sstp_pppd.core.messages import call_connect_request, encode_data
from sstp_pppd.trace import FRAMES, HEXDUMP, PacketTrace, describe_frame

PASSWORD = b"hunter2-in-clear"
# PAP Authenticate-Request: code 1, id 7, peer-id "alice", password in clear (RFC 1334).
PAP = b"\xff\x03\xc0\x23\x01\x07\x00\x1c\x05alice" + bytes([len(PASSWORD)]) + PASSWORD
IPV4 = b"\xff\x03\x00\x21" + b"E" + bytes(19)


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    logger = logging.getLogger("sstp_pppd.test_trace")
    logger.setLevel(HEXDUMP)
    caplog.set_level(HEXDUMP, logger="sstp_pppd.test_trace")
    return logger


def test_hex_dumps_leave_out_auth_frames(
    log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    trace = PacketTrace(log, "->")
    stream = call_connect_request().encode() + encode_data(PAP) + encode_data(IPV4)
    for i in range(0, len(stream), 7):  # any split
        trace.feed(stream[i : i + 7])
    text = caplog.text
    assert "CALL_CONNECT_REQUEST" in text
    assert "PAP, 31 bytes" in text
    assert "(authentication frame: not dumped)" in text
    assert PASSWORD.decode() not in text
    assert PASSWORD.hex(" ") not in text and PASSWORD.hex() not in text
    assert IPV4.hex(" ") in text  # other frames are dumped at level 6


def test_frames_only_from_level_5(log: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    log.setLevel(logging.DEBUG)
    trace = PacketTrace(log, "<-")
    trace.feed(encode_data(IPV4))
    assert "IPv4" not in caplog.text
    log.setLevel(FRAMES)
    trace = PacketTrace(log, "<-")
    trace.feed(encode_data(IPV4))
    assert "IPv4, 24 bytes" in caplog.text


def test_garbage_is_reported_not_raised(
    log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    trace = PacketTrace(log, "<-")
    trace.feed(b"\x20\x00\x00\x04")  # bad version
    trace.feed(encode_data(IPV4))  # a fresh decoder carries on
    assert "undecodable" in caplog.text
    assert "IPv4" in caplog.text


def test_describe_frame_handles_compressed_and_short_frames() -> None:
    assert describe_frame(b"\x21" + bytes(20)) == "IPv4, 21 bytes"  # PFC: one-byte protocol
    assert describe_frame(b"\xc0\x21\x01") == "LCP, 3 bytes"  # ACFC: no FF 03
    assert describe_frame(b"\xff\x03") == "short frame, 2 bytes"
    assert describe_frame(b"") == "short frame, 0 bytes"
