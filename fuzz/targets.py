"""Fuzz targets: every parser fed by the network or by pppd, one function per target.

Each target takes arbitrary bytes and may raise only the project's own error types
(:class:`sstp_pppd.errors.SstpPppdError` and its subclasses); anything else (an
IndexError, a ValueError, a RecursionError...) is a crash. Stream parsers are fed the
input in pieces whose sizes come from the input itself, so splits are fuzzed too.

Used by ``fuzz/run.py`` (atheris, coverage-guided, millions of inputs) and by
``tests/test_fuzz.py`` (a few thousand inputs per target in CI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sstp_pppd.core import handshake, hdlc, messages, pppwatch
from sstp_pppd.errors import SstpError, SstpPppdError
from sstp_pppd.pppdopts import parse_pppd_options, words
from sstp_pppd.secrets import scan_authfile

Target = Callable[[bytes], None]

#: What a target may raise: the project's own errors, nothing else (the core's SstpError
#: family and the program's SstpPppdError family; in some layouts one holds the other).
ALLOWED: tuple[type[BaseException], ...] = (SstpPppdError, SstpError)


def _pieces(data: bytes) -> Iterator[bytes]:
    """The input after its first byte, cut into pieces sized by the first byte's bits."""
    if not data:
        return
    sizes = data[0] or 1
    rest = data[1:]
    k = 0
    i = 0
    while i < len(rest):
        size = 1 + ((sizes >> (k % 8)) & 1) * 7 + ((sizes >> ((k + 3) % 8)) & 1) * 200
        yield rest[i : i + size]
        i += size
        k += 1


def sstp_stream(data: bytes) -> None:
    dec = messages.StreamDecoder()
    for piece in _pieces(data):
        for packet in dec.feed(piece):
            if isinstance(packet, messages.ControlPacket):
                packet.encode()
    try:
        messages.decode(data)
    except ALLOWED:
        pass


def http_response(data: bytes) -> None:
    parser = handshake.ResponseParser()
    resp = None
    for piece in _pieces(data):
        resp = parser.feed(piece)
        if resp is not None:
            break
    if resp is None:
        parser.feed_eof()
        return
    handshake.check_sstp_response(resp)


def proxy_response(data: bytes) -> None:
    parser = handshake.ResponseParser()
    for piece in _pieces(data):
        resp = parser.feed(piece)
        if resp is not None:
            handshake.check_proxy_response(resp, credentials_sent=bool(data[0] & 1))
            return
    parser.feed_eof()


def hdlc_decoder(data: bytes) -> None:
    dec = hdlc.Decoder(max_length=64 + (data[0] if data else 0) * 8)
    for piece in _pieces(data):
        for frame in dec.feed(piece):
            hdlc.encode(frame)


def _frames(data: bytes) -> Iterator[tuple[bool, bytes]]:
    """Frames for the PPP watcher: a length byte (high bit: from the server), the frame."""
    i = 0
    while i < len(data):
        head = data[i]
        n = head & 0x7F
        yield bool(head & 0x80), data[i + 1 : i + 1 + n * 2]
        i += 1 + n * 2


def ppp_watcher(data: bytes) -> None:
    watcher = pppwatch.AuthWatcher(lambda user, server: "password" if len(user) % 2 else None)
    for from_server, frame in _frames(data):
        if watcher.done:
            break
        if from_server:
            watcher.from_server(frame)
        else:
            watcher.from_pppd(frame)


def chap_secrets(data: bytes) -> None:
    cut = data.find(b"\n--\n")
    client, server = (b"alice", b"srv") if cut < 0 else (data[:cut][:8], data[:cut][8:16])
    text = data if cut < 0 else data[cut + 4 :]
    list(words(text))
    scan_authfile(text, client, server, read=lambda path: text[:64])
    scan_authfile(text, b"*", b"", read=None)


def pppd_options(data: bytes) -> None:
    files = {"/etc/ppp/options": data[: len(data) // 2], "/etc/ppp/peers/p": data}

    def read(path: str) -> bytes:
        if path not in files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return files[path]

    parse_pppd_options([b"pppd", b"call", b"p", *data[:40].split(b" ")], read=read, home="/h")


TARGETS: dict[str, Target] = {
    "sstp_stream": sstp_stream,
    "http_response": http_response,
    "proxy_response": proxy_response,
    "hdlc_decoder": hdlc_decoder,
    "ppp_watcher": ppp_watcher,
    "chap_secrets": chap_secrets,
    "pppd_options": pppd_options,
}

try:  # the sstp-api key messages, once they exist (keychannel's sstp_pppd/core/keymsg.py)
    from sstp_pppd.core import keymsg as _keymsg  # type: ignore[attr-defined,unused-ignore]
except ImportError:
    _keymsg = None


def key_messages(data: bytes) -> None:
    """A plugin's message on the key socket: header, attributes, keys, sockaddrs."""
    if _keymsg is None:
        return
    try:
        _keymsg.parse_header(data[:8])
    except ALLOWED:
        pass
    msg = _keymsg.decode(data)
    msg.encode()
    repr(msg)
    for t, value in msg.attributes:
        if t == 4:
            try:
                _keymsg.parse_sockaddr(value)
            except ALLOWED:
                pass
    send, recv = msg.keys  # a property
    for key in (send, recv):
        if len(key) >= 4 and key.hex() in repr(msg):
            raise AssertionError("a key's bytes in the repr")


if _keymsg is not None:
    TARGETS["key_messages"] = key_messages


def run_one(name: str, data: bytes) -> None:
    """Run target ``name`` on ``data``; the project's own errors are fine."""
    try:
        TARGETS[name](data)
    except ALLOWED:
        pass
