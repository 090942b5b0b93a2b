"""HTTP CONNECT proxies end to end on loopback: ``--proxy``, Basic auth, refusals, the environment.

:class:`FakeProxy` is a tiny CONNECT proxy on 127.0.0.1 that records each request head and
either refuses it as scripted (407, 403, garbage, hang-up) or opens the tunnel to the
requested host:port and relays bytes both ways. The client is the real ``sstp-pppd``
subprocess of :mod:`test_tunnel`, the server its :class:`fakeserver.FakeServer`; a tunnel
that works is proven by the server's connection coming from the proxy's upstream socket.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sstp_pppd.errors import ExitCode

from .fakeserver import WAIT, Client, FakeServer, ServerCert, ServerSession, make_cert
from .test_tunnel import (
    HTTP_404,
    LCP_REQUEST,
    asynctest,
    disconnect_before_ppp,
    fails,
    secure,
    started,
)

#: Every variable the client might take a proxy (or a bypass) from.
PROXY_VARIABLES = (
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
)
#: The proxy password of the auth tests, as typed in the URL and as decoded.
PASSWORD_IN_URL = "p%40ss"
PASSWORD = "p@ss"
PROXY_407 = (
    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
    b'Proxy-Authenticate: Basic realm="x"\r\nContent-Length: 0\r\n\r\n'
)
PROXY_403 = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
#: What a wrong port may answer: an SSH server's banner.
GARBAGE = b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyRequest:
    """One request head as the proxy received it."""

    line: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The value of the only header ``name`` (any case); None if absent."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        if len(values) > 1:
            raise AssertionError(f"header {name} sent {len(values)} times")
        return values[0] if values else None


class FakeProxy:
    """An HTTP CONNECT proxy on 127.0.0.1.

    ``credentials`` (``"user:password"``): Basic auth is required, else 407. ``reply``:
    sent instead of opening the tunnel, after which the connection stays open until the
    client closes it (a client must act on the answer, not on the proxy hanging up).
    ``hang_up``: close the connection without any answer.
    """

    def __init__(
        self, *, credentials: str | None = None, reply: bytes | None = None, hang_up: bool = False
    ) -> None:
        self.credentials = credentials
        self.reply = reply
        self.hang_up = hang_up
        self.requests: list[ProxyRequest] = []
        #: The local address of each upstream connection the proxy opened.
        self.upstream: list[tuple[str, int]] = []
        # Bound now, so that the port (and ``url``) is known before the proxy runs.
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FakeProxy:
        self._server = await asyncio.start_server(self._on_client, sock=self._listener)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        self._listener.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        line, *rest = head.decode("latin-1").removesuffix("\r\n\r\n").split("\r\n")
        fields = [h.partition(":") for h in rest]
        request = ProxyRequest(line=line, headers=tuple((k, v.strip()) for k, _, v in fields))
        self.requests.append(request)
        if self.hang_up:
            return
        reply = self.reply
        if reply is None and self.credentials is not None:
            basic = base64.b64encode(self.credentials.encode()).decode("ascii")
            if request.header("Proxy-Authorization") != f"Basic {basic}":
                reply = PROXY_407
        if reply is not None:
            writer.write(reply)
            await asyncio.wait_for(reader.read(), WAIT)
            return
        host, _, port = line.split(" ")[1].rpartition(":")
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), WAIT
            )
        except (OSError, TimeoutError):
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        self._writers.append(up_writer)
        self.upstream.append(up_writer.get_extra_info("sockname")[:2])
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then pass the half-close on (TLS close_notify needs both ways)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.transport.abort()


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> ServerCert:
    return make_cert(tmp_path_factory.mktemp("certs"), "good", ips=["127.0.0.1"])


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variable of the machine running the tests reaches the client."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@contextlib.asynccontextmanager
async def through(
    proxy: FakeProxy, cert: ServerCert, *args: str
) -> AsyncIterator[tuple[FakeServer, Client]]:
    """A fake server, the proxy, and a client started with ``args`` before the server."""
    async with FakeServer(cert) as server, proxy:
        async with started(*secure(cert, *args), f"127.0.0.1:{server.port}") as client:
            yield server, client


async def accepted(server: FakeServer, client: Client) -> ServerSession:
    """The server's next connection; a client that exits first fails the test at once."""
    accept = asyncio.ensure_future(server.accept())
    exit_ = asyncio.ensure_future(client.proc.wait())
    await asyncio.wait({accept, exit_}, return_when=asyncio.FIRST_COMPLETED)
    exit_.cancel()
    if accept.done():
        return accept.result()
    accept.cancel()
    code = await client.wait()
    raise AssertionError(f"the client exited {code} before reaching the server:\n{client.stderr}")


async def via_proxy(server: FakeServer, proxy: FakeProxy, client: Client) -> ServerSession:
    """The server's next connection, which must be the one the proxy opened."""
    s = await accepted(server, client)
    assert s.writer.get_extra_info("peername")[:2] in proxy.upstream, "not through the proxy"
    return s


async def direct(server: FakeServer, proxy: FakeProxy, client: Client) -> ServerSession:
    """The server's next connection, which must not have gone through the proxy."""
    s = await accepted(server, client)
    assert not proxy.requests, proxy.requests
    return s


async def refused_with_404(s: ServerSession, client: Client) -> None:
    """TLS and HTTP reached the server: answer 404, the client exits HTTP."""
    request = await s.read_request()
    assert request.startswith(b"SSTP_DUPLEX_POST /sra_")
    s.send(HTTP_404)
    await fails(client, ExitCode.HTTP, "404", "server")


async def acked_and_closed(s: ServerSession, client: Client) -> None:
    """CALL_CONNECT_REQUEST, ACK, pppd's first frame relayed, then pppd hangs up."""
    await s.accept_call()
    s.send_ack()
    client.write_frames(LCP_REQUEST)
    assert await s.expect_data() == LCP_REQUEST
    client.close_line()
    await disconnect_before_ppp(s, client)


def check_connect(request: ProxyRequest, server: FakeServer) -> None:
    """[MS-SSTP] 4.5: CONNECT to the server's real port, Host and SSTPVERSION: 1.0."""
    assert request.line == f"CONNECT 127.0.0.1:{server.port} HTTP/1.1"
    assert request.header("Host") == f"127.0.0.1:{server.port}"
    assert request.header("SSTPVERSION") == "1.0"


def no_secret(text: str | bytes) -> None:
    """Neither the proxy password (raw or percent-encoded) nor its Basic token is in text."""
    data = text.encode() if isinstance(text, str) else text
    for secret in (
        PASSWORD,
        PASSWORD_IN_URL,
        base64.b64encode(b"user:" + PASSWORD.encode()).decode(),
    ):
        assert secret.encode() not in data, text


# ----- --proxy ------------------------------------------------------------------------------


@asynctest
async def test_tunnel_through_the_proxy(cert: ServerCert) -> None:
    proxy = FakeProxy()
    async with through(proxy, cert, "--proxy", proxy.url) as (server, client):
        s = await via_proxy(server, proxy, client)
        (request,) = proxy.requests
        check_connect(request, server)
        assert request.header("Proxy-Authorization") is None
        await acked_and_closed(s, client)
    assert f"proxy 127.0.0.1:{proxy.port} opened a tunnel" in client.stderr


@asynctest
async def test_basic_auth_and_no_password_anywhere(cert: ServerCert) -> None:
    proxy = FakeProxy(credentials=f"user:{PASSWORD}")
    async with FakeServer(cert) as server, proxy:
        url = f"http://user:{PASSWORD_IN_URL}@127.0.0.1:{proxy.port}"
        args = secure(cert, "--proxy", url, f"127.0.0.1:{server.port}")
        async with started(*args) as client:
            s = await via_proxy(server, proxy, client)
            (request,) = proxy.requests
            check_connect(request, server)
            # RFC 7617: base64 of the percent-decoded "user:password".
            assert request.header("Proxy-Authorization") == "Basic dXNlcjpwQHNz"
            # The client is running (waiting for the HTTP answer): its argv is scrubbed.
            cmdline = Path(f"/proc/{client.pid}/cmdline").read_bytes()
            assert b"--proxy" in cmdline
            no_secret(cmdline)
            await acked_and_closed(s, client)
    no_secret(client.stderr)


@pytest.mark.parametrize(
    ("userinfo", "needles"),
    [
        ("", ("407", "authentication required", "http://user:pass@")),
        (f"user:wrong{PASSWORD_IN_URL}@", ("407", "check the user name and password")),
        (f"User:{PASSWORD_IN_URL}@", ("407", "check the user name and password")),
    ],
    ids=["none", "wrong-password", "wrong-user"],
)
@asynctest
async def test_proxy_authentication_fails(
    cert: ServerCert, userinfo: str, needles: tuple[str, ...]
) -> None:
    proxy = FakeProxy(credentials=f"user:{PASSWORD}")
    async with FakeServer(cert) as server, proxy:
        url = f"http://{userinfo}127.0.0.1:{proxy.port}"
        async with started(*secure(cert, "--proxy", url, f"127.0.0.1:{server.port}")) as client:
            last = await fails(client, ExitCode.HTTP, *needles)
    (request,) = proxy.requests
    assert (request.header("Proxy-Authorization") is None) == (not userinfo)
    assert f"127.0.0.1 port {proxy.port}" in last
    no_secret(client.stderr)


@pytest.mark.parametrize(
    ("reply", "code", "needles"),
    [
        (PROXY_403, ExitCode.HTTP, ("403", "refused the tunnel")),
        # Not an HTTP proxy at all (a wrong port): the HTTP exchange failed, as with a
        # server that answers garbage, so HTTP too; the line says it was the proxy.
        (GARBAGE, ExitCode.HTTP, ("did not answer in HTTP", "SSH-2.0")),
        (None, ExitCode.NETWORK, ("closed the connection during CONNECT",)),
    ],
    ids=["403", "garbage", "hang-up"],
)
@asynctest
async def test_proxy_refuses(
    cert: ServerCert, reply: bytes | None, code: ExitCode, needles: tuple[str, ...]
) -> None:
    proxy = FakeProxy(reply=reply, hang_up=reply is None)
    async with through(proxy, cert, "--proxy", proxy.url) as (server, client):
        await fails(client, code, f"proxy 127.0.0.1 port {proxy.port}", *needles)
        assert server.sessions.empty()
    assert len(proxy.requests) == 1


@asynctest
async def test_proxy_not_listening(cert: ServerCert) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with FakeServer(cert) as server:
            args = secure(cert, "--proxy", f"127.0.0.1:{port}", f"127.0.0.1:{server.port}")
            async with started(*args) as client:
                await fails(
                    client,
                    ExitCode.NETWORK,
                    f"proxy: cannot connect to 127.0.0.1 port {port}",
                    "Connection refused",
                )


# ----- the environment ----------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["https_proxy", "HTTPS_PROXY", "http_proxy", "all_proxy"])
@asynctest
async def test_proxy_from_the_environment(
    cert: ServerCert, clean_environment: pytest.MonkeyPatch, variable: str
) -> None:
    proxy = FakeProxy()
    async with FakeServer(cert) as server, proxy:
        clean_environment.setenv(variable, proxy.url)
        async with started(*secure(cert, f"127.0.0.1:{server.port}")) as client:
            s = await via_proxy(server, proxy, client)
            (request,) = proxy.requests
            check_connect(request, server)
            await refused_with_404(s, client)


@pytest.mark.parametrize(
    ("env", "server_name"),
    [
        ({"https_proxy": "PROXY", "no_proxy": "127.0.0.1"}, "127.0.0.1"),
        ({"https_proxy": "PROXY", "no_proxy": "example.org, localhost"}, "localhost"),
        ({"https_proxy": "PROXY", "NO_PROXY": "127.0.0.0/8"}, "127.0.0.1"),
        ({"HTTP_PROXY": "PROXY"}, "127.0.0.1"),
    ],
    ids=["no_proxy-ip", "no_proxy-name", "NO_PROXY-cidr", "HTTP_PROXY-ignored"],
)
@asynctest
async def test_environment_bypass(
    cert: ServerCert,
    clean_environment: pytest.MonkeyPatch,
    env: dict[str, str],
    server_name: str,
) -> None:
    proxy = FakeProxy()
    async with FakeServer(cert) as server, proxy:
        for name, value in env.items():
            clean_environment.setenv(name, proxy.url if value == "PROXY" else value)
        async with started(*secure(cert, f"{server_name}:{server.port}")) as client:
            await refused_with_404(await direct(server, proxy, client), client)
    assert not proxy.requests


@asynctest
async def test_proxy_option_wins_over_the_environment(
    cert: ServerCert, clean_environment: pytest.MonkeyPatch
) -> None:
    proxy = FakeProxy()
    # $https_proxy names a port where nothing listens: using it would fail the run.
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        clean_environment.setenv("https_proxy", f"http://127.0.0.1:{dead.getsockname()[1]}")
        async with through(proxy, cert, "--proxy", proxy.url) as (server, client):
            s = await via_proxy(server, proxy, client)
            await refused_with_404(s, client)
