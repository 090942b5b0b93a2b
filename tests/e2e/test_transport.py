"""sstp-pppd end to end: real pppd, real sstp-server 0.7.2 verifying the crypto binding.

Every case runs in the one booted guest (the ``lab`` fixture), with a fresh sstpd per case
(sstp-server 0.7.2 serves one session per process). The server verifies the nonce, the
certificate hash and the Compound MAC (its pppd plugin dry run is checked by the bed), so
"Crypto Binding is valid." in its log proves our binding, not a lenient server.
"""

from __future__ import annotations

import hashlib
import signal
import ssl
from pathlib import Path

import pytest

from .bed import (
    PASSWORD,
    SSTP_PPPD,
    TUNNEL_LOCAL,
    USERNAME,
    Lab,
    PppLink,
    SstpServer,
    Timings,
)
from .certs import SERVER_NAME, SERVER_NAME6, SERVER_V6, WRONG_NAME
from .uml import GuestProcess, Result

pytestmark = pytest.mark.e2e

#: pppd options of a typical client: MS-CHAPv2 only, no routes, no compression.
CLIENT_PPPD = ("noauth", "refuse-eap", "refuse-pap", "refuse-chap", "refuse-mschap",
               "nodefaultroute", "noccp")  # fmt: skip

# Exit codes (sstp_pppd.errors.ExitCode), spelled out: the test checks the documented table.
EXIT_OK, EXIT_TLS, EXIT_AUTH, EXIT_LOST, EXIT_KEEPALIVE = 0, 4, 7, 10, 9


def password_file(d: Path, password: str = PASSWORD) -> Path:
    f = d / "password"
    f.write_text(password + "\n")
    f.chmod(0o600)
    return f


def launch(
    lab: Lab,
    d: Path,
    *args: str,
    server: str = SERVER_NAME,
    password: str = PASSWORD,
    pppd: tuple[str, ...] = CLIENT_PPPD,
) -> GuestProcess:
    """sstp-pppd in launch mode in the cli namespace, logging at level 4 to stderr."""
    argv = [str(SSTP_PPPD), "--log-level", "4", "--user", USERNAME,
            "--password-file", str(password_file(d, password)), *args, server,
            "--", *pppd, "logfile", str(d / "client-pppd.log"), "debug"]  # fmt: skip
    return lab.guest.spawn(argv, ns="cli", log_dir=d, name="sstp-pppd")


def leftovers(lab: Lab) -> list[str]:
    """Client processes still running in the guest: sstp-pppd, or a client pppd."""
    left = []
    for p in lab.guest.processes():
        argv = p.argv
        server_pppd = "/etc/ppp/options.sstpd" in argv
        if (
            any(a.endswith("/sstp-pppd") for a in argv[:2])
            or argv[:2] == ["pppd", "call"]
            or (
                len(argv) > 1
                and argv[0].endswith("pppd")
                and argv[1].startswith("/dev/pts/")
                and not server_pppd
            )
        ):
            left.append(" ".join(argv))
    return left


def one_error_line(stderr: str) -> str:
    """The last line of the client's stderr: its single error message."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "the client printed nothing"
    assert "Traceback" not in stderr
    return lines[-1]


def bound_ping_stop(lab: Lab, d: Path, client: GuestProcess, link: PppLink) -> Result:
    """The server accepted the binding, a ping crosses, SIGTERM ends the client with 0."""
    lab.server.wait_for_log("Crypto Binding is valid.", 15)
    assert lab.ping(link.peer, log_dir=d).returncode == 0
    res = client.stop(20)
    assert res.returncode == EXIT_OK, res.stderr
    return res


def test_launch_mode_full_case(
    lab: Lab, case_dir: Path, sstp_server: SstpServer, timings: Timings
) -> None:
    with timings.step("connect"):
        client = launch(lab, case_dir, "--ca-cert", str(lab.certs.ca.cert))
        link = lab.wait_for_ppp(timeout=60, proc=client)
    assert link.peer == TUNNEL_LOCAL
    sstp_server.wait_for_log("Crypto Binding is valid.", 15)
    lab.check_link(link, log_dir=case_dir, timings=timings)
    with timings.step("disconnect"):
        res = client.stop(20)
        assert lab.wait_for_no_ppp()
    assert res.returncode == EXIT_OK, res.stderr
    assert "SHA-256" in res.stderr
    sstp_server.wait_for_log("Received call disconnect request.", 10)
    assert PASSWORD not in res.stderr
    assert leftovers(lab) == []


def test_pty_mode_peers_file(
    lab: Lab, case_dir: Path, sstp_server: SstpServer, timings: Timings
) -> None:
    """pppd call NAME with ``pty "sstp-pppd --nolaunchpppd ..."``: no plugin, the binding
    keys come from chap-secrets, which the client reads like pppd does."""
    lab.write_client_file(
        "peers/lab",
        f'pty "{SSTP_PPPD} --nolaunchpppd --ipparam lab --ca-cert {lab.certs.ca.cert} '
        f'--log-stderr --log-level 4 {SERVER_NAME}"\n'
        f"name {USERNAME}\nremotename lab\nipparam lab\n"
        + "".join(f"{o}\n" for o in CLIENT_PPPD)
        + "nodetach\ndebug\n",
    )
    lab.write_client_file("chap-secrets", f'"{USERNAME}" * "{PASSWORD}" *\n', 0o600)
    with timings.step("connect"):
        pppd = lab.pppd_call("lab", "logfile", str(case_dir / "client-pppd.log"), log_dir=case_dir)
        link = lab.wait_for_ppp(timeout=60, proc=pppd)
    sstp_server.wait_for_log("Crypto Binding is valid.", 15)
    lab.check_link(link, nbytes=2 << 20, log_dir=case_dir, timings=timings)
    with timings.step("disconnect"):
        res = pppd.stop(20)
        assert lab.wait_for_no_ppp()
    assert res.returncode in (5, 16), res.returncode  # pppd: stopped by signal / hangup
    sstp_server.wait_for_log("Received call disconnect request.", 10)
    log = (case_dir / "client-pppd.log").read_text(errors="replace")
    assert "SSTP call connected" in log
    assert leftovers(lab) == []


def test_server_killed_mid_session(
    lab: Lab, case_dir: Path, sstp_server: SstpServer, timings: Timings
) -> None:
    client = launch(lab, case_dir, "--ca-cert", str(lab.certs.ca.cert))
    lab.wait_for_ppp(timeout=60, proc=client)
    assert sstp_server.proc is not None
    with timings.step("client notices"):
        # sstpd first, as in a crash: its pppd must not get to say goodbye through it.
        server_pppd = lab.guest.descendants(sstp_server.proc.pid)
        lab.guest.kill(sstp_server.proc.pid, signal.SIGKILL)
        for p in server_pppd:
            lab.guest.kill(p.pid, signal.SIGKILL)
        res = client.wait(150)
    assert res.returncode in (EXIT_LOST, EXIT_KEEPALIVE), res.stderr
    assert "the server" in one_error_line(res.stderr)
    assert lab.wait_for_no_ppp()
    assert leftovers(lab) == []


def test_wrong_password(
    lab: Lab, case_dir: Path, sstp_server: SstpServer, timings: Timings
) -> None:
    with timings.step("refused"):
        res = launch(
            lab, case_dir, "--ca-cert", str(lab.certs.ca.cert), password="not-the-password"
        ).wait(90)
    assert res.returncode == EXIT_AUTH, res.stderr
    assert "authentication failed" in one_error_line(res.stderr)
    assert "not-the-password" not in res.stderr
    assert leftovers(lab) == []


def test_wrong_ca(lab: Lab, case_dir: Path, sstp_server: SstpServer, timings: Timings) -> None:
    with timings.step("refused"):
        res = launch(lab, case_dir, "--ca-cert", str(lab.certs.other_ca.cert)).wait(60)
    assert res.returncode == EXIT_TLS, res.stderr
    line = one_error_line(res.stderr)
    assert "not issued by a CA" in line and "--ca-cert" in line
    assert "CALL_CONNECT_REQUEST" not in sstp_server.log
    assert leftovers(lab) == []


def test_wrong_hostname(
    lab: Lab, case_dir: Path, sstp_server: SstpServer, timings: Timings
) -> None:
    with timings.step("refused"):
        res = launch(lab, case_dir, "--ca-cert", str(lab.certs.ca.cert), server=WRONG_NAME).wait(60)
    assert res.returncode == EXIT_TLS, res.stderr
    line = one_error_line(res.stderr)
    assert f"not valid for the name '{WRONG_NAME}'" in line and "--host" in line


def test_insecure_with_self_signed_certificate(lab: Lab, case_dir: Path, timings: Timings) -> None:
    refused = case_dir / "refused"
    refused.mkdir()
    lab.server.start(refused, keypair=lab.certs.self_signed)
    res = launch(lab, refused).wait(60)
    assert res.returncode == EXIT_TLS, res.stderr
    assert "self-signed" in one_error_line(res.stderr)
    lab.server.stop()
    lab.server.start(case_dir, keypair=lab.certs.self_signed)
    with timings.step("connect"):
        client = launch(lab, case_dir, "--insecure")
        link = lab.wait_for_ppp(timeout=60, proc=client)
    res = bound_ping_stop(lab, case_dir, client, link)
    assert "NOT verified" in res.stderr


def test_ipv6_with_pinned_certificate(lab: Lab, case_dir: Path, timings: Timings) -> None:
    """An IPv6-only server name, its certificate pinned by SHA-256 (and its chain verified)."""
    lab.server.start(case_dir, listen=SERVER_V6)
    der = ssl.PEM_cert_to_DER_cert(Path(lab.certs.server.cert).read_text())
    pin = hashlib.sha256(der).hexdigest()
    with timings.step("connect"):
        client = launch(
            lab,
            case_dir,
            "--ca-cert",
            str(lab.certs.ca.cert),
            "--pin-sha256",
            pin,
            server=SERVER_NAME6,
        )
        link = lab.wait_for_ppp(timeout=60, proc=client)
    res = bound_ping_stop(lab, case_dir, client, link)
    assert "pinned" in res.stderr
