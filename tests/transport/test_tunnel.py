"""The transport against a hostile server of our own: real subprocess, real TLS, loopback only.

Each test runs ``sstp-pppd --nolaunchpppd`` on a raw pty (the test plays pppd on the master)
against :mod:`fakeserver` on 127.0.0.1, scripts the server step by step, and checks the
exit code, the one error line at the end of stderr (no traceback, no password) and the
bytes on both wires. Keepalive (two 60 s hello periods) is left to the end-to-end tests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import signal
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from sstp_pppd.core import messages
from sstp_pppd.core.messages import ControlPacket, MessageType, StatusCode
from sstp_pppd.errors import ExitCode

from ..core.test_pppwatch import (
    AUTH_CHALLENGE,
    AUTH_MSCHAPV2,
    AUTH_PAP,
    AUTH_RESPONSE,
    CHAP,
    HLAK,
    LCP,
    MAGIC,
    MRU,
    MSCHAPV2_VALUE,
    PAP,
    PASSWORD,
    USER,
    lcp_ack,
    ppp,
    value,
)
from .fakeserver import (
    AlertingTlsServer,
    Client,
    FakeServer,
    ServerCert,
    ServerSession,
    check_call_connected,
    make_cert,
)

#: Any test taking longer than this is a hang, not slowness.
TEST_TIMEOUT = 45.0
#: Passwords given to the client in these tests: none may ever reach its stderr.
SECRETS = (PASSWORD, "secret123")
HTTP_404 = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"

LCP_REQUEST = ppp(LCP, 1, 1, MRU + MAGIC)
CHAP_CHALLENGE = ppp(CHAP, 1, 7, value(AUTH_CHALLENGE, b"sstpd"))
CHAP_RESPONSE = ppp(CHAP, 2, 7, value(MSCHAPV2_VALUE, USER))
CHAP_SUCCESS = ppp(CHAP, 3, 7, AUTH_RESPONSE + b" M=Access granted")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ServerCert]:
    d = tmp_path_factory.mktemp("certs")
    return {
        "good": make_cert(d, "good", ips=["127.0.0.1"]),
        "noip": make_cert(d, "noip"),
        "other": make_cert(d, "other", ips=["127.0.0.1"]),
    }


@pytest.fixture
def cert(certs: dict[str, ServerCert]) -> ServerCert:
    """The server's usual certificate: SAN localhost and 127.0.0.1."""
    return certs["good"]


@pytest.fixture(scope="module")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    f = tmp_path_factory.mktemp("secret") / "password"
    f.write_text(PASSWORD + "\n")
    f.chmod(0o600)
    return f


def asynctest(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop, bounded by TEST_TIMEOUT."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), TEST_TIMEOUT))

    return wrapper


@contextlib.asynccontextmanager
async def tunnel(cert: ServerCert, *args: str) -> AsyncIterator[tuple[FakeServer, Client]]:
    """A fake server and a client started against it (``args`` before the server)."""
    async with FakeServer(cert) as server:
        async with started(*args, f"127.0.0.1:{server.port}") as client:
            yield server, client


@contextlib.asynccontextmanager
async def started(*args: str) -> AsyncIterator[Client]:
    """A client with these arguments, killed at the end if it is still running."""
    client = await Client.start(*args)
    try:
        yield client
    finally:
        await client.aclose()


async def outcome(client: Client) -> tuple[int, str]:
    """The exit code and the last line of stderr, after the checks every run must pass."""
    code = await client.wait()
    err = client.stderr
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    for secret in SECRETS:
        assert secret not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "the client printed nothing"
    last = lines[-1]
    assert last.startswith("sstp-pppd: "), err
    # One clear line: the final message is said once, not repeated by every layer.
    assert lines.count(last) == 1, err
    return code, last


async def fails(client: Client, code: ExitCode, *needles: str) -> str:
    """Assert the client exits with ``code`` and its last line mentions every needle."""
    got, last = await outcome(client)
    assert got == code, client.stderr
    for needle in needles:
        assert needle in last, client.stderr
    return last


async def proceeds(server: FakeServer, client: Client) -> None:
    """TLS was accepted: the HTTP request arrives. A 404 then ends the run (exit HTTP)."""
    s = await server.accept()
    request = await s.read_request()
    assert request.startswith(b"SSTP_DUPLEX_POST /sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/ ")
    s.send(HTTP_404)
    await fails(client, ExitCode.HTTP, "404")


def secure(cert: ServerCert, *args: str) -> tuple[str, ...]:
    return ("--ca-cert", str(cert.cert_file), *args)


async def establish(
    server: FakeServer, client: Client, cert: ServerCert, *, pap: bool = False
) -> ServerSession:
    """Drive a session to CALL_CONNECTED; check the relay and the crypto binding on the way.

    MS-CHAPv2 with the RFC 2759/3079 vector (``pap=False``) must bind with its HLAK and
    SHA-256 (the server offers both hashes). PAP, which has no keys, is run against a
    SHA-1-only server: it must bind with SHA-1 and 32 zero bytes.
    """
    s = await server.accept()
    await s.accept_call()
    # pppd speaks first, before the ACK: the frame must be held, not lost.
    client.write_frames(LCP_REQUEST)
    s.send_ack(bitmask=1 if pap else 3)
    assert await s.expect_data() == LCP_REQUEST
    auth = AUTH_PAP if pap else AUTH_MSCHAPV2
    s.send_frames(ppp(LCP, 1, 1, MRU + auth + MAGIC), ppp(LCP, 2, 1, MRU + MAGIC))
    assert await client.read_frame() == ppp(LCP, 1, 1, MRU + auth + MAGIC)
    assert await client.read_frame() == ppp(LCP, 2, 1, MRU + MAGIC)
    client.write_frames(lcp_ack(MRU, auth, MAGIC))
    assert await s.expect_data() == lcp_ack(MRU, auth, MAGIC)
    if pap:
        request = ppp(PAP, 1, 1, b"\x04User\x0a" + PASSWORD.encode())
        client.write_frames(request)
        assert await s.expect_data() == request
        success = ppp(PAP, 2, 1, b"\x02ok")
    else:
        s.send_frames(CHAP_CHALLENGE)
        assert await client.read_frame() == CHAP_CHALLENGE
        client.write_frames(CHAP_RESPONSE)
        assert await s.expect_data() == CHAP_RESPONSE
        success = CHAP_SUCCESS
    s.send_frames(success)
    # CALL_CONNECTED goes out right after the Success, before anything else.
    check_call_connected(
        await s.read_raw(),
        hlak=bytes(32) if pap else HLAK,
        cert_der=cert.der,
        hash_protocol=1 if pap else 2,
    )
    assert await client.read_frame() == success
    return s


@contextlib.asynccontextmanager
async def connected(
    cert: ServerCert, password_file: Path, *extra: str, pap: bool = False
) -> AsyncIterator[tuple[ServerSession, Client]]:
    """A session driven to CALL_CONNECTED by :func:`establish`, password in a file."""
    args = secure(cert, "--password-file", str(password_file), *extra)
    async with tunnel(cert, *args) as (server, client):
        yield await establish(server, client, cert, pap=pap), client


async def disconnect_acked(s: ServerSession, client: Client) -> None:
    """The client says goodbye: CALL_DISCONNECT, the server ACKs, the client exits 0."""
    await s.expect(MessageType.CALL_DISCONNECT)
    await ack_disconnect(s, client)


async def disconnect_before_ppp(s: ServerSession, client: Client) -> None:
    """pppd hung up after the ACK, before CALL_CONNECTED: a goodbye to the server, and
    exit 8, since the tunnel never was up."""
    await s.expect(MessageType.CALL_DISCONNECT)
    s.send_packet(messages.call_disconnect_ack())
    code, last = await outcome(client)
    assert code == ExitCode.PPPD, client.stderr
    assert last == "sstp-pppd: pppd hung up its line before the tunnel was up"


async def ack_disconnect(s: ServerSession, client: Client) -> None:
    s.send_packet(messages.call_disconnect_ack())
    code, last = await outcome(client)
    assert code == ExitCode.OK, client.stderr
    assert last == "sstp-pppd: tunnel closed"


# ----- TLS ----------------------------------------------------------------------------------


@asynctest
async def test_untrusted_self_signed(cert: ServerCert) -> None:
    async with tunnel(cert) as (_, client):
        await fails(client, ExitCode.TLS, "self-signed", "--ca-cert")


@asynctest
async def test_trusted_with_ca_cert(cert: ServerCert) -> None:
    async with tunnel(cert, *secure(cert)) as (server, client):
        await proceeds(server, client)
    assert "certificate verified" in client.stderr


@asynctest
async def test_ca_cert_of_another_server(certs: dict[str, ServerCert]) -> None:
    async with tunnel(certs["good"], *secure(certs["other"])) as (_, client):
        await fails(client, ExitCode.TLS, "self-signed", f"not in {certs['other'].cert_file}")


@pytest.mark.parametrize(
    ("cert_name", "args", "named"),
    [
        ("noip", (), "'127.0.0.1'"),
        ("good", ("--host", "wrong.name"), "'wrong.name'"),
    ],
)
@asynctest
async def test_hostname_mismatch(
    certs: dict[str, ServerCert], cert_name: str, args: tuple[str, ...], named: str
) -> None:
    cert = certs[cert_name]
    async with tunnel(cert, *secure(cert, *args)) as (_, client):
        await fails(client, ExitCode.TLS, "not valid for", named, "--host")


@asynctest
async def test_host_option_names_the_certificate(certs: dict[str, ServerCert]) -> None:
    cert = certs["noip"]
    async with tunnel(cert, *secure(cert, "--host", "localhost")) as (server, client):
        s = await server.accept()
        request = await s.read_request()
        assert b"\r\nHost: localhost\r\n" in request
        s.send(HTTP_404)
        await fails(client, ExitCode.HTTP)


@asynctest
async def test_insecure_proceeds_with_a_warning(certs: dict[str, ServerCert]) -> None:
    async with tunnel(certs["noip"], "--insecure") as (server, client):
        await proceeds(server, client)
    assert "NOT verified" in client.stderr


@pytest.mark.parametrize(("kind", "trust"), [("cert", "insecure"), ("spki", "ca-cert")])
@asynctest
async def test_right_pin_proceeds(cert: ServerCert, kind: str, trust: str) -> None:
    pin = (
        cert.sha256.hex(":")
        if kind == "cert"
        else "sha256//" + base64.b64encode(cert.spki_sha256).decode()
    )
    args = ("--insecure",) if trust == "insecure" else secure(cert)
    async with tunnel(cert, *args, "--pin-sha256", pin) as (server, client):
        await proceeds(server, client)
    assert "certificate pinned" in client.stderr
    # The pin authenticates the server: no warning that it is unverified.
    assert "NOT verified" not in client.stderr


@pytest.mark.parametrize("trust", ["insecure", "ca-cert"])
@asynctest
async def test_wrong_pin_fails(certs: dict[str, ServerCert], trust: str) -> None:
    cert = certs["good"]
    args = ("--insecure",) if trust == "insecure" else secure(cert)
    wrong = certs["other"].sha256.hex()
    async with tunnel(cert, *args, "--pin-sha256", wrong) as (_, client):
        await fails(client, ExitCode.TLS, "--pin-sha256", cert.sha256.hex(":"))


@asynctest
async def test_pin_alone_on_a_self_signed_server_says_what_is_missing(
    cert: ServerCert,
) -> None:
    # The pin is checked after the chain, so a pin alone cannot get past an untrusted
    # certificate: the hint must not send the user back to the option just given.
    async with tunnel(cert, "--pin-sha256", cert.sha256.hex()) as (_, client):
        await fails(client, ExitCode.TLS, "self-signed", "--insecure")


@asynctest
async def test_tls_min_version_above_the_server(cert: ServerCert) -> None:
    with AlertingTlsServer(cert, max_version=ssl.TLSVersion.TLSv1_2) as server:
        args = secure(cert, "--tls-min-version", "1.3", f"127.0.0.1:{server.port}")
        async with started(*args) as client:
            await fails(client, ExitCode.TLS, "protocol version", "below 1.3")
    assert server.errors, "the server saw no failed handshake"


@asynctest
async def test_server_hangs_up_during_tls_handshake(cert: ServerCert) -> None:
    async def hang_up(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        async with started(*secure(cert), f"127.0.0.1:{port}") as client:
            await fails(client, ExitCode.TLS, "TLS handshake failed", "closed the connection")


# ----- TCP ----------------------------------------------------------------------------------


@asynctest
async def test_nothing_listening() -> None:
    # A bound socket that does not listen: the port stays ours and refuses connections.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with started(f"127.0.0.1:{port}") as client:
            await fails(client, ExitCode.NETWORK, f"127.0.0.1 port {port}", "Connection refused")


@asynctest
async def test_name_does_not_resolve() -> None:
    async with started("does-not-exist.invalid") as client:
        await fails(client, ExitCode.NETWORK, "cannot resolve", "does-not-exist.invalid")


# ----- HTTP ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "needles"),
    [
        (HTTP_404, ("404", "does not serve SSTP")),
        (None, ("closed",)),
        (b"\x00\x01\x02 not http at all\r\n\r\n", ("HTTP",)),
    ],
    ids=["404", "close", "garbage"],
)
@asynctest
async def test_http_refused(
    cert: ServerCert, reply: bytes | None, needles: tuple[str, ...]
) -> None:
    async with tunnel(cert, *secure(cert)) as (server, client):
        s = await server.accept()
        await s.read_request()
        if reply is None:
            await s.close()
        else:
            s.send(reply)
        await fails(client, ExitCode.HTTP, *needles)


# ----- SSTP ---------------------------------------------------------------------------------


@asynctest
async def test_mschapv2_binding_and_clean_end_on_pppd_eof(
    cert: ServerCert, password_file: Path
) -> None:
    async with connected(cert, password_file) as (s, client):
        # pppd goes away: the client says goodbye and ends cleanly.
        client.close_line()
        await disconnect_acked(s, client)


@asynctest
async def test_trace_at_level_6_decodes_only_sstp(cert: ServerCert, password_file: Path) -> None:
    """The HTTP request that opens the stream is no SSTP packet: the trace starts after it."""
    async with connected(cert, password_file, "--log-level", "6") as (s, client):
        client.close_line()
        await disconnect_acked(s, client)
    assert "undecodable" not in client.stderr, client.stderr
    sent = [line for line in client.stderr.splitlines() if line.startswith("sstp-pppd: -> ")]
    assert "CALL_CONNECT_REQUEST" in sent[0], client.stderr


@asynctest
async def test_pap_binds_with_a_zero_hlak_and_sha1(cert: ServerCert, password_file: Path) -> None:
    async with connected(cert, password_file, pap=True) as (s, client):
        client.close_line()
        await disconnect_acked(s, client)


@asynctest
async def test_relay_both_ways(cert: ServerCert, password_file: Path) -> None:
    """Frames full of flag, escape and control bytes, large and small, batched, both ways."""
    every_byte = bytes(range(256))
    to_server = [
        ppp(0x0021, 0x45, 0, every_byte * 5)[:1500],
        b"\xff\x03\x00\x21" + b"\x7e\x7d" * 700,
        b"\x00\x21\x7e",
        *(b"\xff\x03\x00\x21" + bytes([i]) * (i + 1) for i in range(40)),
    ]
    to_pppd = [
        b"\xff\x03\x00\x21" + every_byte[::-1] * 15,
        b"\xff\x03\x00\x57" + b"\x7d\x7e\x11\x13" * 300,
        *(b"\xff\x03\x00\x21" + bytes([255 - i]) * (2 * i + 1) for i in range(40)),
    ]
    async with connected(cert, password_file) as (s, client):
        client.write_frames(*to_server)
        s.send_frames(*to_pppd)
        assert [await s.expect_data() for _ in to_server] == to_server
        assert [await client.read_frame() for _ in to_pppd] == to_pppd
        assert client.decoder.bad_fcs == 0
        client.close_line()
        await disconnect_acked(s, client)
    assert "the server passes IP traffic" in client.stderr


@asynctest
async def test_echo_request_is_answered(cert: ServerCert, password_file: Path) -> None:
    async with connected(cert, password_file) as (s, client):
        for _ in range(3):
            s.send_packet(messages.echo_request())
            await s.expect(MessageType.ECHO_RESPONSE)
        client.close_line()
        await disconnect_acked(s, client)


@asynctest
async def test_silent_server_is_given_up_after_two_hello_periods(
    cert: ServerCert, password_file: Path
) -> None:
    """[MS-SSTP] Hello timer: an echo after one silent period, the end after the next,
    without a CALL_ABORT (the server is gone)."""
    async with connected(cert, password_file, "--hello-interval", "1") as (s, client):
        t0 = time.monotonic()
        await s.expect(MessageType.ECHO_REQUEST)
        echoed = time.monotonic() - t0
        await fails(client, ExitCode.KEEPALIVE, "stopped answering")
        ended = time.monotonic() - t0
        rest = await s.read_until_eof()
        assert not aborts(rest), rest
    assert 0.5 < echoed < ended, (echoed, ended)


@asynctest
async def test_unreachable_server_is_dropped_without_waiting_for_a_tls_close(
    cert: ServerCert, password_file: Path
) -> None:
    """The link is cut (the server's side reads nothing, so no close_notify ever comes
    back): given up after two hello periods, the client drops TLS at once rather than
    wait 2 s for the close exchange (e2e: tests/e2e/test_faults.py)."""
    async with connected(cert, password_file, "--hello-interval", "1") as (s, client):
        s.writer.transport.pause_reading()
        t0 = time.monotonic()
        await fails(client, ExitCode.KEEPALIVE, "stopped answering")
        ended = time.monotonic() - t0
    assert ended < 2 + 1.3, ended  # waiting for the close would make it 4 s or more


@asynctest
async def test_answered_echo_keeps_the_session(cert: ServerCert, password_file: Path) -> None:
    async with connected(cert, password_file, "--hello-interval", "1") as (s, client):
        for _ in range(3):  # three periods, each echo answered: still up
            await s.expect(MessageType.ECHO_REQUEST)
            s.send_packet(messages.echo_response())
        assert client.proc.returncode is None, client.stderr
        client.close_line()
        await disconnect_acked(s, client)


@pytest.mark.parametrize("when", ["request-sent", "connected"])
@asynctest
async def test_server_call_abort(cert: ServerCert, password_file: Path, when: str) -> None:
    args = secure(cert, "--password-file", str(password_file))
    async with tunnel(cert, *args) as (server, client):
        if when == "connected":
            s = await establish(server, client, cert)
            status = StatusCode.INVALID_FRAME_RECEIVED
            needles = ("INVALID_FRAME_RECEIVED", "crypto binding")
        else:
            s = await server.accept()
            await s.accept_call()
            status = StatusCode.VALUE_NOT_SUPPORTED
            needles = ("aborted", "VALUE_NOT_SUPPORTED")
        s.send_packet(messages.call_abort(status))
        # [MS-SSTP] 3.2.5.3.4: the peer's CALL_ABORT is answered with one.
        await s.expect(MessageType.CALL_ABORT)
        await fails(client, ExitCode.SSTP, *needles)


@asynctest
async def test_server_call_disconnect(cert: ServerCert, password_file: Path) -> None:
    async with connected(cert, password_file) as (s, client):
        s.send_packet(messages.call_disconnect(StatusCode.NO_ERROR))
        await s.expect(MessageType.CALL_DISCONNECT_ACK)
        await fails(client, ExitCode.CONNECTION_LOST, "disconnected")


@asynctest
async def test_server_drops_tcp_mid_session(cert: ServerCert, password_file: Path) -> None:
    async with connected(cert, password_file) as (s, client):
        s.abort_tcp()
        await fails(client, ExitCode.CONNECTION_LOST, "closed the connection")


@asynctest
async def test_nak_four_times(cert: ServerCert) -> None:
    async with tunnel(cert, *secure(cert)) as (server, client):
        s = await server.accept()
        await s.accept_call()
        for _ in range(3):
            s.send_nak()
            await s.expect(MessageType.CALL_CONNECT_REQUEST)
        s.send_nak()
        abort = await s.expect(MessageType.CALL_ABORT)
        assert status_of(abort) == StatusCode.RETRY_COUNT_EXCEEDED
        await fails(client, ExitCode.SSTP, "RETRY_COUNT_EXCEEDED")


@contextlib.asynccontextmanager
async def acked(cert: ServerCert) -> AsyncIterator[tuple[ServerSession, Client]]:
    """A session past the ACK whose relay carried pppd's first LCP frame."""
    async with tunnel(cert, *secure(cert)) as (server, client):
        s = await server.accept()
        await s.accept_call()
        s.send_ack()
        client.write_frames(LCP_REQUEST)
        assert await s.expect_data() == LCP_REQUEST
        yield s, client


def status_of(packet: ControlPacket) -> int:
    (status,) = packet.attributes
    assert isinstance(status, messages.StatusInfo)
    return status.status


async def after_the_ack(cert: ServerCert, garbage: bytes) -> tuple[str, list[messages.Packet]]:
    """Send ``garbage`` once PPP runs: the client's last line and the packets it still sent."""
    async with acked(cert) as (s, client):
        s.send(garbage)
        last = await fails(client, ExitCode.SSTP, "SSTP")
        return last, await s.read_until_eof()


def aborts(packets: list[messages.Packet]) -> list[messages.Packet]:
    return [
        p
        for p in packets
        if isinstance(p, ControlPacket) and p.message_type == MessageType.CALL_ABORT
    ]


#: Version 0x20: cannot be framed, so dropped without a word ([MS-SSTP] 3.1.5.1).
BAD_VERSION = b"\x20\x01\x00\x08\x00\x05\x00\x00"


@asynctest
async def test_unframeable_bytes_drop_the_connection_silently(cert: ServerCert) -> None:
    _, rest = await after_the_ack(cert, BAD_VERSION)
    assert not aborts(rest), rest


@asynctest
async def test_unframeable_bytes_are_not_reported_as_an_abort(cert: ServerCert) -> None:
    last, rest = await after_the_ack(cert, BAD_VERSION)
    assert not aborts(rest)
    # No CALL_ABORT went out, so the one line must not say the call was aborted.
    assert "abort" not in last


@asynctest
async def test_unknown_message_type_is_aborted(cert: ServerCert) -> None:
    # Well framed, but message type 0x77: an invalid message, answered with CALL_ABORT.
    last, rest = await after_the_ack(cert, b"\x10\x01\x00\x08\x00\x77\x00\x00")
    (abort,) = aborts(rest)
    assert isinstance(abort, ControlPacket)
    assert status_of(abort) == StatusCode.UNACCEPTED_FRAME_RECEIVED
    assert "UNACCEPTED_FRAME_RECEIVED" in last


@asynctest
async def test_oversized_frame_from_pppd_costs_only_itself(cert: ServerCert) -> None:
    # 4501 bytes: over the 4091 an SSTP data packet holds, and not a multiple of any
    # buffer size, so the pty read that ends it also carries the frames after it.
    big = b"\xff\x03\x00\x21" + bytes(range(0x20, 0x7D)) * 46 + b"x" * 219
    small = [ppp(LCP, 9, i, b"\x00\x00\x00\x00") for i in range(200)]
    async with acked(cert) as (s, client):
        client.write_frames(big, *small)
        arrived: list[bytes] = []
        with contextlib.suppress(TimeoutError):
            # Shorter than WAIT: when this times out, frames are lost, not late.
            while len(arrived) < len(small):
                arrived.append(await asyncio.wait_for(s.expect_data(), 3.0))
        assert arrived == small, f"{len(small) - len(arrived)} frames lost"
        client.close_line()
        await disconnect_before_ppp(s, client)


@asynctest
async def test_silent_server_and_two_signals(cert: ServerCert) -> None:
    """No ACK ever comes: SIGTERM says goodbye, a second one ends the wait for the ACK."""
    async with tunnel(cert, *secure(cert)) as (server, client):
        s = await server.accept()
        await s.accept_call()
        client.signal(signal.SIGTERM)
        await s.expect(MessageType.CALL_DISCONNECT)
        client.signal(signal.SIGTERM)
        await fails(client, ExitCode.INTERRUPTED, "interrupted before the tunnel was up")


@asynctest
async def test_sigterm_disconnects_and_waits_for_the_ack(
    cert: ServerCert, password_file: Path
) -> None:
    async with connected(cert, password_file) as (s, client):
        client.signal(signal.SIGTERM)
        await s.expect(MessageType.CALL_DISCONNECT)
        asked = time.monotonic()
        # The client waits for the ACK rather than leaving at once...
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(client.proc.wait()), 0.5)
        await ack_disconnect(s, client)
        # ...and the ACK, not D1 running out (5 s), is what ends the wait.
        assert time.monotonic() - asked < 4.5, "the ACK did not end the wait"
    assert "SIGTERM" in client.stderr


# ----- secrets ------------------------------------------------------------------------------


@asynctest
async def test_password_scrubbed_from_cmdline(cert: ServerCert) -> None:
    async with tunnel(cert, *secure(cert, "--password", "secret123")) as (server, client):
        s = await server.accept()
        await s.read_request()
        cmdline = Path(f"/proc/{client.pid}/cmdline").read_bytes()
        assert b"--password" in cmdline
        assert b"secret123" not in cmdline
        s.send(HTTP_404)
        await fails(client, ExitCode.HTTP)


@asynctest
async def test_sigterm_during_a_hanging_tcp_connect_exits_at_once() -> None:
    """A SYN that is never answered must not hold Ctrl-C for --connect-timeout."""
    # A listener that never accepts, its queue filled: further SYNs are dropped.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(("127.0.0.1", port))
        fillers.append(s)
    try:
        async with started("--connect-timeout", "60", f"127.0.0.1:{port}") as client:
            await asyncio.sleep(1.5)  # the client is in its TCP connect by now
            assert client.proc.returncode is None, client.stderr
            client.signal(signal.SIGTERM)
            t0 = time.monotonic()
            await fails(client, ExitCode.INTERRUPTED, "interrupted")
            assert time.monotonic() - t0 < 5
    finally:
        for s in fillers:
            s.close()
        listener.close()
