"""Proof of the end-to-end bed with the reference client, sstpc 1.0.18.

If sstpc with sstp-server 0.7.2 connects, binds and moves data here, a failure
of our client in the same bed is our client's. sstpc stalls after a TLS
handshake that never had to wait for the server (see :meth:`Lab.link_delay`),
so every case here runs behind a 2 ms delay on the server's veth. A connect
that still fails before CONNECT ACK is retried once, with a warning, and the
attempt count shows in the timings.
"""

from __future__ import annotations

import signal
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .bed import PASSWORD, TUNNEL_LOCAL, USERNAME, Lab, PppLink, Timings
from .certs import SERVER_NAME, SERVER_NAME6, SERVER_V4, SERVER_V6
from .uml import GuestError, GuestProcess

pytestmark = pytest.mark.e2e

# sstpc launch mode: everything after "--" goes to the pppd it starts.
SSTPC_PPPD = ["noauth", "refuse-eap", "refuse-pap", "refuse-chap", "refuse-mschap",
              "nodefaultroute", "noccp", "debug"]  # fmt: skip


@pytest.fixture(autouse=True)
def _latency(lab: Lab) -> Iterator[None]:
    with lab.link_delay(2):
        yield


def sstpc(lab: Lab, d: Path, server: str, *tls: str) -> GuestProcess:
    argv = [
        "sstpc", *tls, "--user", USERNAME, "--password", PASSWORD,
        "--log-stderr", "--log-level", "4", server,
        "--", *SSTPC_PPPD, "logfile", str(d / "client-pppd.log"),
    ]  # fmt: skip
    return lab.guest.spawn(argv, ns="cli", log_dir=d, name="sstpc")


def connect(
    lab: Lab,
    case_dir: Path,
    start_client: Callable[[Path], GuestProcess],
    timings: Timings,
    *,
    listen: str = SERVER_V4,
    client_log: str = "sstpc.err",
    timeout: float = 30.0,
) -> tuple[GuestProcess, PppLink]:
    """Start sstpd and the client until ppp0 is up in cli.

    A failure before CONNECT ACK is retried once (sstpc's TLS stall, see
    :meth:`Lab.link_delay`, should no longer happen behind the delay)."""
    for attempt in (1, 2):
        d = case_dir if attempt == 1 else case_dir / f"attempt{attempt}"
        timings.steps["attempts"] = attempt
        with timings.step("server start"):
            lab.server.start(d, listen=listen)
        with timings.step("connect"):
            client = start_client(d)
            try:
                return client, lab.wait_for_ppp(timeout=timeout, proc=client)
            except GuestError as e:
                failure = e
        log = (d / client_log).read_text(errors="replace") if (d / client_log).exists() else ""
        client.stop(5.0)
        lab.server.stop()
        lab.guest.kill_all(grace=2.0)
        # Past CONNECT ACK, TLS worked: that failure is not sstpc's known one.
        if attempt == 2 or "CONNECT ACK" in log:
            raise failure
        warnings.warn(
            f"sstpc failed before CONNECT ACK (TLS): {failure}; retried once", stacklevel=1
        )
    raise AssertionError("unreachable")


def only_init_and_agent(lab: Lab) -> list[str]:
    """The guest processes other than PID 1 and the command server."""
    return [
        " ".join(p.argv)
        for p in lab.guest.processes()
        if p.pid != 1 and not any(a.endswith("agent.py") for a in p.argv)
    ]


def test_guest_api(lab: Lab, case_dir: Path) -> None:
    g = lab.guest
    r = g.run(["cat"], ns="cli", stdin_data="secret\n", log_dir=case_dir)
    assert (r.returncode, r.stdout) == (0, "secret\n")
    (case_dir / "pw").write_text("from a file")
    r = g.run(["cat"], ns="srv", stdin_path=case_dir / "pw", log_dir=case_dir)
    assert r.stdout == "from a file"
    r = g.sh('echo "$E2E_X $PWD" >&2; exit 3', env={"E2E_X": "x1"}, cwd="/etc", check=False)
    assert (r.returncode, r.stderr) == (3, "x1 /etc\n")
    p = g.spawn(["sleep", "60"], ns="cli")
    assert p.poll() is None
    assert p.kill(signal.SIGTERM)
    assert p.wait(10).returncode == -signal.SIGTERM
    assert not p.kill()
    with pytest.raises(GuestError):
        g.spawn(["/nonexistent/program"])


def test_topology(lab: Lab, case_dir: Path) -> None:
    g = lab.guest
    assert g.run(["ping", "-c1", "-W3", SERVER_V4], ns="cli").returncode == 0
    assert g.run(["ping", "-c1", "-W3", SERVER_V6], ns="cli").returncode == 0
    # The client sees its own /etc/hosts and /etc/ppp, the server its tmpfs.
    r = g.run(["getent", "ahostsv4", SERVER_NAME], ns="cli").check()
    assert r.stdout.split()[0] == SERVER_V4
    r = g.run(["getent", "ahostsv6", SERVER_NAME6], ns="cli").check()
    assert r.stdout.split()[0] == SERVER_V6
    lab.write_client_file("peers/marker", "# marker\n")
    assert g.run(["cat", "/etc/ppp/peers/marker"], ns="cli").stdout == "# marker\n"
    # While a guest process holds a shared file open, the guest keeps seeing
    # its old content (README): new content goes under a new name then.
    holder = g.spawn(["sh", "-c", "exec 3</etc/ppp/peers/marker; exec sleep 60"], ns="cli")
    lab.write_client_file("peers/marker2", "# marker 2\n")
    assert g.run(["cat", "/etc/ppp/peers/marker2"], ns="cli").stdout == "# marker 2\n"
    holder.stop()
    lab.write_client_file("peers/marker", "# market\n")
    assert g.run(["cat", "/etc/ppp/peers/marker"], ns="cli").stdout == "# market\n"
    assert g.run(["test", "-e", "/etc/ppp/peers/marker"], ns="srv").returncode == 1
    r = g.sh("stat -f -c %T /etc/ppp; wc -c < /etc/ppp/options", ns="srv")
    assert r.stdout.split() == ["tmpfs", "0"]
    assert g.run(["test", "-c", "/dev/ppp"]).returncode == 0
    assert not Path("/etc/ppp/peers/marker").exists()


def test_sstpc_full_case(lab: Lab, case_dir: Path, timings: Timings) -> None:
    ca = str(lab.certs.ca.cert)
    client, link = connect(
        lab, case_dir, lambda d: sstpc(lab, d, SERVER_NAME, "--ca-cert", ca), timings
    )
    assert link.peer == TUNNEL_LOCAL
    assert link.local.startswith("10.66.0.")
    with timings.step("binding"):
        lab.server.wait_for_log("Crypto Binding is valid.", 15)
    lab.check_link(link, nbytes=4 << 20, log_dir=case_dir, timings=timings)
    with timings.step("disconnect"):
        res = client.stop(10.0)
        assert lab.wait_for_no_ppp()
    assert res.returncode == 0, res.stderr
    lab.server.wait_for_log("Connection finished.", 15)
    with timings.step("server stop"):
        lab.server.stop()
    assert only_init_and_agent(lab) == []


def test_sstpc_ipv6(lab: Lab, case_dir: Path, timings: Timings) -> None:
    client, link = connect(
        lab, case_dir, lambda d: sstpc(lab, d, SERVER_NAME6, "--cert-warn"), timings,
        listen=SERVER_V6,
    )  # fmt: skip
    lab.server.wait_for_log("Crypto Binding is valid.", 15)
    assert f"/{SERVER_V6.replace('::', ':')}" in lab.server.log or "2001:db8::2" in lab.server.log
    assert lab.ping(link.peer, log_dir=case_dir).returncode == 0
    with timings.step("disconnect"):
        client.stop(10.0)
        assert lab.wait_for_no_ppp()


def test_sstpc_rejects_wrong_ca(lab: Lab, case_dir: Path, timings: Timings) -> None:
    """sstpc, given the unrelated CA, refuses the lab server: the negative certs are wrong."""
    other = str(lab.certs.other_ca.cert)
    for attempt in (1, 2):
        d = case_dir if attempt == 1 else case_dir / "attempt2"
        lab.server.start(d)
        client = sstpc(lab, d, SERVER_NAME, "--ca-cert", other)
        try:
            with timings.step("refused"):
                res = client.wait(30)
        except TimeoutError:
            client.stop(5.0)
            res = None
        lab.server.stop()
        if res is not None and "SSL certificate verification failed" in res.stderr:
            break
        if attempt == 2:
            pytest.fail(f"sstpc did not refuse the certificate: {res and res.stderr}")
        warnings.warn("sstpc hung or quit in the TLS handshake; retried once", stacklevel=1)
    assert res is not None
    assert res.returncode != 0
    assert "CONNECT ACK" not in res.stderr
    assert "unable to get local issuer certificate" in res.stderr


def test_pppd_call_pty_mode(lab: Lab, case_dir: Path, timings: Timings) -> None:
    """``pppd call NAME`` with a peers file and chap-secrets in the client's /etc/ppp,
    sstpc in pty mode and its plugin giving pppd's keys: as our client will run."""
    lab.write_client_file(
        "peers/lab",
        f'pty "sstpc --ipparam lab --nolaunchpppd --cert-warn --log-stderr --log-level 4 '
        f'{SERVER_NAME}"\n'
        "plugin sstp-pppd-plugin.so\nsstp-sock /var/run/sstpc/sstpc-lab\n"
        f"name {USERNAME}\nremotename sstpd\n"
        "noauth\nrefuse-eap\nrefuse-pap\nrefuse-chap\nrefuse-mschap\n"
        "nodefaultroute\nnoccp\nnodetach\ndebug\n",
    )
    lab.write_client_file("chap-secrets", f'"{USERNAME}" * "{PASSWORD}" *\n', 0o600)
    pppd, link = connect(
        lab,
        case_dir,
        lambda d: lab.pppd_call("lab", "logfile", str(d / "client-pppd.log"), log_dir=d),
        timings,
        client_log="client-pppd.log",
    )
    lab.server.wait_for_log("Crypto Binding is valid.", 15)
    assert lab.ping(link.peer, log_dir=case_dir).returncode == 0
    with timings.step("disconnect"):
        res = pppd.stop(15.0)
        assert lab.wait_for_no_ppp()
    assert res.returncode in (0, 5, 16), res.returncode  # 5: killed by a signal, 16: hangup
    lab.server.stop()
    assert only_init_and_agent(lab) == []
    # sstpc leaves its key socket behind when pppd hangs up on it: not ours to keep.
    lab.guest.sh("rm -f /var/run/sstpc/sstpc-lab", ns="cli")
