"""Routes and DNS end to end: sstp-pppd in launch mode, pppd's hooks, and undo after kill -9.

The cli namespace gets an "old" default route beforehand, through a gateway that exists only
as a permanent neighbour entry (192.0.2.254, 2001:db8::fe on veth-cli): traffic sent there
reaches srv's veth with a foreign MAC address and is dropped, so it never leaves the guest,
and anything that falls back to it shows as "not through ppp0". Behind the server, srv
holds 10.99.0.1/24 (on its lo): reachable from cli only through the tunnel.

The hooks are installed, as ``sstp-helper install-hooks`` does, into cli's private
/etc/ppp together with Debian's /etc/ppp/ip-up and friends, and Debian's 0000usepeerdns
with its resolv.conf moved to a file of this run: the guest's /etc is this machine's. The
DNS backend is therefore the resolv.conf file (no systemd-resolved, no resolvconf in the
guest).
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sstp_pppd.host.connconf import Connection, save_connection
from sstp_pppd.host.hooks import install_hooks, uninstall_hooks
from sstp_pppd.host.paths import Paths

from .bed import HOST_PYTHON, PASSWORD, SERVER_PPPD_OPTIONS, SSTP_PPPD, USERNAME, Lab
from .certs import SERVER_NAME, SERVER_V4
from .test_transport import CLIENT_PPPD, leftovers
from .uml import GuestProcess

pytestmark = pytest.mark.e2e

NAME = "labvpn"
BEHIND = "10.99.0.1"
OUTSIDE = "198.51.100.7"
OUTSIDE6 = "2001:db8:ffff::7"
OLD_GW, OLD_GW6 = "192.0.2.254", "2001:db8::fe"
DNS_SERVER = "10.66.0.1"
RESOLV = "# the guest's resolver\nnameserver 192.0.2.53\nsearch lab.test\n"


@pytest.fixture(scope="module")
def bed(lab: Lab) -> Iterator[dict[str, Any]]:
    """Hooks, Debian's wrappers, the old default routes, the network behind the server."""
    etc_ppp = lab.guest.cli_etc_ppp
    root = lab.run_dir / "routes"
    root.mkdir(exist_ok=True)
    paths = Paths(
        etc_dir=str(root / "etc-sstp-pppd"),
        run_dir="/run/sstp-pppd",
        resolv_conf=str(root / "resolv.conf"),
    )
    copied = []
    for script in ("ip-up", "ip-down", "ipv6-up", "ipv6-down"):
        shutil.copy2(f"/etc/ppp/{script}", etc_ppp / script)
        copied.append(etc_ppp / script)
    debian = Path("/etc/ppp/ip-up.d/0000usepeerdns")
    for direction in ("up", "down"):
        src = Path(f"/etc/ppp/ip-{direction}.d/0000usepeerdns")
        dst = etc_ppp / f"ip-{direction}.d" / "0000usepeerdns"
        dst.parent.mkdir(exist_ok=True)
        if debian.exists():
            dst.write_text(src.read_text().replace("/etc/resolv.conf", paths.resolv_conf))
            dst.chmod(0o755)
            copied.append(dst)
    install_hooks(str(etc_ppp), python=str(HOST_PYTHON), paths=paths)
    lab.guest.sh(
        f"ip neigh replace {OLD_GW} lladdr 02:00:00:00:00:fe dev veth-cli nud permanent && "
        f"ip route add default via {OLD_GW} dev veth-cli && "
        f"ip -6 neigh replace {OLD_GW6} lladdr 02:00:00:00:00:fe dev veth-cli nud permanent && "
        f"ip -6 route add default via {OLD_GW6} dev veth-cli",
        ns="cli",
    )
    lab.guest.sh(f"ip addr add {BEHIND}/24 dev lo", ns="srv")
    lab.wait_for_dad()
    try:
        yield {"paths": paths, "root": root}
    finally:
        lab.guest.sh(
            "ip route del default; ip -6 route del default; "
            f"ip neigh del {OLD_GW} dev veth-cli; ip -6 neigh del {OLD_GW6} dev veth-cli",
            ns="cli",
            check=False,
        )
        lab.guest.sh(f"ip addr del {BEHIND}/24 dev lo", ns="srv", check=False)
        uninstall_hooks(str(etc_ppp))
        for f in copied:
            f.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def down_after(lab: Lab, bed: dict[str, Any]) -> Iterator[None]:
    """Whatever a failed case left, the next starts clean: what ``sstp-helper down`` does."""
    yield
    lab.guest.run(
        [str(HOST_PYTHON), "-m", "sstp_pppd.host", "undo", NAME],
        ns="cli", env=bed["paths"].as_env(),
    )  # fmt: skip


def tables(lab: Lab) -> str:
    res = lab.guest.sh("ip route show table all; ip -6 route show table all", ns="cli")
    return res.stdout


def blocked(answer: str) -> bool:
    """``ip route get`` hit an unreachable route (the kill switch)."""
    return "unreachable" in answer.lower() or "no route to host" in answer.lower()


def route_get(lab: Lab, dst: str) -> str:
    res = lab.guest.run(["ip", "route", "get", dst], ns="cli")
    return (res.stdout + res.stderr).strip()


def status(lab: Lab) -> dict[str, Any]:
    res = lab.guest.run(["cat", f"/run/sstp-pppd/{NAME}/status.json"])
    return json.loads(res.stdout) if res.returncode == 0 else {}


def wait_status(lab: Lab, state: str, timeout: float = 45.0, **want: Any) -> dict[str, Any]:
    """The hooks run after pppd's ip-up without pppd waiting: poll their status file.

    A list in ``want`` is a subset: IPv6CP comes up too, and adds its routes."""
    deadline = time.monotonic() + timeout
    while True:
        st = status(lab)
        if st.get("state") == state and all(
            set(v) <= set(st.get(k) or []) if isinstance(v, list) else st.get(k) == v
            for k, v in want.items()
        ):
            return st
        if time.monotonic() > deadline:
            hooks_log = lab.guest.run(["cat", f"/run/sstp-pppd/{NAME}/hooks.log"]).stdout
            raise AssertionError(f"status never became {state} {want}: {st}\n{hooks_log}")
        time.sleep(0.5)


def run_files(lab: Lab) -> list[str]:
    res = lab.guest.run(["ls", "-A", f"/run/sstp-pppd/{NAME}"])
    return sorted(res.stdout.split()) if res.returncode == 0 else []


def start(lab: Lab, case: Path, bed: dict[str, Any], *args: str, dns: bool = True) -> GuestProcess:
    pw = case / "password"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    resolv = Path(bed["paths"].resolv_conf)
    resolv.write_text(RESOLV)
    pppd = [*CLIENT_PPPD, *(["usepeerdns"] if dns else [])]
    argv = [str(SSTP_PPPD), "--log-level", "4", "--user", USERNAME, "--password-file", str(pw),
            "--ca-cert", str(lab.certs.ca.cert), "--ipparam", NAME, *args, SERVER_NAME,
            "--", *pppd, "logfile", str(case / "client-pppd.log"), "debug"]  # fmt: skip
    return lab.guest.spawn(
        argv, ns="cli", log_dir=case, name="sstp-pppd", env=bed["paths"].as_env()
    )


def server(lab: Lab, case: Path) -> None:
    lab.server.start(case, pppd_options=(*SERVER_PPPD_OPTIONS, f"ms-dns {DNS_SERVER}"))


def assert_clean(lab: Lab, bed: dict[str, Any], before: str) -> None:
    assert tables(lab) == before
    assert Path(bed["paths"].resolv_conf).read_text() == RESOLV
    assert not list(bed["root"].glob("resolv.conf.*"))
    assert set(run_files(lab)) <= {"status.json", "status.lock", "hooks.log", "lock", "link.lock"}
    assert leftovers(lab) == []


def test_split_route_dns_and_route_scripts(lab: Lab, case_dir: Path, bed: dict[str, Any]) -> None:
    split_route_case(lab, case_dir, bed)


#: Longer than pppd's child-timeout (5 s) and sstp-pppd's STOP_GRACE (5 s) together.
SLOW_DOWN = 12


def test_split_route_when_ip_down_outlasts_pppd(
    lab: Lab, case_dir: Path, bed: dict[str, Any]
) -> None:
    """A slow machine: ip-down.d takes longer than pppd waits for it (child-timeout).

    pppd then SIGTERMs /etc/ppp/ip-down and exits, and the transport undoes at its exit;
    our hook, started late by run-parts, must still give the scripts down and post-down,
    and nothing may be left behind. A script that sorts between Debian's 0000usepeerdns
    and ours makes the slowness certain."""
    slow = []
    for d in ("ip-down.d", "ipv6-down.d"):
        path = lab.guest.cli_etc_ppp / d / "0001slow"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"#!/bin/sh\nsleep {SLOW_DOWN}\n")
        path.chmod(0o755)
        slow.append(path)
    try:
        split_route_case(lab, case_dir, bed, settle=SLOW_DOWN + 20)
    finally:
        for path in slow:
            path.unlink()


def split_route_case(lab: Lab, case_dir: Path, bed: dict[str, Any], settle: float = 0.0) -> None:
    paths: Paths = bed["paths"]
    scripts = Path(paths.scripts_dir(NAME))
    scripts.mkdir(parents=True, exist_ok=True)
    seen = case_dir / "script-env.jsonl"
    script = scripts / "50-record"
    script.write_text(
        f"#!{HOST_PYTHON} -I\nimport json, os, sys\n"
        f"open({str(seen)!r}, 'a').write(json.dumps([sys.argv[1:], dict(os.environ)]) + '\\n')\n"
    )
    script.chmod(0o755)
    server(lab, case_dir)
    before = tables(lab)
    assert lab.ping(BEHIND, count=1).returncode != 0  # not reachable without the tunnel
    try:
        client = start(lab, case_dir, bed, "--route", "10.99.0.0/24", "--dns-domain", "corp.test")
        link = lab.wait_for_ppp(timeout=60, proc=client)
        st = wait_status(lab, "up", routes=["10.99.0.0/24"])
        assert "dev ppp0" in route_get(lab, BEHIND)
        assert "dev veth-cli" in route_get(lab, OUTSIDE)  # split: the rest stays outside
        assert lab.ping(BEHIND, log_dir=case_dir).returncode == 0
        assert (st["interface"], st["local"], st["peer"]) == ("ppp0", link.local, link.peer)
        assert st["dns"] == [DNS_SERVER] and st["dns_backend"] == "file"
        resolv = Path(paths.resolv_conf).read_text()
        assert f"nameserver {DNS_SERVER}" in resolv and "192.0.2.53" not in resolv
        assert "search corp.test lab.test" in resolv
        res = client.stop(20 + settle)
        assert res.returncode == 0, res.stderr
        assert lab.wait_for_no_ppp()
        wait_status(lab, "down")
        assert lab.ping(BEHIND, count=1).returncode != 0
        # The hooks may outlive pppd (they ignore its SIGHUP), so post-down, and with it
        # the last of the undo, can come a moment later.
        deadline = time.monotonic() + 30 + settle
        while not post_down_seen(seen, "4") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert_clean(lab, bed, before)
    finally:
        script.unlink()
    # IPv6CP comes up too: the scripts run for both families; here, IPv4's.
    deadline = time.monotonic() + 30
    while True:
        calls = [json.loads(line) for line in seen.read_text().splitlines()]
        calls = [c for c in calls if c[1]["SSTP_FAMILY"] == "4"]
        if len(calls) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [argv for argv, _ in calls] == [["pre-up"], ["up"], ["down"], ["post-down"]]
    env = calls[1][1]
    assert env["SSTP_PPPD_SCRIPT_VERSION"] == "1" and env["reason"] == "up"
    assert (env["SSTP_CONNECTION"], env["SSTP_IFNAME"], env["SSTP_ROUTES"]) == (
        NAME,
        "ppp0",
        "10.99.0.0/24",
    )
    assert (env["SSTP_LOCAL_ADDRESS"], env["SSTP_PEER_ADDRESS"]) == (link.local, link.peer)
    assert (env["SSTP_DNS"], env["SSTP_DNS_DOMAINS"]) == (DNS_SERVER, "corp.test")
    assert (env["SSTP_SERVER"], env["SSTP_SERVER_ADDRESS"]) == (SERVER_NAME, SERVER_V4)


def post_down_seen(seen: Path, family: str) -> bool:
    for line in seen.read_text().splitlines():
        argv, env = json.loads(line)
        if argv == ["post-down"] and env["SSTP_FAMILY"] == family:
            return True
    return False


def test_default_route(lab: Lab, case_dir: Path, bed: dict[str, Any]) -> None:
    server(lab, case_dir)
    before = tables(lab)
    assert f"via {OLD_GW} dev veth-cli" in route_get(lab, OUTSIDE)
    client = start(lab, case_dir, bed, "--default-route")
    lab.wait_for_ppp(timeout=60, proc=client)
    wait_status(lab, "up", routes=["0.0.0.0/1", "128.0.0.0/1"])
    assert "dev ppp0" in route_get(lab, OUTSIDE)
    # The server's host route was pinned through the old path before the connect.
    assert route_get(lab, SERVER_V4).startswith(f"{SERVER_V4} dev veth-cli")
    assert f"{SERVER_V4} dev veth-cli proto static" in tables(lab)
    assert f"via {OLD_GW} dev veth-cli" in tables(lab)  # the old default is untouched
    res = client.stop(20)
    assert res.returncode == 0, res.stderr
    assert lab.wait_for_no_ppp()
    assert_clean(lab, bed, before)


def test_kill_switch_holds_after_kill_9_of_the_transport(
    lab: Lab, case_dir: Path, bed: dict[str, Any]
) -> None:
    server(lab, case_dir)
    before = tables(lab)
    client = start(lab, case_dir, bed, "--default-route", "--kill-switch")
    lab.wait_for_ppp(timeout=60, proc=client)
    wait_status(lab, "up", kill_switch=True, routes=["0.0.0.0/1", "128.0.0.0/1"])
    assert "dev ppp0" in route_get(lab, OUTSIDE)
    lab.guest.kill(client.pid, signal.SIGKILL)
    # pppd loses its line, runs ip-down (our hook undoes the link's routes and DNS) and ends.
    assert lab.wait_for_no_ppp(timeout=30)
    wait_status(lab, "down")
    assert blocked(route_get(lab, OUTSIDE))  # not in the clear
    assert blocked(route_get(lab, OUTSIDE6))
    assert route_get(lab, SERVER_V4).startswith(f"{SERVER_V4} dev veth-cli")  # excepted
    assert Path(bed["paths"].resolv_conf).read_text() == RESOLV
    for _ in range(2):  # what sstp-helper down calls; idempotent
        undo = lab.guest.run(
            [str(HOST_PYTHON), "-m", "sstp_pppd.host", "undo", NAME],
            ns="cli", env=bed["paths"].as_env(), log_dir=case_dir, name="undo",
        )  # fmt: skip
        assert undo.returncode == 0, undo.stderr
    assert_clean(lab, bed, before)


def test_kill_9_of_transport_and_pppd_then_undo(
    lab: Lab, case_dir: Path, bed: dict[str, Any]
) -> None:
    server(lab, case_dir)
    before = tables(lab)
    client = start(lab, case_dir, bed, "--default-route", "--route", "10.99.0.0/24")
    lab.wait_for_ppp(timeout=60, proc=client)
    wait_status(lab, "up", dns=[DNS_SERVER])
    assert Path(bed["paths"].resolv_conf).read_text() != RESOLV
    pppd = [p for p in lab.guest.descendants(client.pid) if p.argv[0].endswith("pppd")]
    assert pppd
    # The transport first: killed second, it could notice pppd's end and clean up.
    lab.guest.kill(client.pid, signal.SIGKILL)
    for p in pppd:
        lab.guest.kill(p.pid, signal.SIGKILL)
    assert lab.wait_for_no_ppp(timeout=30)
    time.sleep(1)
    assert tables(lab) != before  # the server route is left: nobody ran to remove it
    undo = lab.guest.run(
        [str(HOST_PYTHON), "-m", "sstp_pppd.host", "undo", NAME],
        ns="cli", env=bed["paths"].as_env(), log_dir=case_dir, name="undo",
    )  # fmt: skip
    assert undo.returncode == 0, undo.stderr
    assert_clean(lab, bed, before)


def test_pty_mode_with_a_connection_file(lab: Lab, case_dir: Path, bed: dict[str, Any]) -> None:
    """``pppd call NAME`` as sstp-helper sets it up: the settings in NAME.conf, the
    transport in pppd's pty line, the hooks recognising the link by its ipparam."""
    paths: Paths = bed["paths"]
    save_connection(
        Connection(name=NAME, routes=("10.99.0.0/24",), dns=True, dns_domains=("corp.test",)),
        paths,
    )
    Path(paths.resolv_conf).write_text(RESOLV)
    lab.write_client_file(
        f"peers/{NAME}",
        f'pty "{SSTP_PPPD} --nolaunchpppd --ipparam {NAME} --ca-cert {lab.certs.ca.cert} '
        f'--log-stderr --log-level 4 {SERVER_NAME}"\n'
        f"name {USERNAME}\nremotename {NAME}\nipparam {NAME}\nlinkname {NAME}\nusepeerdns\n"
        + "".join(f"{o}\n" for o in CLIENT_PPPD)
        + "nodetach\ndebug\n",
    )
    lab.write_client_file("chap-secrets", f'"{USERNAME}" * "{PASSWORD}" *\n', 0o600)
    server(lab, case_dir)
    before = tables(lab)
    try:
        pppd = lab.guest.spawn(
            ["pppd", "call", NAME, "logfile", str(case_dir / "client-pppd.log")],
            ns="cli", log_dir=case_dir, name="pppd", env=paths.as_env(),
        )  # fmt: skip
        lab.wait_for_ppp(timeout=60, proc=pppd)
        st = wait_status(lab, "up", routes=["10.99.0.0/24"], dns=[DNS_SERVER])
        assert st["server_address"] == SERVER_V4
        assert "dev ppp0" in route_get(lab, BEHIND)
        assert lab.ping(BEHIND, log_dir=case_dir).returncode == 0
        assert "search corp.test" in Path(paths.resolv_conf).read_text()
        res = pppd.stop(20)
        assert res.returncode in (5, 16), res.returncode
        assert lab.wait_for_no_ppp()
        wait_status(lab, "down")
        deadline = time.monotonic() + 30  # the ip-down hook may outlive pppd
        while Path(paths.resolv_conf).read_text() != RESOLV and time.monotonic() < deadline:
            time.sleep(0.5)
        assert_clean(lab, bed, before)
    finally:
        Path(paths.conf_file(NAME)).unlink(missing_ok=True)
