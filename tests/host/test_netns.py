"""The real pyroute2 backend and the hooks in a private network namespace of this machine.

This machine's kernel has no PPP, so a veth named ``ppp0`` (with a peer address, as pppd
sets one) stands in for the tunnel; everything else is real: the kernel's RTM_GETROUTE
answer for the server, the routes added and deleted through pyroute2, the installed sh
hooks running ``python -m sstp_pppd.host.hookmain``, the resolv.conf backend, a ``kill -9``
of the transport and ``python -m sstp_pppd.host undo NAME`` afterwards. The namespace is
entered by this test process alone (unshare, then setns back), so nothing outside it is
touched. Needs root; skipped otherwise. The same scenarios with real pppd and sstp-server:
tests/e2e/test_routes.py.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from sstp_pppd.errors import ConfigError
from sstp_pppd.host import hooks
from sstp_pppd.host.apply import apply_for_session, undo_for_session
from sstp_pppd.host.connconf import Connection
from sstp_pppd.host.paths import Paths
from sstp_pppd.host.record import Record

CLONE_NEWNET = 0x40000000
SERVER = "203.0.113.10"
OLD_GW = "192.0.2.254"
OUTSIDE = "198.51.100.7"
RESOLV = "nameserver 192.0.2.53\n"
NAME = "netns"
HOOK_ARGS = ["ppp0", "/dev/pts/9", "0", "10.66.0.2", "10.66.0.1", NAME]
PPPD_ENV = {"USEPEERDNS": "1", "DNS1": "10.66.0.1", "PPPD_PID": "1"}


def sh(script: str, check: bool = True) -> str:
    res = subprocess.run(["sh", "-ec", script], capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"{script}: {res.stderr}")
    return res.stdout + res.stderr


def tables() -> str:
    return sh("ip route show table all; ip -6 route show table all")


def blocked(answer: str) -> bool:
    """``ip route get`` hit an unreachable route (the kill switch)."""
    return "unreachable" in answer.lower() or "no route to host" in answer.lower()


def route_get(dst: str) -> str:
    return sh(f"ip route get {dst}", check=False).strip()


@pytest.fixture
def netns() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("needs root (a private network namespace)")
    libc = ctypes.CDLL(None, use_errno=True)
    old = os.open("/proc/self/ns/net", os.O_RDONLY)
    if libc.unshare(CLONE_NEWNET) != 0:
        os.close(old)
        pytest.skip(f"unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())}")
    try:
        sh(
            # No duplicate address detection: link-local routes must not appear later.
            "sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0\n"
            "ip link set lo up\n"
            "ip link add veth-out type veth peer name veth-far\n"
            "ip addr add 192.0.2.2/24 dev veth-out\n"
            "ip link set veth-out up; ip link set veth-far up\n"
            f"ip neigh replace {OLD_GW} lladdr 02:00:00:00:00:fe dev veth-out nud permanent\n"
            f"ip route add default via {OLD_GW} dev veth-out\n"
            "ip -6 addr add 2001:db8::2/64 dev veth-out\n"
            "ip -6 neigh replace 2001:db8::fe lladdr 02:00:00:00:00:fe dev veth-out nud permanent\n"
            "ip -6 route add default via 2001:db8::fe dev veth-out\n"
        )
        yield
    finally:
        if libc.setns(old, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back")
        os.close(old)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths(
        etc_dir=str(tmp_path / "etc"),
        run_dir=str(tmp_path / "run"),
        resolv_conf=str(tmp_path / "resolv.conf"),
    )
    Path(p.resolv_conf).write_text(RESOLV)
    hooks.install_hooks(str(tmp_path / "ppp"), python=sys.executable, paths=p)
    return p


def ppp_up() -> None:
    """What pppd does after the connect: the interface with a point-to-point address."""
    sh(
        "ip link add ppp0 type veth peer name ppp0-far\n"
        "ip addr add 10.66.0.2 peer 10.66.0.1 dev ppp0\n"
        "ip link set ppp0 up; ip link set ppp0-far up\n"
    )


def hook(tmp_path: Path, event: str) -> None:
    script = tmp_path / "ppp" / f"{event}.d" / hooks.HOOK_NAME
    args, env = HOOK_ARGS, PPPD_ENV
    if event.startswith("ipv6"):  # pppd gives the link-local addresses (ipv6cp)
        args = ["ppp0", "/dev/pts/9", "0", "fe80::2", "fe80::1", NAME]
        env = {"LLLOCAL": "fe80::2", "LLREMOTE": "fe80::1", "PPPD_PID": "1"}
    res = subprocess.run([str(script), *args], env=env, capture_output=True, text=True, check=False)
    log = Path(tmp_path / "run" / NAME / "hooks.log")
    assert res.returncode == 0, res.stderr + (log.read_text() if log.exists() else "")


def start_transport(paths: Paths, conn: Connection) -> subprocess.Popen[str]:
    """A process that does what the transport does before its TCP connect, then waits."""
    code = textwrap.dedent(
        f"""
        import asyncio, sys, time
        from sstp_pppd.host.apply import apply_for_session
        from sstp_pppd.host.connconf import parse_connection
        conn = parse_connection({conn.name!r}, sys.stdin.read())
        asyncio.run(apply_for_session(conn, server={SERVER!r}, port=443))
        print("ready", flush=True)
        time.sleep(600)
        """
    )
    from sstp_pppd.host.connconf import format_connection

    env = {**os.environ, **paths.as_env()}
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(format_connection(conn))
    proc.stdin.close()
    line = proc.stdout.readline()
    assert line == "ready\n", proc.stderr.read() if proc.stderr else ""
    return proc


def undo_command(paths: Paths) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "sstp_pppd.host", "undo", NAME],
        env={**os.environ, **paths.as_env()}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr


@pytest.mark.usefixtures("netns")
def test_full_tunnel_kill_switch_and_kill_9(tmp_path: Path, paths: Paths) -> None:
    before = tables()
    assert f"via {OLD_GW} dev veth-out" in route_get(OUTSIDE)
    conn = Connection(name=NAME, default_route=True, kill_switch=True, dns=True)
    transport = start_transport(paths, conn)
    # Pinned before the connect through the kernel's answer for the server.
    assert f"{SERVER} via {OLD_GW} dev veth-out proto static" in tables()
    ppp_up()
    hook(tmp_path, "ip-up")
    assert "dev ppp0" in route_get(OUTSIDE)
    assert route_get(SERVER).startswith(f"{SERVER} via {OLD_GW} dev veth-out")
    assert "default via 192.0.2.254 dev veth-out" in tables()  # the old default is untouched
    assert "nameserver 10.66.0.1" in Path(paths.resolv_conf).read_text()

    # The link drops without down: its routes go, the kill switch holds, the server stays.
    sh("ip link del ppp0")
    hook(tmp_path, "ip-down")
    assert blocked(route_get(OUTSIDE))
    assert blocked(route_get("2001:db8:ffff::7"))
    assert route_get(SERVER).startswith(f"{SERVER} via {OLD_GW} dev veth-out")
    assert Path(paths.resolv_conf).read_text() == RESOLV

    os.kill(transport.pid, signal.SIGKILL)
    transport.wait()
    undo_command(paths)
    undo_command(paths)  # idempotent
    assert tables() == before
    assert Record(NAME, paths).entries() == []


@pytest.mark.usefixtures("netns")
def test_split_route_and_clean_session_end(tmp_path: Path, paths: Paths) -> None:
    before = tables()
    conn = Connection(name=NAME, routes=("10.99.0.0/24", "2001:db8:99::/48"), dns=True)

    async def session() -> None:
        await apply_for_session(conn, server=SERVER, port=443, paths=paths)
        assert f"{SERVER} " not in tables()  # no pin needed for a split route elsewhere
        ppp_up()
        hook(tmp_path, "ip-up")
        assert "dev ppp0" in route_get("10.99.0.1")
        assert f"via {OLD_GW}" in route_get(OUTSIDE)
        hook(tmp_path, "ip-down")
        assert f"via {OLD_GW}" in route_get("10.99.0.1")
        sh("ip link del ppp0")
        assert await undo_for_session(conn, keep_kill_switch=False, paths=paths) == []

    asyncio.run(session())
    assert tables() == before
    assert Path(paths.resolv_conf).read_text() == RESOLV
    assert sorted(os.listdir(paths.state_dir(NAME))) == [
        "hooks.log",
        "link.lock",
        "lock",
        "status.json",
        "status.lock",
    ]


@pytest.mark.usefixtures("netns")
def test_an_existing_server_route_is_left_alone(paths: Paths) -> None:
    sh(f"ip route add {SERVER} via {OLD_GW} dev veth-out")
    before = tables()
    conn = Connection(name=NAME, save_server_route=True)

    async def session() -> None:
        await apply_for_session(conn, server=SERVER, port=443, paths=paths)
        assert Record(NAME, paths).entries() == []
        await undo_for_session(conn, keep_kill_switch=False, paths=paths)

    asyncio.run(session())
    assert tables() == before


@pytest.mark.usefixtures("netns")
def test_a_second_transport_for_the_same_connection_is_refused(paths: Paths) -> None:
    conn = Connection(name=NAME, save_server_route=True)
    first = start_transport(paths, conn)
    try:
        with pytest.raises(ConfigError, match="already running"):
            asyncio.run(apply_for_session(conn, server=SERVER, port=443, paths=paths))
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    # The next start after the kill -9 takes over and cleans what the dead one left.
    asyncio.run(apply_for_session(conn, server=SERVER, port=443, paths=paths))
    assert len(Record(NAME, paths).entries()) == 1
    asyncio.run(undo_for_session(conn, keep_kill_switch=False, paths=paths))
    assert f"{SERVER} via" not in tables()


@pytest.mark.usefixtures("netns")
def test_ipv6_routes_at_ipv6_up_and_down(tmp_path: Path, paths: Paths) -> None:
    before = tables()
    conn = Connection(name=NAME, default_route=True, routes=("2001:db8:99::/48", "10.99.0.0/24"))

    async def session() -> None:
        await apply_for_session(conn, server=SERVER, port=443, paths=paths)
        ppp_up()
        hook(tmp_path, "ip-up")
        assert "via 2001:db8::fe" in route_get("2001:db8:ffff::7")  # IPv6 waits for ipv6-up
        hook(tmp_path, "ipv6-up")
        assert "dev ppp0" in route_get("2001:db8:ffff::7")
        assert "dev ppp0" in route_get("2001:db8:99::1")
        hook(tmp_path, "ipv6-down")
        assert "via 2001:db8::fe" in route_get("2001:db8:ffff::7")
        assert "dev ppp0" in route_get(OUTSIDE)  # IPv4 stays until ip-down
        hook(tmp_path, "ip-down")
        assert f"via {OLD_GW}" in route_get(OUTSIDE)
        sh("ip link del ppp0")
        assert await undo_for_session(conn, keep_kill_switch=False, paths=paths) == []

    asyncio.run(session())
    assert tables() == before
