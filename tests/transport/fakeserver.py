"""A hostile, scriptable SSTP server on 127.0.0.1 and a fake pppd, for the transport tests.

The test drives both ends itself, step by step, in one coroutine: :class:`FakeServer`
hands over each accepted TLS connection as a :class:`ServerSession` that sends whatever
the test asks (any HTTP reply, ACK/NAK/ABORT/DISCONNECT, garbage, nothing at all) and
reads the client's SSTP packets raw, so a CALL_CONNECTED can be checked byte for byte.
:class:`Client` runs ``sstp-pppd --nolaunchpppd`` as a real subprocess whose stdin and
stdout are the slave of a raw pty; the test plays pppd on the master in HDLC.

Every wait is bounded (``WAIT``): a client that hangs fails the test, it never stalls it.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import signal
import socket
import ssl
import sys
import threading
import tty
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sstp_pppd.core import crypto, hdlc, messages
from sstp_pppd.core.messages import (
    ControlPacket,
    CryptoBinding,
    CryptoBindingRequest,
    MessageType,
    Packet,
    StatusCode,
    StatusInfo,
)

#: The longest any single step may take on a loaded machine before the test fails.
WAIT = 15.0
HTTP_OK = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n"
    b"Server: Microsoft-HTTPAPI/2.0\r\n\r\n"
)
NONCE = bytes(range(0x40, 0x60))


# ----- certificates ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerCert:
    """A self-signed server certificate written to ``cert_file``/``key_file`` (PEM)."""

    der: bytes
    cert_file: Path
    key_file: Path

    @property
    def sha256(self) -> bytes:
        """The certificate's SHA-256, the value ``--pin-sha256`` takes in hex."""
        return crypto.cert_hash(self.der, crypto.HASH_PROTOCOL_SHA256)

    @property
    def spki_sha256(self) -> bytes:
        """The SHA-256 of its public key, the value of ``--pin-sha256 sha256//BASE64``."""
        pub = x509.load_der_x509_certificate(self.der).public_key()
        spki = pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashes.Hash(hashes.SHA256())
        digest.update(spki)
        return digest.finalize()


def make_cert(
    directory: Path, name: str, *, dns: Sequence[str] = ("localhost",), ips: Sequence[str] = ()
) -> ServerCert:
    """A fresh P-256 self-signed certificate with these SANs, valid from a day ago."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"sstp-pppd test {name}")])
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ServerCert(
        der=cert.public_bytes(serialization.Encoding.DER), cert_file=cert_file, key_file=key_file
    )


# ----- the server --------------------------------------------------------------------------


class ServerSession:
    """One accepted TLS connection, scripted by the test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.request = b""

    async def read_request(self) -> bytes:
        """The client's HTTP request head (up to the blank line)."""
        self.request = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), WAIT)
        return self.request

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def accept_call(self) -> None:
        """Read the HTTP request, answer 200 OK, then expect CALL_CONNECT_REQUEST."""
        await self.read_request()
        self.send(HTTP_OK)
        await self.expect(MessageType.CALL_CONNECT_REQUEST)

    async def read_raw(self) -> bytes:
        """The next SSTP packet exactly as the client sent it."""
        header = await asyncio.wait_for(self.reader.readexactly(4), WAIT)
        length = ((header[2] & 0x0F) << 8) | header[3]
        if header[0] != messages.SSTP_VERSION or length < 4:
            raise AssertionError(f"the client sent an unframeable header {header.hex()}")
        body = await asyncio.wait_for(self.reader.readexactly(length - 4), WAIT)
        return header + body

    async def read_packet(self) -> Packet:
        return messages.decode(await self.read_raw())

    async def expect(self, message_type: MessageType) -> ControlPacket:
        """The next packet, which must be a control packet of this type."""
        packet = await self.read_packet()
        if not isinstance(packet, ControlPacket) or packet.message_type != message_type:
            raise AssertionError(f"expected {message_type.name}, got {packet!r}")
        return packet

    async def expect_data(self) -> bytes:
        """The PPP frame of the next packet, which must be a data packet."""
        packet = await self.read_packet()
        if not isinstance(packet, messages.DataPacket):
            raise AssertionError(f"expected a data packet, got {packet!r}")
        return packet.payload

    async def read_until_eof(self) -> list[Packet]:
        """Every packet the client still sends, until it closes the connection."""
        packets = []
        while True:
            try:
                packets.append(await self.read_packet())
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise AssertionError(f"truncated packet {exc.partial.hex()}") from None
                return packets
            except (ConnectionError, ssl.SSLError):
                return packets

    def send_packet(self, packet: Packet) -> None:
        self.send(packet.encode())

    def send_frames(self, *frames: bytes) -> None:
        """PPP frames from the server, one data packet each, in one write."""
        self.send(b"".join(messages.encode_data(f) for f in frames))

    def send_ack(self, bitmask: int = 3, nonce: bytes = NONCE) -> None:
        request = CryptoBindingRequest(hash_bitmask=bitmask, nonce=nonce)
        self.send_packet(
            ControlPacket(message_type=MessageType.CALL_CONNECT_ACK, attributes=(request,))
        )

    def send_nak(self) -> None:
        status = StatusInfo(
            attrib_id=messages.AttributeId.ENCAPSULATED_PROTOCOL_ID,
            status=StatusCode.VALUE_NOT_SUPPORTED,
            attrib_value=b"\x00\x01",
        )
        self.send_packet(
            ControlPacket(message_type=MessageType.CALL_CONNECT_NAK, attributes=(status,))
        )

    def abort_tcp(self) -> None:
        """Drop the connection without a TLS close_notify or an SSTP goodbye."""
        self.writer.transport.abort()

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        except (OSError, ssl.SSLError, TimeoutError):
            pass


def check_call_connected(
    raw: bytes, *, hlak: bytes, cert_der: bytes, nonce: bytes = NONCE, hash_protocol: int = 2
) -> None:
    """Verify a CALL_CONNECTED as a strict server does: nonce, cert hash and Compound MAC."""
    packet = messages.decode(raw)
    if not (
        isinstance(packet, ControlPacket) and packet.message_type == MessageType.CALL_CONNECTED
    ):
        raise AssertionError(f"not a CALL_CONNECTED: {packet!r}")
    (binding,) = packet.attributes
    if not isinstance(binding, CryptoBinding):
        raise AssertionError(f"CALL_CONNECTED without CRYPTO_BINDING: {binding!r}")
    if binding.hash_protocol != hash_protocol:
        raise AssertionError(f"hash protocol {binding.hash_protocol}, expected {hash_protocol}")
    if binding.nonce != nonce:
        raise AssertionError("the nonce is not the one of the ACK")
    if binding.cert_hash != crypto.cert_hash(cert_der, hash_protocol):
        raise AssertionError("the certificate hash is not the server's")
    zeroed = raw[:80] + bytes(32)
    mac = crypto.compound_mac(hash_protocol, hlak, zeroed)
    if binding.compound_mac != mac:
        raise AssertionError("the Compound MAC does not verify with the expected HLAK")


class FakeServer:
    """A TLS listener on 127.0.0.1; ``accept()`` gives each connection to the test."""

    def __init__(self, cert: ServerCert, *, max_version: ssl.TLSVersion | None = None) -> None:
        self.cert = cert
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert.cert_file, cert.key_file)
        if max_version is not None:
            self.ctx.maximum_version = max_version
        self.sessions: asyncio.Queue[ServerSession] = asyncio.Queue()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: list[ServerSession] = []

    async def __aenter__(self) -> FakeServer:
        # Failed handshakes are what several tests are about: not worth a log line.
        asyncio.get_running_loop().set_exception_handler(lambda _loop, _ctx: None)
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0, ssl=self.ctx)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for session in self._open:
            await session.close()
        if self._server is not None:
            self._server.close()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = ServerSession(reader, writer)
        self._open.append(session)
        await self.sessions.put(session)

    async def accept(self) -> ServerSession:
        """The next connection whose TLS handshake completed."""
        return await asyncio.wait_for(self.sessions.get(), WAIT)


class AlertingTlsServer:
    """Blocking TLS handshakes in a thread, for the failures asyncio cannot show.

    asyncio's server drops the connection when its handshake fails; OpenSSL's blocking
    socket first sends the alert (protocol_version...) a real server sends.
    """

    def __init__(self, cert: ServerCert, *, max_version: ssl.TLSVersion) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert.cert_file, cert.key_file)
        self.ctx.maximum_version = max_version
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> AlertingTlsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(WAIT)
                try:
                    self.ctx.wrap_socket(conn, server_side=True).close()
                except (OSError, ssl.SSLError) as exc:
                    self.errors.append(exc)


# ----- the client and its fake pppd --------------------------------------------------------


class Client:
    """``sstp-pppd --nolaunchpppd`` on a raw pty whose master plays pppd."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int) -> None:
        self.proc = proc
        self.master = master
        self.decoder = hdlc.Decoder()
        self.frames: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.stderr = ""
        asyncio.get_running_loop().add_reader(master, self._readable)

    @classmethod
    async def start(cls, *args: str) -> Client:
        master, slave = os.openpty()
        # pppd makes its pty raw: no echo, no CR/LF translation of the HDLC bytes.
        tty.setraw(slave)
        os.set_blocking(master, False)
        # No key socket unless a test asks (--key-socket later wins): concurrent runs on
        # one machine would otherwise share /var/run/sstpc/sstpc-uds-sock.
        argv = [sys.executable, "-m", "sstp_pppd.cli", "--nolaunchpppd", "--log-stderr",
                "--log-level", "4", "--key-socket", "none", *args]  # fmt: skip
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=slave,
                stdout=slave,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        finally:
            os.close(slave)
        return cls(proc, master)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:
            data = b""
        if not data:
            # EIO: the client closed its side of the pty.
            asyncio.get_running_loop().remove_reader(self.master)
            self.frames.put_nowait(None)
            return
        for frame in self.decoder.feed(data):
            self.frames.put_nowait(frame)

    def write_frames(self, *frames: bytes) -> None:
        """What pppd writes: each frame HDLC-encoded, in one write."""
        data = hdlc.encode_frames(frames)
        while data:
            data = data[os.write(self.master, data) :]

    async def read_frame(self) -> bytes:
        """The next whole PPP frame the client wrote to pppd."""
        frame = await asyncio.wait_for(self.frames.get(), WAIT)
        if frame is None:
            raise AssertionError("the client closed the pty")
        return frame

    def close_line(self) -> None:
        """pppd goes away: the master is closed, the client's stdin hangs up."""
        if self.master >= 0:
            asyncio.get_running_loop().remove_reader(self.master)
            os.close(self.master)
            self.master = -1

    def signal(self, signum: signal.Signals) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signum)

    async def wait(self, timeout: float = WAIT) -> int:
        """The exit code; the stderr it wrote is in ``stderr`` afterwards."""
        assert self.proc.stderr is not None
        try:
            err = await asyncio.wait_for(self.proc.stderr.read(), timeout)
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.kill()
            err = await self.proc.stderr.read()
            self.stderr = err.decode(errors="replace")
            raise AssertionError(
                f"the client did not exit in time; stderr:\n{self.stderr}"
            ) from None
        self.stderr = err.decode(errors="replace")
        return code

    def kill(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass

    async def aclose(self) -> None:
        """Never leave a client behind, whatever the test did."""
        self.kill()
        await self.proc.wait()
        self.close_line()
