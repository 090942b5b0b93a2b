"""sstp-helper end to end: add, up, status, down with the real pppd and sstp-server 0.7.2.

The helper runs in the cli namespace as a user would run it: ``add`` writes the client's
private /etc/ppp (peers/NAME and chap-secrets), ``up`` starts ``pppd call NAME`` and
follows it, ``down`` stops it. The connection's settings go to a per-case directory
(``SSTP_PPPD_ETC``), since the guest's /etc is this machine's. The defaults ``add``
writes are what pppd runs with: no pppd option is given, only a log file and ``debug``
through the client's /etc/ppp/options.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from .bed import HOST_PYTHON, PASSWORD, TUNNEL_LOCAL, USERNAME, Lab, SstpServer, Timings
from .certs import SERVER_NAME
from .test_transport import leftovers, one_error_line
from .uml import Result

pytestmark = pytest.mark.e2e

SSTP_HELPER = HOST_PYTHON.with_name("sstp-helper")
#: Not "lab": other modules of the same boot write peers/lab by hand, and ``add`` rightly
#: refuses to replace a peers file it did not write.
NAME = "helper-lab"
EXIT_OK, EXIT_AUTH = 0, 7


@pytest.fixture(scope="module", autouse=True)
def _restore_pppd_options(lab: Lab) -> Iterator[None]:
    """``add`` points the client's /etc/ppp/options at a case's log file: the modules
    that run after this one in the same boot get the empty file back."""
    yield
    lab.write_client_file("options", "")


def helper(
    lab: Lab, d: Path, *args: str, timeout: float = 90.0, stdin: str | None = None
) -> Result:
    """``sstp-helper ARGS`` in cli, its output in the case directory."""
    return lab.guest.run(
        [str(SSTP_HELPER), *args],
        ns="cli",
        env={"SSTP_PPPD_ETC": str(d / "etc-sstp-pppd")},
        timeout=timeout,
        log_dir=d,
        name=f"sstp-helper-{args[0]}",
        stdin_data=stdin,
    )


def add(lab: Lab, d: Path, password: str, *extra: str) -> Result:
    """``add NAME`` with the password on stdin (never in an argv)."""
    lab.write_client_file("options", f"logfile {d / 'client-pppd.log'}\ndebug\n")
    res = helper(lab, d, "add", NAME, "--server", SERVER_NAME, "--user", USERNAME,
                 "--ca-cert", str(lab.certs.ca.cert), "--ask-password", *extra,
                 stdin=password + "\n")  # fmt: skip
    assert res.returncode == EXIT_OK, res.stderr
    assert password not in res.stdout + res.stderr
    return res


def left_running(lab: Lab) -> list[str]:
    """The connection's processes still running: its pppd (``pppd call NAME``) or the
    transport, besides what :func:`leftovers` finds."""
    left = leftovers(lab)
    for p in lab.guest.processes():
        if p.argv and p.argv[0].endswith("pppd") and p.argv[1:3] == ["call", NAME]:
            left.append(" ".join(p.argv))
    return left


def status(lab: Lab, d: Path) -> dict[str, object]:
    res = helper(lab, d, "status", NAME, "--json")
    assert res.returncode == EXIT_OK, res.stderr
    data = json.loads(res.stdout)
    assert data["version"] == 1
    (entry,) = data["connections"]
    assert isinstance(entry, dict)
    return entry


def test_add_up_status_down(
    lab: Lab, case_dir: Path, sstp_server: SstpServer, timings: Timings
) -> None:
    add(lab, case_dir, PASSWORD)
    peers = (lab.guest.cli_etc_ppp / "peers" / NAME).read_text()
    assert f"remotename {NAME}" in peers and "refuse-eap" in peers
    secrets = (lab.guest.cli_etc_ppp / "chap-secrets").read_text()
    assert secrets.count(f'{USERNAME} {NAME} "{PASSWORD}" *') == 1

    with timings.step("up"):
        res = helper(lab, case_dir, "up", NAME, "--timeout", "60")
    assert res.returncode == EXIT_OK, res.stderr
    link = lab.wait_for_ppp(timeout=5)
    assert link.peer == TUNNEL_LOCAL
    lines = res.stderr.splitlines()
    assert lines[0] == f"{NAME}: starting pppd"
    assert lines[-1] == f"{NAME}: up (ppp0 {link.local} peer {link.peer})"
    # between them one line per stage reported (as many as the transport and hooks tell)
    steps = [int(m.group(1)) for line in lines[1:-1] if (m := re.search(r" \((\d)/8\)$", line))]
    assert len(steps) == len(lines) - 2 and steps == sorted(set(steps)), lines
    sstp_server.wait_for_log("Crypto Binding is valid.", 15)
    assert lab.ping(link.peer, log_dir=case_dir).returncode == 0

    with timings.step("up again"):
        again = helper(lab, case_dir, "up", NAME)
    assert again.returncode == EXIT_OK, again.stderr
    assert "already up" in again.stderr

    entry = status(lab, case_dir)
    assert entry["state"] == "up"
    assert entry["interface"] == "ppp0"
    assert (entry["local"], entry["peer"]) == (link.local, link.peer)
    assert entry["server"] == SERVER_NAME and entry["user"] == USERNAME
    assert isinstance(entry["pppd_pid"], int)
    assert isinstance(entry["rx_bytes"], int) and entry["rx_bytes"] > 0
    assert isinstance(entry["uptime"], float)

    with timings.step("down"):
        res = helper(lab, case_dir, "down", NAME)
    assert res.returncode == EXIT_OK, res.stderr
    assert lab.wait_for_no_ppp(timeout=5)
    sstp_server.wait_for_log("Received call disconnect request.", 10)
    assert left_running(lab) == []
    assert status(lab, case_dir)["state"] == "down"
    gone = lab.guest.run(["test", "-e", f"/run/ppp-{NAME}.pid"], ns="cli")
    assert gone.returncode == 1, "pppd's pid file was left behind"
    assert helper(lab, case_dir, "down", NAME).returncode == EXIT_OK  # not up: still 0


def test_wrong_password(
    lab: Lab, case_dir: Path, sstp_server: SstpServer, timings: Timings
) -> None:
    add(lab, case_dir, "not-the-password")
    timeout = 40.0
    with timings.step("refused"):
        res = helper(lab, case_dir, "up", NAME, "--timeout", str(timeout))
    assert res.returncode == EXIT_AUTH, res.stderr
    assert res.duration < timeout
    line = one_error_line(res.stderr)
    assert line.startswith(f"{NAME}: failed: ") and "authentication failed" in line
    assert "not-the-password" not in res.stderr + res.stdout
    assert left_running(lab) == []
    assert lab.wait_for_no_ppp(timeout=5)
    assert status(lab, case_dir)["state"] == "down"


def test_kill_9_then_down_and_up_again(
    lab: Lab, case_dir: Path, sstp_server: SstpServer, timings: Timings
) -> None:
    """pppd and the transport killed with -9: status says down, down tidies pppd's stale pid
    file, and the next up connects again."""
    add(lab, case_dir, PASSWORD)
    res = helper(lab, case_dir, "up", NAME, "--timeout", "60")
    assert res.returncode == EXIT_OK, res.stderr
    pppd = status(lab, case_dir)["pppd_pid"]
    assert isinstance(pppd, int)
    victims = [pppd, *(p.pid for p in lab.guest.descendants(pppd))]
    for pid in victims:
        lab.guest.kill(pid, signal.SIGKILL)
    assert lab.wait_for_no_ppp(timeout=10)
    assert status(lab, case_dir)["state"] == "down"
    stale = lab.guest.run(["test", "-e", f"/run/ppp-{NAME}.pid"], ns="cli")
    assert stale.returncode == 0, "kill -9 should have left pppd's pid file"
    res = helper(lab, case_dir, "down", NAME)
    assert res.returncode == EXIT_OK, res.stderr
    gone = lab.guest.run(["test", "-e", f"/run/ppp-{NAME}.pid"], ns="cli")
    assert gone.returncode == 1
    assert left_running(lab) == []
    # sstp-server 0.7.2 serves one session per process: a fresh one for the second up
    lab.server.stop()
    lab.server.start(case_dir / "again")
    with timings.step("up after kill -9"):
        res = helper(lab, case_dir, "up", NAME, "--timeout", "60")
    assert res.returncode == EXIT_OK, res.stderr
    assert helper(lab, case_dir, "down", NAME).returncode == EXIT_OK
    assert left_running(lab) == []


BEHIND = "10.98.0.1"  # on srv's lo: reachable from cli only through the tunnel


@pytest.fixture
def hooks(lab: Lab, case_dir: Path) -> Iterator[None]:
    """``sstp-helper install-hooks`` into cli's private /etc/ppp, with Debian's ip-up and
    friends beside them (they run the .d directories), and a network behind the server."""
    etc_ppp = lab.guest.cli_etc_ppp
    copied = []
    for script in ("ip-up", "ip-down", "ipv6-up", "ipv6-down"):
        shutil.copy2(f"/etc/ppp/{script}", etc_ppp / script)
        copied.append(etc_ppp / script)
    res = helper(lab, case_dir, "install-hooks")
    assert res.returncode == EXIT_OK, res.stderr
    installed = [Path(line.split(" ", 1)[1]) for line in res.stdout.splitlines()]
    assert len(installed) == 4
    lab.guest.sh(f"ip addr add {BEHIND}/24 dev lo", ns="srv")
    try:
        yield
    finally:
        lab.guest.sh(f"ip addr del {BEHIND}/24 dev lo", ns="srv", check=False)
        for f in [*copied, *(etc_ppp / p.relative_to("/etc/ppp") for p in installed)]:
            f.unlink(missing_ok=True)


def test_split_route_applied_by_the_hooks(
    lab: Lab, case_dir: Path, sstp_server: SstpServer, hooks: None, timings: Timings
) -> None:
    """With the hooks installed, up waits until they report the route applied; status shows
    it; the network behind the server answers only while the connection is up."""
    net = BEHIND.rsplit(".", 1)[0] + ".0/24"
    before = lab.guest.sh("ip route show table all", ns="cli").stdout
    add(lab, case_dir, PASSWORD, "--route", net)
    assert lab.ping(BEHIND, count=1, log_dir=case_dir).returncode != 0
    with timings.step("up with route"):
        res = helper(lab, case_dir, "up", NAME, "--timeout", "60")
    assert res.returncode == EXIT_OK, res.stderr
    entry = status(lab, case_dir)
    assert entry["state"] == "up" and entry["stage"] == "up"
    assert entry["routes"] == [net]
    got = lab.guest.sh(f"ip route get {BEHIND}", ns="cli").stdout
    assert " dev ppp0 " in got, got
    assert lab.ping(BEHIND, log_dir=case_dir).returncode == 0
    with timings.step("down"):
        res = helper(lab, case_dir, "down", NAME)
    assert res.returncode == EXIT_OK, res.stderr
    assert lab.wait_for_no_ppp(timeout=5)
    assert lab.guest.sh("ip route show table all", ns="cli").stdout == before
    assert left_running(lab) == []
