"""The installed pppd hooks, run as pppd would run them, and the route scripts' contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sstp_pppd.host import hooks
from sstp_pppd.host.apply import undo_session_now
from sstp_pppd.host.connconf import Connection, save_connection
from sstp_pppd.host.paths import Paths
from sstp_pppd.host.status import read_status

ORIGINAL = "nameserver 192.0.2.53\n"
#: What pppd sets for its scripts (it clears the rest of the environment).
PPPD_ENV = {"IFNAME": "lo", "IPLOCAL": "10.66.0.2", "IPREMOTE": "10.66.0.1",
            "USEPEERDNS": "1", "DNS1": "10.66.0.1", "PPPD_PID": "4242"}  # fmt: skip
ARGS = ["lo", "/dev/pts/3", "0", "10.66.0.2", "10.66.0.1"]


def setup(tmp_path: Path) -> tuple[Paths, Path]:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(ORIGINAL)
    paths = Paths(
        etc_dir=str(tmp_path / "etc"), run_dir=str(tmp_path / "run"), resolv_conf=str(resolv)
    )
    hooks.install_hooks(str(tmp_path / "ppp"), python=sys.executable, paths=paths)
    return paths, resolv


def run_hook(
    tmp_path: Path, event: str, ipparam: str, ifname: str = "lo"
) -> subprocess.CompletedProcess[str]:
    """The hook as pppd runs it; ``lo`` stands for pppN (it exists in every namespace)."""
    hook = tmp_path / "ppp" / f"{event}.d" / hooks.HOOK_NAME
    return subprocess.run(
        [str(hook), ifname, *ARGS[1:], ipparam],
        env=PPPD_ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def record_script(tmp_path: Path, paths: Paths) -> Path:
    """A route script of connection ``work`` that writes its calls down; where it does."""
    scripts = Path(paths.scripts_dir("work"))
    scripts.mkdir(parents=True)
    seen = tmp_path / "seen.jsonl"
    script = scripts / "10-record"
    script.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"open({str(seen)!r}, 'a').write(json.dumps([sys.argv[1:], dict(os.environ)]) + '\\n')\n"
    )
    script.chmod(0o755)
    return seen


def calls_of(seen: Path) -> list[tuple[list[str], str]]:
    return [(c[0], c[1]["SSTP_FAMILY"]) for c in map(json.loads, seen.read_text().splitlines())]


def test_install_writes_four_executable_hooks(tmp_path: Path) -> None:
    written = hooks.install_hooks(str(tmp_path), python="/usr/bin/python3", paths=Paths())
    assert [Path(p).parent.name for p in written] == list(hooks.HOOK_DIRS)
    for p in written:
        assert os.stat(p).st_mode & 0o777 == 0o755
        text = Path(p).read_text()
        assert "exec /usr/bin/python3 -I -m sstp_pppd.host.hookmain" in text
        assert "SSTP_PPPD_ETC" not in text  # default paths: nothing exported
    assert len(hooks.uninstall_hooks(str(tmp_path))) == 4


def test_a_link_that_is_not_ours_is_not_touched(tmp_path: Path) -> None:
    paths, resolv = setup(tmp_path)
    for ipparam in ("", "someone-else", "../etc"):
        res = run_hook(tmp_path, "ip-up", ipparam)
        assert res.returncode == 0, res.stderr
    assert resolv.read_text() == ORIGINAL
    assert not Path(paths.run_dir).exists()


def test_up_and_down_with_dns_and_a_route_script(tmp_path: Path) -> None:
    paths, resolv = setup(tmp_path)
    save_connection(Connection(name="work", dns=True, dns_domains=("corp.example",)), paths)
    seen = record_script(tmp_path, paths)
    scripts = Path(paths.scripts_dir("work"))
    (scripts / "ignored.sh").write_text("#!/bin/sh\nexit 1\n")  # run-parts skips dotted names
    (scripts / "ignored.sh").chmod(0o755)

    res = run_hook(tmp_path, "ip-up", "work")
    assert res.returncode == 0, res.stderr + Path(paths.state_dir("work"), "hooks.log").read_text()
    assert "nameserver 10.66.0.1" in resolv.read_text()
    status = read_status("work", paths)
    assert status is not None
    assert (status["state"], status["interface"], status["dns"]) == ("up", "lo", ["10.66.0.1"])
    assert status["dns_backend"] == "file"

    res = run_hook(tmp_path, "ip-down", "work")
    assert res.returncode == 0, res.stderr
    assert resolv.read_text() == ORIGINAL
    assert read_status("work", paths)["state"] == "down"  # type: ignore[index]

    calls = [json.loads(line) for line in seen.read_text().splitlines()]
    assert [argv for argv, _ in calls] == [["pre-up"], ["up"], ["down"], ["post-down"]]
    env = calls[1][1]
    expected = {
        "reason": "up",
        "SSTP_PPPD_SCRIPT_VERSION": "1",
        "SSTP_CONNECTION": "work",
        "SSTP_FAMILY": "4",
        "SSTP_IFNAME": "lo",
        "SSTP_LOCAL_ADDRESS": "10.66.0.2",
        "SSTP_PEER_ADDRESS": "10.66.0.1",
        "SSTP_DNS": "10.66.0.1",
        "SSTP_DNS_DOMAINS": "corp.example",
        "SSTP_ROUTES": "",
        "SSTP_DEFAULT_ROUTE": "0",
        "SSTP_KILL_SWITCH": "0",
        "SSTP_PPPD_PID": "4242",
    }
    assert {k: env.get(k) for k in expected} == expected
    assert set(env) <= {*expected, "SSTP_SERVER", "SSTP_SERVER_ADDRESS", "PATH", "LC_CTYPE"}


def test_undo_command_after_a_lost_ip_down(tmp_path: Path) -> None:
    """pppd killed with -9 runs no ip-down: ``python -m sstp_pppd.host undo NAME`` cleans up,
    and gives the scripts the down and post-down the hook would have."""
    paths, resolv = setup(tmp_path)
    save_connection(Connection(name="work", dns=True), paths)
    seen = record_script(tmp_path, paths)
    assert run_hook(tmp_path, "ip-up", "work").returncode == 0
    assert resolv.read_text() != ORIGINAL
    env = {**os.environ, **paths.as_env()}
    for _ in range(2):  # idempotent
        res = subprocess.run(
            [sys.executable, "-m", "sstp_pppd.host", "undo", "work"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert resolv.read_text() == ORIGINAL
    assert [argv for argv, _ in calls_of(seen)] == [["pre-up"], ["up"], ["down"], ["post-down"]]
    assert sorted(p.name for p in Path(paths.state_dir("work")).iterdir()) == [
        "hooks.log",
        "link.lock",
        "lock",
        "status.json",
        "status.lock",
    ]


def test_a_link_gone_while_ip_up_started_is_undone_at_once(tmp_path: Path) -> None:
    """pppd does not wait for ip-up: if the link went meanwhile, its ip-down may have run
    already, so ip-up must not leave DNS set for a link that no longer exists."""
    paths, resolv = setup(tmp_path)
    save_connection(Connection(name="work", dns=True), paths)
    res = run_hook(tmp_path, "ip-up", "work", ifname="ppp99")
    assert res.returncode == 1
    assert resolv.read_text() == ORIGINAL
    assert "ppp99 is gone" in Path(paths.state_dir("work"), "hooks.log").read_text()


def test_the_transports_exit_ends_a_link_whose_ip_down_comes_late(tmp_path: Path) -> None:
    """pppd gave up waiting for ip-down (child-timeout, or a signal) and the transport undid
    at its exit first: the scripts still get down and post-down, once, and the late hook
    finds the end done."""
    paths, resolv = setup(tmp_path)
    conn = Connection(name="work", dns=True, dns_domains=("corp.example",))
    save_connection(conn, paths)
    seen = record_script(tmp_path, paths)
    assert run_hook(tmp_path, "ip-up", "work").returncode == 0
    assert resolv.read_text() != ORIGINAL

    assert undo_session_now(conn, keep_kill_switch=False, paths=paths) == []
    assert resolv.read_text() == ORIGINAL
    ends = [(["pre-up"], "4"), (["up"], "4"), (["down"], "4"), (["post-down"], "4")]
    assert calls_of(seen) == ends
    env = json.loads(seen.read_text().splitlines()[2])[1]
    assert (env["SSTP_IFNAME"], env["SSTP_LOCAL_ADDRESS"], env["SSTP_DNS"]) == (
        "lo",
        "10.66.0.2",
        "10.66.0.1",
    )

    res = run_hook(tmp_path, "ip-down", "work")
    assert res.returncode == 0, res.stderr
    assert calls_of(seen) == ends  # no second down
    assert resolv.read_text() == ORIGINAL
    assert read_status("work", paths)["state"] == "down"  # type: ignore[index]


def test_an_ip_down_that_came_in_time_is_not_repeated_at_the_transports_exit(
    tmp_path: Path,
) -> None:
    paths, resolv = setup(tmp_path)
    conn = Connection(name="work", dns=True)
    save_connection(conn, paths)
    seen = record_script(tmp_path, paths)
    assert run_hook(tmp_path, "ip-up", "work").returncode == 0
    assert run_hook(tmp_path, "ip-down", "work").returncode == 0
    assert undo_session_now(conn, keep_kill_switch=False, paths=paths) == []
    assert resolv.read_text() == ORIGINAL
    assert [argv for argv, _ in calls_of(seen)] == [["pre-up"], ["up"], ["down"], ["post-down"]]
