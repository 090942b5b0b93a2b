"""links.TlsLink on a real TLS connection over loopback: order, backpressure, the close.

The link runs ``SSL_write`` and ``SSL_read`` on the socket itself, so what asyncio's SSL
transport did for us is its own work now: a write the socket cannot take is retried with
the same bytes and what follows it waits behind, the other side's reading is paused
above the high-water mark and resumed once drained, data left in OpenSSL's buffer after
a full batch is read without a readable event, and close() sends close_notify.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine
from functools import wraps
from pathlib import Path
from typing import Any

import pytest

from sstp_pppd.transport import links
from sstp_pppd.transport.links import TlsLink

from .fakeserver import ServerCert, make_cert


def run(case: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Each case in a loop of its own (the suite has no asyncio plugin)."""

    @wraps(case)
    def test(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(case(*args, **kwargs), 30))

    return test


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> ServerCert:
    return make_cert(tmp_path_factory.mktemp("tlslink"), "link")


class Owner:
    def __init__(self) -> None:
        self.data = bytearray()
        self.lost: list[Exception | None] = []

    def from_server(self, data: bytes) -> None:
        self.data += data

    def server_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)


class Peer:
    """The pty side, as backpressure sees it."""

    def __init__(self) -> None:
        self.paused = 0
        self.resumed = 0

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        self.resumed += 1


async def connected(cert: ServerCert) -> tuple[TlsLink, Owner, ssl.SSLSocket]:
    """A TlsLink after its handshake, and the server's (blocking) end of it."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(Path(cert.cert_file), Path(cert.key_file))
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[ssl.SSLSocket] = []

    def accept() -> None:
        raw, _ = listener.accept()
        # Small buffers: the client's writes fill them soon.
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        accepted.append(server_ctx.wrap_socket(raw, server_side=True))

    thread = threading.Thread(target=accept)
    thread.start()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, listener.getsockname())
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cafile=cert.cert_file)
    tls = client_ctx.wrap_socket(sock, server_hostname="localhost", do_handshake_on_connect=False)
    owner = Owner()
    link = TlsLink(owner)
    await asyncio.wait_for(link.handshake(tls), 10)
    await asyncio.to_thread(thread.join)
    listener.close()
    return link, owner, accepted[0]


def read_all(server: ssl.SSLSocket, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        chunk = server.recv(65536)
        if not chunk:
            break
        got += chunk
    return bytes(got)


@run
async def test_writes_arrive_in_order_past_a_full_socket_with_backpressure(
    cert: ServerCert,
) -> None:
    link, _owner, server = await connected(cert)
    peer = Peer()
    link.peer = peer
    frames = [bytes([i % 251]) * (100 + i % 1400) for i in range(3000)]
    total = sum(map(len, frames))
    for frame in frames:  # the server does not read yet: the socket fills up
        link.write(frame)
    assert peer.paused == 1, "the peer was not paused above the high-water mark"
    got = await asyncio.to_thread(read_all, server, total)
    assert got == b"".join(frames)
    for _ in range(100):
        if peer.resumed:
            break
        await asyncio.sleep(0.01)
    assert peer.resumed == 1, "the peer was not resumed once the writes drained"
    link.abort()
    server.close()


@run
async def test_a_batch_cut_short_still_reads_what_openssl_holds(
    cert: ServerCert, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of 1000 bytes, records of 16 KiB: the rest of a record waits in OpenSSL,
    # where no readable event announces it.
    monkeypatch.setattr(links, "TLS_READ_SIZE", 1000)
    link, owner, server = await connected(cert)
    payload = bytes(range(256)) * 64
    await asyncio.to_thread(server.sendall, payload)
    for _ in range(200):
        if len(owner.data) >= len(payload):
            break
        await asyncio.sleep(0.01)
    assert bytes(owner.data) == payload
    link.abort()
    server.close()


@run
async def test_reading_resumed_finds_what_openssl_held(cert: ServerCert) -> None:
    link, owner, server = await connected(cert)
    link.pause_reading()
    await asyncio.to_thread(server.sendall, b"a" * 5000)
    await asyncio.sleep(0.1)
    assert not owner.data
    link.resume_reading()
    for _ in range(200):
        if len(owner.data) >= 5000:
            break
        await asyncio.sleep(0.01)
    assert bytes(owner.data) == b"a" * 5000
    link.abort()
    server.close()


@run
async def test_close_sends_close_notify_after_what_waits(cert: ServerCert) -> None:
    link, owner, server = await connected(cert)
    link.write(b"last words")
    link.close()
    link.write(b"too late")  # after close(): dropped, not sent
    got = await asyncio.to_thread(read_all, server, 1 << 20)
    assert got == b"last words"  # then the server's recv saw close_notify: b""
    server.unwrap()  # its close_notify back, which completes the client's close
    await link.closed_wait(5)
    assert owner.lost == [None]
    server.close()


@run
async def test_the_server_hanging_up_is_reported_once(cert: ServerCert) -> None:
    link, owner, server = await connected(cert)
    server.close()  # no close_notify: a TCP FIN only
    for _ in range(200):
        if owner.lost:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert len(owner.lost) == 1
    link.abort()  # after the end: nothing more
    assert len(owner.lost) == 1


@run
async def test_an_unanswerable_fionread_means_read_on() -> None:
    """The drained-socket shortcut must not raise out of the loop's callback: unknown is
    "there may be more", and the next read reports what is wrong with the socket."""
    link = TlsLink(Owner())
    a, b = socket.socketpair()
    link._fd = a.fileno()
    b.send(b"x")
    assert link._unread()
    a.close()
    b.close()
    assert link._unread()  # EBADF: read on


@run
async def test_the_servers_close_notify_is_answered(cert: ServerCert) -> None:
    _link, owner, server = await connected(cert)
    # unwrap() sends the server's close_notify and blocks until ours comes back: it
    # raises (EOF in violation of protocol) if the link just closes its socket.
    closed = asyncio.create_task(asyncio.to_thread(server.unwrap))
    plain = await asyncio.wait_for(closed, 10)
    for _ in range(200):
        if owner.lost:
            break
        await asyncio.sleep(0.01)
    assert owner.lost == [None]
    plain.close()
