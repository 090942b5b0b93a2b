"""Write the seed corpus (fuzz/corpus/TARGET/*): small valid inputs built with the project's
own encoders, so the fuzzers start from the interesting shapes. Run from the repository:
``python -m fuzz.make_seeds``."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

from sstp_pppd.core import hdlc, messages

CORPUS = Path(__file__).with_name("corpus")


def chap(code: int, ident: int, body: bytes) -> bytes:
    return b"\xc2\x23" + bytes([code, ident]) + (4 + len(body)).to_bytes(2, "big") + body


def lcp_confreq_mschapv2() -> bytes:
    opt = b"\x03\x05\xc2\x23\x81"
    return b"\xc0\x21\x01\x01" + (4 + len(opt)).to_bytes(2, "big") + opt


def framed(frames: list[tuple[bool, bytes]]) -> bytes:
    out = b""
    for from_server, frame in frames:
        padded = frame + b"\0" * (len(frame) % 2)
        out += bytes([(0x80 if from_server else 0) | (len(padded) // 2)]) + padded
    return out


def api_message(msg_type: int, attributes: list[tuple[int, bytes]]) -> bytes:
    """sstp-api (sstp-client's sstp-api.h): header and 4-byte padded attributes, native order."""
    body = b"".join(struct.pack("=HH", t, len(v)) + v + bytes(-len(v) % 4) for t, v in attributes)
    return struct.pack("=IHH", 0x73737470, len(body), msg_type) + body


def seeds() -> dict[str, list[bytes]]:
    control = [
        messages.call_connect_request().encode(),
        messages.call_abort().encode(),
        messages.call_disconnect().encode(),
        messages.echo_request().encode(),
        messages.echo_response().encode(),
    ]
    data = messages.encode_data(b"\xff\x03\xc0\x21\x01\x01\x00\x04")
    challenge = chap(1, 7, b"\x10" + bytes(range(16)) + b"sstpd")
    response = chap(2, 7, b"\x31" + bytes(16) + bytes(8) + bytes(range(24)) + b"\x00" + b"alice")
    success = chap(3, 7, b"S=" + b"0123456789ABCDEF" * 2 + b"01234567 M=welcome")
    http_ok = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n"
        b"Server: Microsoft-HTTPAPI/2.0\r\nDate: Thu, 09 Nov 2023 12:00:00 GMT\r\n\r\n"
    )
    return {
        "sstp_stream": [b"\x03" + b"".join(control) + data, b"\x00" + data * 3],
        "http_response": [
            b"\x05" + http_ok + control[0],
            b"\x11HTTP/1.1 100 Continue\r\n\r\n" + http_ok,
            b"\x01HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\n\r\n",
        ],
        "proxy_response": [
            b"\x00HTTP/1.1 200 Connection established\r\n\r\n",
            b"\x01HTTP/1.1 407 Proxy Authentication Required\r\n"
            b'Proxy-Authenticate: Basic realm="x"\r\n\r\n',
        ],
        "hdlc_decoder": [
            b"\x07" + hdlc.encode(b"\xff\x03\xc0\x21\x01\x01\x00\x04") * 3,
            b"\x00" + hdlc.encode(bytes(range(256))),
        ],
        "ppp_watcher": [
            framed(
                [
                    (True, lcp_confreq_mschapv2()),
                    (True, challenge),
                    (False, response),
                    (True, success),
                    (False, b"\x80\x21\x01\x01\x00\x04"),
                ]
            ),
        ],
        "chap_secrets": [
            b'# comment\n"alice" * "pw one" *\n* srv \\x21\\101 10.0.0.1\nalice srv @/x *\n',
            b"al\\\nice srv 'q\"'#c\n--\nalice   srv     ",
        ],
        "key_messages": [
            api_message(1, [(1, bytes(range(32))), (2, bytes(range(32, 64)))]),
            api_message(2, []),
            api_message(
                3, [(3, b"127.0.0.1"), (4, struct.pack("=H2s4s8x", 2, b"\x01\xbb", b"\x7f\0\0\1"))]
            ),
        ],
        "pppd_options": [
            b'pty "sstp-pppd --nolaunchpppd vpn"\nremotename VPN\nname alice\nfile /etc/ppp/x\n',
            b"call p\nuser 'bob'\npassword \\x41\n",
        ],
    }


def main() -> None:
    for target, items in seeds().items():
        d = CORPUS / target
        d.mkdir(parents=True, exist_ok=True)
        for item in items:
            (d / hashlib.sha256(item).hexdigest()[:16]).write_bytes(item)


if __name__ == "__main__":
    main()
