"""Launch mode with ``--priv-user nobody``: the relay gives up root, a root keeper stays.

Real pppd 2.4.9 and sstp-server 0.7.2 in User-Mode Linux. While the tunnel is up,
/proc/PID/status shows the relay as nobody:nogroup (every uid and gid), its one child
besides pppd (the privileged part) and pppd as root, and pings cross the tunnel. At the
end nothing is left: no pppd, no keeper, no key socket (in /var/run/sstpc, which only root
may write), no pinned server route, no record of host changes. The second case stops
pppd (SIGSTOP: a pppd that cannot act on SIGTERM) and checks the SIGKILL after 5 s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sstp_pppd.host.paths import Paths

from .bed import HOST_PYTHON, SSTP_PPPD, USERNAME, Lab, SstpServer
from .certs import SERVER_NAME
from .test_transport import CLIENT_PPPD, leftovers, password_file
from .uml import GuestProcess

pytestmark = pytest.mark.e2e

NAME = "privvpn"
NOBODY = 65534  # nobody and nogroup on Debian
KEY_SOCKET = f"/var/run/sstpc/sstpc-{NAME}"
SERVER_ROUTE = "192.0.2.1"


@pytest.fixture
def paths(lab: Lab, case_dir: Path) -> Iterator[Paths]:
    """Host paths of this case (the guest's /etc is this machine's); undone afterwards."""
    p = Paths(etc_dir=str(case_dir / "etc-sstp-pppd"), run_dir="/run/sstp-pppd")
    yield p
    lab.guest.run([str(HOST_PYTHON), "-m", "sstp_pppd.host", "undo", NAME], ns="cli",
                  env=p.as_env())  # fmt: skip


def ids(lab: Lab, pid: int) -> dict[str, list[int]]:
    """Uid and Gid (real, effective, saved, filesystem) and Groups of /proc/PID/status."""
    res = lab.guest.run(["cat", f"/proc/{pid}/status"])
    assert res.returncode == 0, res.stderr
    fields = dict(line.split(":", 1) for line in res.stdout.splitlines() if ":" in line)
    return {k: [int(x) for x in fields[k].split()] for k in ("Uid", "Gid", "Groups")}


def routes(lab: Lab) -> str:
    """cli's IPv4 routes (the IPv6 link-local ones come and go with DAD after the boot)."""
    return lab.guest.sh("ip -4 route show table all", ns="cli").stdout


def run_files(lab: Lab) -> list[str]:
    res = lab.guest.run(["ls", "-A", f"/run/sstp-pppd/{NAME}"])
    return sorted(res.stdout.split()) if res.returncode == 0 else []


def start(lab: Lab, case: Path, paths: Paths) -> GuestProcess:
    """sstp-pppd in launch mode as test_transport.launch() starts it, with --priv-user."""
    argv = [str(SSTP_PPPD), "--log-level", "4", "--user", USERNAME,
            "--password-file", str(password_file(case)), "--ca-cert", str(lab.certs.ca.cert),
            "--priv-user", "nobody", "--ipparam", NAME, "--save-server-route", SERVER_NAME,
            "--", *CLIENT_PPPD, "logfile", str(case / "client-pppd.log"), "debug"]  # fmt: skip
    return lab.guest.spawn(argv, ns="cli", log_dir=case, name="sstp-pppd", env=paths.as_env())


def split(lab: Lab, client: GuestProcess) -> tuple[int, int]:
    """(keeper, pppd): the relay's two children, once the drop is done."""
    deadline = time.monotonic() + 30
    while True:
        children = [p for p in lab.guest.processes() if p.ppid == client.pid]
        pppd = [p for p in children if p.argv and p.argv[0].endswith("pppd")]
        keeper = [p for p in children if any(a.endswith("/sstp-pppd") for a in p.argv[:2])]
        if pppd and keeper and ids(lab, client.pid)["Uid"][0] == NOBODY:
            return keeper[0].pid, pppd[0].pid
        assert time.monotonic() < deadline, f"no split: {children}"
        time.sleep(0.3)


def assert_clean(lab: Lab, before: str) -> None:
    assert leftovers(lab) == []
    assert lab.guest.run(["test", "-e", KEY_SOCKET]).returncode != 0, "key socket left"
    assert routes(lab) == before
    assert set(run_files(lab)) <= {"status.json", "status.lock", "hooks.log", "lock", "link.lock"}
    status = json.loads(lab.guest.run(["cat", f"/run/sstp-pppd/{NAME}/status.json"]).stdout)
    assert status["state"] == "down", status


def test_relay_unprivileged_while_connected_and_nothing_left_after(
    lab: Lab, case_dir: Path, sstp_server: SstpServer, paths: Paths
) -> None:
    before = routes(lab)
    client = start(lab, case_dir, paths)
    link = lab.wait_for_ppp(timeout=60, proc=client)
    keeper, pppd = split(lab, client)
    relay = ids(lab, client.pid)
    assert relay["Uid"] == [NOBODY] * 4, relay
    assert relay["Gid"] == [NOBODY] * 4, relay
    assert relay["Groups"] == [], relay
    assert ids(lab, keeper)["Uid"] == [0] * 4
    assert ids(lab, pppd)["Uid"][1] == 0  # pppd stays root
    # What the keeper will have to undo is there, in places only root may change.
    assert lab.guest.run(["test", "-S", KEY_SOCKET]).returncode == 0
    assert SERVER_ROUTE in lab.guest.run(["ip", "route", "show", f"{SERVER_ROUTE}/32"],
                                         ns="cli").stdout  # fmt: skip
    sstp_server.wait_for_log("Crypto Binding is valid.", 15)
    assert lab.ping(link.peer, count=3, log_dir=case_dir).returncode == 0
    res = client.stop(30)
    assert res.returncode == 0, res.stderr
    assert "dropped privileges to nobody" in res.stderr
    assert "could not remove the key socket" not in res.stderr
    assert "Traceback" not in res.stderr
    assert lab.wait_for_no_ppp()
    assert_clean(lab, before)


def test_pppd_that_does_not_end_on_sigterm_is_killed_after_5_s(
    lab: Lab, case_dir: Path, sstp_server: SstpServer, paths: Paths
) -> None:
    before = routes(lab)
    client = start(lab, case_dir, paths)
    lab.wait_for_ppp(timeout=60, proc=client)
    _, pppd = split(lab, client)
    assert lab.guest.kill(pppd, 19)  # SIGSTOP: it cannot act on SIGTERM any more
    t0 = time.monotonic()
    res = client.stop(40)
    took = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    assert "pppd did not end within 5 s of SIGTERM: killing it" in res.stderr, res.stderr
    assert "pppd was killed by signal 9" in res.stderr, res.stderr
    assert 5 <= took < 30, took
    assert_clean(lab, before)


def test_relay_killed_the_keeper_still_ends_pppd_and_undoes(
    lab: Lab, case_dir: Path, sstp_server: SstpServer, paths: Paths
) -> None:
    """kill -9 of the relay: the keeper sees its pipe end, ends pppd, undoes, reports."""
    before = routes(lab)
    client = start(lab, case_dir, paths)
    lab.wait_for_ppp(timeout=60, proc=client)
    keeper, _ = split(lab, client)
    assert lab.guest.kill(client.pid, 9)
    deadline = time.monotonic() + 20
    while any(p.pid == keeper for p in lab.guest.processes()):
        assert time.monotonic() < deadline, "the keeper did not finish"
        time.sleep(0.3)
    assert lab.wait_for_no_ppp()
    assert_clean(lab, before)
    status = json.loads(lab.guest.run(["cat", f"/run/sstp-pppd/{NAME}/status.json"]).stdout)
    assert status["last_error"] == "the transport ended without a report", status
