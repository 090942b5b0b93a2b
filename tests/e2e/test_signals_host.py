"""A signal at any moment of a run with host changes: exit 11, and every change undone.

Launch mode with ``--ipparam`` and ``--save-server-route`` against 10.99.0.1, which cli
reaches through a gateway that exists only as a permanent neighbour entry (192.0.2.254):
the SYNs are dropped there, so the TCP connect stalls, while the pinned route to the
server (via 192.0.2.254) is a real change of cli's routing table. SIGTERM or SIGINT then
comes once the route is pinned, or after a delay from the start (in the imports, the
pinning, the connect). Afterwards the tables are as before and /run/sstp-pppd holds no
record of changes.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sstp_pppd.host.paths import Paths

from .bed import HOST_PYTHON, PASSWORD, SSTP_PPPD, USERNAME, Lab
from .uml import GuestProcess

pytestmark = pytest.mark.e2e

NAME = "sigvpn"
SERVER = "10.99.0.1"
GATEWAY = "192.0.2.254"
CLIENT_PPPD = ("noauth", "nodefaultroute", "noccp")
#: What may stay in /run/sstp-pppd/NAME after a clean undo (as test_routes.py allows).
LEFT_OK = {"status.json", "status.lock", "hooks.log", "lock", "link.lock"}


@pytest.fixture(scope="module")
def paths(lab: Lab) -> Iterator[Paths]:
    root = lab.run_dir / "signals-host"
    root.mkdir(exist_ok=True)
    lab.guest.sh(
        f"ip neigh replace {GATEWAY} lladdr 02:00:00:00:00:fe dev veth-cli nud permanent && "
        f"ip route add 10.99.0.0/24 via {GATEWAY} dev veth-cli",
        ns="cli",
    )
    lab.wait_for_dad()
    p = Paths(
        etc_dir=str(root / "etc-sstp-pppd"),
        run_dir="/run/sstp-pppd",
        resolv_conf=str(root / "resolv.conf"),
    )
    try:
        yield p
    finally:
        lab.guest.run(
            [str(HOST_PYTHON), "-m", "sstp_pppd.host", "undo", NAME], ns="cli", env=p.as_env()
        )
        lab.guest.sh(
            f"ip route del 10.99.0.0/24; ip neigh del {GATEWAY} dev veth-cli",
            ns="cli",
            check=False,
        )


def tables(lab: Lab) -> str:
    return lab.guest.sh("ip route show table all; ip -6 route show table all", ns="cli").stdout


def record_files(lab: Lab) -> set[str]:
    res = lab.guest.run(["ls", "-A", f"/run/sstp-pppd/{NAME}"])
    return set(res.stdout.split()) if res.returncode == 0 else set()


def start(lab: Lab, case: Path, paths: Paths) -> GuestProcess:
    pw = case / "password"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    argv = [str(SSTP_PPPD), "--log-level", "4", "--user", USERNAME, "--password-file", str(pw),
            "--insecure", "--connect-timeout", "120", "--ipparam", NAME,
            "--save-server-route", SERVER, "--", *CLIENT_PPPD]  # fmt: skip
    return lab.guest.spawn(argv, ns="cli", log_dir=case, name="sstp-pppd", env=paths.as_env())


def wait_pinned(lab: Lab, before: str, client: GuestProcess, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = tables(lab)
        if now != before:
            return now
        assert client.poll() is None, client.poll()
        time.sleep(0.2)
    raise AssertionError("the route to the server was never pinned")


def ended(client: GuestProcess, *, ours: bool) -> None:
    res = client.wait(30)
    assert "Traceback" not in res.stderr, res.stderr
    if not ours and res.returncode < 0:
        assert not res.stderr.strip(), res.stderr  # killed before Python ran a line of ours
        return
    assert res.returncode == 11, (res.returncode, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert "interrupted" in lines[-1], res.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_with_the_route_pinned_undoes_it(
    lab: Lab, case_dir: Path, paths: Paths, signum: int
) -> None:
    before = tables(lab)
    client = start(lab, case_dir, paths)
    pinned = wait_pinned(lab, before, client)
    assert f"{SERVER} via {GATEWAY}" in pinned, pinned
    assert "record.json" in record_files(lab)
    client.kill(signum)
    ended(client, ours=True)
    assert tables(lab) == before
    assert record_files(lab) <= LEFT_OK


@pytest.mark.parametrize("delay", [0.3, 0.7, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5, 1.7, 2.2, 3.0])
def test_a_signal_after_a_delay_leaves_nothing(
    lab: Lab, case_dir: Path, paths: Paths, delay: float
) -> None:
    before = tables(lab)
    client = start(lab, case_dir, paths)
    time.sleep(delay)
    client.kill(signal.SIGTERM)
    ended(client, ours=False)
    assert tables(lab) == before
    assert record_files(lab) <= LEFT_OK
