"""The key channel on real unix sockets: a test plays the pppd plugins (sstpc's and NM's)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import tty
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from sstp_pppd.core import messages
from sstp_pppd.core.keymsg import ApiMessage, AttrType, MsgType, decode, parse_sockaddr
from sstp_pppd.core.messages import MessageType
from sstp_pppd.errors import ConfigError, ExitCode, NetworkError
from sstp_pppd.transport import keychannel
from sstp_pppd.transport.keychannel import (
    KeyChannel,
    LiveSocketError,
    keys_plugin_options,
    open_channel,
    pppd_version,
    socket_path,
)

from ..core.test_pppwatch import AUTH_MSCHAPV2, LCP, MAGIC, MRU, lcp_ack, ppp
from .fakeserver import (
    Client,
    FakeServer,
    ServerCert,
    ServerSession,
    check_call_connected,
    make_cert,
)
from .test_proxy import FakeProxy
from .test_tunnel import (
    CHAP_CHALLENGE,
    CHAP_RESPONSE,
    CHAP_SUCCESS,
    LCP_REQUEST,
    secure,
)

SEND = bytes(range(1, 17))
RECV = bytes(range(201, 217))
AUTH = ApiMessage(MsgType.AUTH, ((AttrType.MPPE_SEND, SEND), (AttrType.MPPE_RECV, RECV)))
ADDR = ApiMessage(MsgType.ADDR)
NOBODY = 65534
#: The venv's interpreter lives under /root: another user runs the system one (stdlib only).
SYSTEM_PYTHON = "/usr/bin/python3"


def asynctest(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), 20))

    return wrapper


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A directory everyone may traverse (pytest's tmp_path is 0700), not yet created inside."""
    base = Path(tempfile.mkdtemp(prefix="sstp-kc-"))
    base.chmod(0o755)
    yield base / "sstpc"
    subprocess.run(["rm", "-rf", "--", str(base)], check=True)


def sock(ipparam: str | None, sockdir: Path) -> Path:
    """:func:`socket_path` (a str, as the channel takes it) as a Path, for the checks."""
    return Path(socket_path(ipparam, str(sockdir)))


async def ask(path: Path, msg: bytes) -> bytes:
    """Play the plugin: connect, send one message, read the reply until EOF."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(msg)
    await writer.drain()
    reply = await reader.read()
    writer.close()
    await writer.wait_closed()
    return reply


@asynccontextmanager
async def channel(
    path: Path, peer: tuple[object, ...] | None = ("192.0.2.9", 443)
) -> AsyncIterator[tuple[KeyChannel, list[tuple[bytes, bytes]]]]:
    got: list[tuple[bytes, bytes]] = []
    kc = KeyChannel(
        str(path),
        on_keys=lambda s, r: got.append((s, r)),
        gateway="vpn.example.com",
        peer=lambda: peer,
    )
    async with kc:
        yield kc, got


def test_socket_names() -> None:
    assert socket_path(None) == "/var/run/sstpc/sstpc-uds-sock"
    assert socket_path("nm-pptp-service-42") == "/var/run/sstpc/sstpc-nm-pptp-service-42"
    for bad in ("../x", "a/b", "x" * 200):
        with pytest.raises(ConfigError):
            socket_path(bad)


@asynctest
async def test_auth_keys_then_ack(sockdir: Path) -> None:
    path = sock("lab", sockdir)
    async with channel(path) as (kc, got):
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_uid == os.getuid()
        assert stat.S_IMODE(os.stat(sockdir).st_mode) == 0o755
        reply = await ask(path, AUTH.encode())
        assert reply == struct.pack("=IHH", 0x73737470, 0, 3)
        assert got == [(SEND, RECV)] and kc.keys_received == 1
    assert not path.exists()


@pytest.mark.parametrize(
    ("peer", "want"),
    [
        (("192.0.2.9", 443), ("192.0.2.9", 443)),
        (("2001:db8::7", 8443, 0, 0), ("2001:db8::7", 8443)),
        (("fe80::1%lo", 443, 0, 1), ("fe80::1%1", 443)),
    ],
)
@asynctest
async def test_addr_gets_gateway_and_sockaddr(
    sockdir: Path, peer: tuple[object, ...], want: tuple[str, int]
) -> None:
    path = sock(None, sockdir)
    async with channel(path, peer) as (_, got):
        reply = decode(await ask(path, ADDR.encode()))
    assert reply.type is MsgType.ACK and reply.get(AttrType.GATEWAY) == b"vpn.example.com"
    raw = reply.get(AttrType.ADDR)
    assert raw is not None and parse_sockaddr(raw) == want
    assert got == []


@asynctest
async def test_addr_before_connect_names_the_gateway_only(sockdir: Path) -> None:
    path = sock(None, sockdir)
    async with channel(path, None):
        reply = decode(await ask(path, ADDR.encode()))
    assert reply.attributes == ((AttrType.GATEWAY, b"vpn.example.com"),)


@asynctest
async def test_one_message_per_connection_many_connections(sockdir: Path) -> None:
    path = sock(None, sockdir)
    async with channel(path) as (_, got):
        for _ in range(3):
            assert decode(await ask(path, ADDR.encode())).get(AttrType.ADDR)
        assert await ask(path, AUTH.encode() + ADDR.encode()) == ApiMessage(MsgType.ACK).encode()
    assert got == [(SEND, RECV)]


@asynctest
async def test_garbage_is_logged_and_the_channel_lives_on(
    sockdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = sock(None, sockdir)
    caplog.set_level(logging.INFO, "sstp_pppd")
    async with channel(path) as (_, got):
        assert await ask(path, b"GET / HTTP/1.0\r\n\r\n") == b""
        assert await ask(path, struct.pack("=IHH", 0x73737470, 0, 9)) == b""
        assert await ask(path, AUTH.encode()[:20]) == b""  # EOF mid-message
        assert await ask(path, AUTH.encode()) == ApiMessage(MsgType.ACK).encode()
    assert got == [(SEND, RECV)]
    assert "bad message" in caplog.text
    assert SEND.hex() not in caplog.text and RECV.hex() not in caplog.text


@asynctest
async def test_stalled_plugin_is_dropped(sockdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keychannel, "READ_TIMEOUT", 0.2)
    path = sock(None, sockdir)
    async with channel(path):
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(AUTH.encode()[:6])
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()


@asynctest
async def test_stale_socket_is_replaced(sockdir: Path) -> None:
    sockdir.mkdir()
    path = sock("lab", sockdir)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))  # as a killed run leaves it: bound, nobody accepting
    dead.close()
    assert path.exists()
    async with channel(path) as (_, got):
        assert await ask(path, AUTH.encode())
    assert got == [(SEND, RECV)] and not path.exists()


@asynctest
async def test_live_socket_is_not_clobbered(sockdir: Path) -> None:
    sockdir.mkdir()
    path = sock("lab", sockdir)
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(path))
    live.listen(1)
    try:
        inode = os.stat(path).st_ino
        with pytest.raises(NetworkError, match="another process"):
            async with channel(path):
                pass
        assert os.stat(path).st_ino == inode
    finally:
        live.close()


@asynctest
async def test_a_file_that_is_no_socket_is_left_alone(sockdir: Path) -> None:
    sockdir.mkdir()
    path = sock("lab", sockdir)
    path.write_text("keep me")
    with pytest.raises(ConfigError, match="not a socket"):
        async with channel(path):
            pass
    assert path.read_text() == "keep me"


@asynctest
async def test_close_leaves_a_successors_socket(sockdir: Path) -> None:
    path = sock("lab", sockdir)
    async with channel(path):
        os.unlink(path)
        other = socket.socket(socket.AF_UNIX)
        other.bind(str(path))
    try:
        assert path.exists()
    finally:
        other.close()


PLUGIN_AS_NOBODY = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("EACCES"); sys.exit()
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
    print("reply", s.recv(100).hex())
except OSError:  # refused: closed before or after the message arrived
    print("reply")
"""


def as_nobody(path: Path, message: bytes) -> str:
    out = subprocess.run(
        [SYSTEM_PYTHON, "-c", PLUGIN_AS_NOBODY, str(path), message.hex()],
        user=NOBODY,
        group=NOBODY,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return out.stdout.strip()


@pytest.mark.skipif(
    os.getuid() != 0 or not os.path.exists(SYSTEM_PYTHON),
    reason="needs root and /usr/bin/python3 to run a plugin as another user",
)
@asynctest
async def test_other_users_are_refused(sockdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = sock("lab", sockdir)
    caplog.set_level(logging.INFO, "sstp_pppd")
    async with channel(path) as (_, got):
        # The file mode stops them first...
        assert await asyncio.to_thread(as_nobody, path, AUTH.encode()) == "EACCES"
        # ...and SO_PEERCRED still does where the mode would not.
        os.chmod(path, 0o666)
        assert await asyncio.to_thread(as_nobody, path, AUTH.encode()) == "reply"
    assert got == []
    assert "refused a connection from pid" in caplog.text and f"uid {NOBODY}" in caplog.text


@pytest.mark.skipif(
    os.getuid() != 0 or not os.path.exists(SYSTEM_PYTHON),
    reason="needs root and /usr/bin/python3 to run a plugin as another user",
)
@asynctest
async def test_the_priv_user_is_allowed(sockdir: Path) -> None:
    path = sock("lab", sockdir)
    got: list[tuple[bytes, bytes]] = []
    kc = KeyChannel(
        str(path),
        on_keys=lambda s, r: got.append((s, r)),
        gateway="g",
        peer=lambda: None,
        allowed_uids=[NOBODY],
    )
    async with kc:
        os.chmod(path, 0o666)
        reply = await asyncio.to_thread(as_nobody, path, AUTH.encode())
    assert reply == "reply " + ApiMessage(MsgType.ACK).encode().hex()
    assert got == [(SEND, RECV)]


@asynctest
async def test_open_channel(sockdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    kw: dict[str, Any] = {"on_keys": lambda s, r: None, "gateway": "g", "peer": lambda: None}
    assert await open_channel(None, **kw) is None
    blocker = sockdir.parent / "file"
    blocker.write_text("")
    assert await open_channel(str(blocker / "sock"), **kw) is None
    assert "pppd plugins cannot hand over keys" in caplog.text
    path = sock("x", sockdir)
    kc = await open_channel(str(path), priv_user="nobody", **kw)
    assert kc is not None and NOBODY in kc.allowed_uids
    try:
        with pytest.raises(LiveSocketError):
            await open_channel(str(path), **kw)
    finally:
        await kc.close()
    assert not path.exists()


@pytest.mark.skipif(not os.path.exists("/usr/sbin/pppd"), reason="needs pppd")
@asynctest
async def test_launch_mode_loads_our_plugin_when_installed(tmp_path: Path) -> None:
    version = await pppd_version("/usr/sbin/pppd")
    assert version is not None and version[0].isdigit()
    assert await keys_plugin_options("/usr/sbin/pppd", "/run/k", str(tmp_path)) == ()
    plugin = tmp_path / version / "sstp-pppd-keys.so"
    plugin.parent.mkdir()
    plugin.write_bytes(b"")
    opts = await keys_plugin_options("/usr/sbin/pppd", "/run/k", str(tmp_path))
    assert opts == ("plugin", str(plugin), "sstp-sock", "/run/k")
    assert await keys_plugin_options("/usr/sbin/pppd", None, str(tmp_path)) == ()
    assert await keys_plugin_options(str(tmp_path / "no-pppd"), "/run/k", str(tmp_path)) == ()


# ----- the session: NetworkManager-sstp's exact command line against the fake server ---------

needs_root = pytest.mark.skipif(os.getuid() != 0, reason="the key socket lives in /var/run/sstpc")
NM_UUID = "5e0c1d2a-3b4c-4d5e-8f60-718293a4b5c6"


def nm_argv(port: int, ipparam: str, cert: ServerCert, *extra: str) -> list[str]:
    """NetworkManager-sstp 1.3's pty command, server first, exactly as nm-sstp-service builds it."""
    return [f"127.0.0.1:{port}", "--cert-warn", "--tls-ext", *extra, "--nolaunchpppd",
            "--log-level", "5", "--ipparam", ipparam, "--uuid", NM_UUID,
            "--ca-cert", str(cert.cert_file)]  # fmt: skip


async def start_exact(argv: list[str]) -> Client:
    """The client with exactly ``argv`` (no options of the test's own added)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sstp_pppd.cli", *argv,
            stdin=slave, stdout=slave, stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
    finally:
        os.close(slave)
    return Client(proc, master)


async def wait_for_socket(path: Path, client: Client) -> os.stat_result:
    for _ in range(300):
        if path.exists():
            return os.stat(path)
        if client.proc.returncode is not None:
            break
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


async def authenticated(s: ServerSession, client: Client) -> None:
    """LCP and MS-CHAPv2 through the relay up to the Success reaching pppd. The client has
    no password (NM gives it to pppd only), so it must wait for the plugin's keys."""
    client.write_frames(LCP_REQUEST)
    s.send_ack(bitmask=3)
    assert await s.expect_data() == LCP_REQUEST
    s.send_frames(ppp(LCP, 1, 1, MRU + AUTH_MSCHAPV2 + MAGIC), ppp(LCP, 2, 1, MRU + MAGIC))
    await client.read_frame()
    await client.read_frame()
    client.write_frames(lcp_ack(MRU, AUTH_MSCHAPV2, MAGIC))
    await s.expect_data()
    s.send_frames(CHAP_CHALLENGE)
    assert await client.read_frame() == CHAP_CHALLENGE
    client.write_frames(CHAP_RESPONSE)
    assert await s.expect_data() == CHAP_RESPONSE
    s.send_frames(CHAP_SUCCESS)
    assert await client.read_frame() == CHAP_SUCCESS


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> ServerCert:
    return make_cert(tmp_path_factory.mktemp("certs"), "good", ips=["127.0.0.1"])


@needs_root
@pytest.mark.parametrize("proxy", [False, True])
@asynctest
async def test_networkmanager_session(cert: ServerCert, proxy: bool) -> None:
    """NM's plugin on the socket: ADDR, then AUTH with known keys; the CALL_CONNECTED's
    Compound MAC verifies with HLAK = send || recv; SIGTERM ends it and removes the socket."""
    ipparam = f"nm-pptp-service-{os.getpid()}{int(proxy)}"
    path = Path(f"/var/run/sstpc/sstpc-{ipparam}")
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(FakeServer(cert))
        port = server.port
        extra: tuple[str, ...] = ()
        if proxy:
            relay = await stack.enter_async_context(FakeProxy(credentials="u:p"))
            extra = ("--proxy", f"http://u:p@127.0.0.1:{relay.port}")
        # NM's line, plus --log-stderr at its end: this host's syslog is not for tests.
        client = await start_exact([*nm_argv(port, ipparam, cert, *extra), "--log-stderr"])
        stack.push_async_callback(client.aclose)
        s = await server.accept()
        # Open before the TCP connect: the plugin must find it whatever the timing.
        st = await wait_for_socket(path, client)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_uid == 0
        await s.accept_call()
        await authenticated(s, client)
        assert await ask(path, AUTH.encode()) == ApiMessage(MsgType.ACK).encode()
        check_call_connected(await s.read_raw(), hlak=SEND + RECV, cert_der=cert.der)
        reply = decode(await ask(path, ADDR.encode()))
        assert reply.get(AttrType.GATEWAY) == b"127.0.0.1"
        raw = reply.get(AttrType.ADDR)
        assert raw is not None
        want_port = relay.port if proxy else port
        assert parse_sockaddr(raw) == ("127.0.0.1", want_port)
        client.signal(signal.SIGTERM)
        await s.expect(MessageType.CALL_DISCONNECT)
        s.send_packet(messages.call_disconnect_ack())
        assert await client.wait() == ExitCode.OK, client.stderr
    assert "Traceback" not in client.stderr
    assert client.stderr.rstrip().endswith(f"sstp-pppd[{ipparam}]: tunnel closed")
    assert not path.exists()
    assert "MPPE keys from the pppd plugin" in client.stderr
    assert SEND.hex() not in client.stderr and "u:p@" not in client.stderr


def pty_argv(ipparam: str, cert: ServerCert, port: int) -> list[str]:
    """sstp-client's documented pty line (sstp-test.example), with the default socket."""
    return ["--ipparam", ipparam, "--nolaunchpppd", "--log-stderr", "--log-level", "4",
            *secure(cert), f"127.0.0.1:{port}"]  # fmt: skip


@contextlib.asynccontextmanager
async def exact(argv: list[str]) -> AsyncIterator[Client]:
    client = await start_exact(argv)
    try:
        yield client
    finally:
        await client.aclose()


@needs_root
@asynctest
async def test_server_abort_removes_the_socket(cert: ServerCert) -> None:
    ipparam = f"kc-abort-{os.getpid()}"
    path = Path(f"/var/run/sstpc/sstpc-{ipparam}")
    async with FakeServer(cert) as server:
        async with exact(pty_argv(ipparam, cert, server.port)) as c:
            s = await server.accept()
            await wait_for_socket(path, c)
            await s.accept_call()
            s.abort_tcp()
            assert await c.wait() != ExitCode.OK
            assert "Traceback" not in c.stderr
    assert not path.exists()


@needs_root
@asynctest
async def test_session_replaces_a_stale_socket_and_refuses_a_live_one(cert: ServerCert) -> None:
    ipparam = f"kc-stale-{os.getpid()}"
    path = Path(f"/var/run/sstpc/sstpc-{ipparam}")
    path.parent.mkdir(mode=0o755, exist_ok=True)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()
    async with FakeServer(cert) as server:
        async with exact(pty_argv(ipparam, cert, server.port)) as c:
            s = await server.accept()
            await s.accept_call()
            assert (await wait_for_socket(path, c)).st_uid == 0
            async with exact(pty_argv(ipparam, cert, server.port)) as second:
                assert await second.wait() == ExitCode.NETWORK
                last = second.stderr.strip().splitlines()[-1]
                assert "another process is listening" in last and str(path) in last
            assert path.exists()
            c.signal(signal.SIGTERM)
            await c.wait()
    assert not path.exists()
    assert "replaced the stale key socket" in c.stderr


@needs_root
@asynctest
async def test_priv_user_keeps_answering_after_the_drop(cert: ServerCert) -> None:
    """--priv-user: root is given up after CALL_CONNECTED; NM's ADDR at ip-up comes later
    and must still be answered (the plugin runs as root inside pppd)."""
    ipparam = f"kc-priv-{os.getpid()}"
    path = Path(f"/var/run/sstpc/sstpc-{ipparam}")
    async with FakeServer(cert) as server:
        argv = [*pty_argv(ipparam, cert, server.port), "--priv-user", "nobody"]
        async with exact(argv) as c:
            s = await server.accept()
            await wait_for_socket(path, c)
            await s.accept_call()
            await authenticated(s, c)
            assert await ask(path, AUTH.encode()) == ApiMessage(MsgType.ACK).encode()
            check_call_connected(await s.read_raw(), hlak=SEND + RECV, cert_der=cert.der)
            # The drop follows CALL_CONNECTED in the same step of the client's loop.
            reply = decode(await ask(path, ADDR.encode()))
            assert reply.get(AttrType.ADDR) is not None
            c.signal(signal.SIGTERM)
            await s.expect(MessageType.CALL_DISCONNECT)
            s.send_packet(messages.call_disconnect_ack())
            assert await c.wait() == ExitCode.OK, c.stderr
    try:
        assert "dropped privileges to nobody" in c.stderr
        # nobody may not unlink in a root-owned directory: said, and the next run replaces it.
        assert not path.exists() or "the next run replaces it" in c.stderr
    finally:
        path.unlink(missing_ok=True)
