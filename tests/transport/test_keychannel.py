"""The key channel on real unix sockets: a test plays the pppd plugins (sstpc's and NM's)."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import stat
import struct
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from sstp_pppd.core.keymsg import ApiMessage, AttrType, MsgType, decode, parse_sockaddr
from sstp_pppd.errors import ConfigError, NetworkError
from sstp_pppd.transport import keychannel
from sstp_pppd.transport.keychannel import (
    KeyChannel,
    LiveSocketError,
    keys_plugin_options,
    open_channel,
    pppd_version,
    socket_path,
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
        path, on_keys=lambda s, r: got.append((s, r)), gateway="vpn.example.com", peer=lambda: peer
    )
    async with kc:
        yield kc, got


def test_socket_names() -> None:
    assert socket_path(None) == Path("/var/run/sstpc/sstpc-uds-sock")
    assert socket_path("nm-pptp-service-42") == Path("/var/run/sstpc/sstpc-nm-pptp-service-42")
    for bad in ("../x", "a/b", "x" * 200):
        with pytest.raises(ConfigError):
            socket_path(bad)


@asynctest
async def test_auth_keys_then_ack(sockdir: Path) -> None:
    path = socket_path("lab", sockdir)
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
    path = socket_path(None, sockdir)
    async with channel(path, peer) as (_, got):
        reply = decode(await ask(path, ADDR.encode()))
    assert reply.type is MsgType.ACK and reply.get(AttrType.GATEWAY) == b"vpn.example.com"
    raw = reply.get(AttrType.ADDR)
    assert raw is not None and parse_sockaddr(raw) == want
    assert got == []


@asynctest
async def test_addr_before_connect_names_the_gateway_only(sockdir: Path) -> None:
    path = socket_path(None, sockdir)
    async with channel(path, None):
        reply = decode(await ask(path, ADDR.encode()))
    assert reply.attributes == ((AttrType.GATEWAY, b"vpn.example.com"),)


@asynctest
async def test_one_message_per_connection_many_connections(sockdir: Path) -> None:
    path = socket_path(None, sockdir)
    async with channel(path) as (_, got):
        for _ in range(3):
            assert decode(await ask(path, ADDR.encode())).get(AttrType.ADDR)
        assert await ask(path, AUTH.encode() + ADDR.encode()) == ApiMessage(MsgType.ACK).encode()
    assert got == [(SEND, RECV)]


@asynctest
async def test_garbage_is_logged_and_the_channel_lives_on(
    sockdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = socket_path(None, sockdir)
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
    path = socket_path(None, sockdir)
    async with channel(path):
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(AUTH.encode()[:6])
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()


@asynctest
async def test_stale_socket_is_replaced(sockdir: Path) -> None:
    sockdir.mkdir()
    path = socket_path("lab", sockdir)
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
    path = socket_path("lab", sockdir)
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
    path = socket_path("lab", sockdir)
    path.write_text("keep me")
    with pytest.raises(ConfigError, match="not a socket"):
        async with channel(path):
            pass
    assert path.read_text() == "keep me"


@asynctest
async def test_close_leaves_a_successors_socket(sockdir: Path) -> None:
    path = socket_path("lab", sockdir)
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
    path = socket_path("lab", sockdir)
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
    path = socket_path("lab", sockdir)
    got: list[tuple[bytes, bytes]] = []
    kc = KeyChannel(
        path,
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
    path = socket_path("x", sockdir)
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
    assert await keys_plugin_options("/usr/sbin/pppd", "/run/k", tmp_path) == ()
    plugin = tmp_path / version / "sstp-pppd-keys.so"
    plugin.parent.mkdir()
    plugin.write_bytes(b"")
    opts = await keys_plugin_options("/usr/sbin/pppd", "/run/k", tmp_path)
    assert opts == ("plugin", str(plugin), "sstp-sock", "/run/k")
    assert await keys_plugin_options("/usr/sbin/pppd", None, tmp_path) == ()
    assert await keys_plugin_options(str(tmp_path / "no-pppd"), "/run/k", tmp_path) == ()
