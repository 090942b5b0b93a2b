"""No secret anywhere a user or another process could read it, at the highest log level.

A real session in the guest at ``--log-level 6`` (hex dumps), in launch mode and in pty
mode, with a password used nowhere else. The secrets: the password, its NT hash and the
hash of that, the client's MPPE send and receive keys, the HLAK and the CMKs (SHA-1 and
SHA-256). The keys are computed from the password and the NT-Response in the client pppd's
``debug`` log (RFC 3079), and checked against the ones the server's pppd plugin logs, so the
needles are the session's real keys.

- During the session: every guest process's /proc/PID/cmdline and /proc/PID/environ (the
  scanner skips itself and its parent, the test's command server), and /run/sstp-pppd.
- After it: every file of the case (the client's stderr and stdout, its --log-file, the
  client pppd's logfile) and /run/sstp-pppd. Left out, because they are not the
  project's: the server's own logs (its plugin logs the keys by design), the password file
  and chap-secrets we wrote, and the needles file.

Each secret is looked for raw, and in hex, lower and upper case, also with the blanks and
colons of a hex dump squeezed out (tests/e2e/nosecret_scan.py). A last case plants the
password once, in a process's environment and in a log file, to show the scan finds it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sstp_pppd.core import crypto

from .bed import CHAP_SECRETS, HOST_PYTHON, SSTP_PPPD, USERNAME, Lab, Timings
from .certs import SERVER_NAME
from .nosecret_scan import scan_files
from .pluginlab import nt_response_from_log, server_view_keys

pytestmark = pytest.mark.e2e

#: Used nowhere else: whatever finds it found this test's secret.
SECRET = "Zq7~nosecret-Vw3x!9"
SCANNER = Path(__file__).with_name("nosecret_scan.py")
CLIENT_PPPD = ("noauth", "refuse-eap", "refuse-pap", "refuse-chap", "refuse-mschap",
               "nodefaultroute", "noccp")  # fmt: skip
#: Files of a case that are not the project's output (see the module docstring).
NOT_OURS = {"sstpd.err", "sstpd.out", "server-pppd.log", "password", "needles.json"}


def needles_of(nt_response: bytes) -> dict[str, bytes]:
    nt_hash = crypto.nt_password_hash(SECRET)
    send, recv = crypto.mschapv2_mppe_keys(SECRET, nt_response)
    hlak = crypto.hlak(send, recv)
    return {
        "password": SECRET.encode(),
        "nt-hash": nt_hash,
        "nt-hash-hash": crypto.md4(nt_hash),
        "mppe-send": send,
        "mppe-recv": recv,
        "hlak": hlak,
        "cmk-sha1": crypto.cmk(crypto.HASH_PROTOCOL_SHA1, hlak),
        "cmk-sha256": crypto.cmk(crypto.HASH_PROTOCOL_SHA256, hlak),
    }


def write_needles(d: Path, needles: dict[str, bytes]) -> Path:
    f = d / "needles.json"
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({k: v.hex() for k, v in needles.items()}, out)
    return f


def guest_scan(lab: Lab, needles_file: Path, *args: str) -> object:
    res = lab.guest.run(
        [str(HOST_PYTHON), "-I", "-S", str(SCANNER), str(needles_file), *args],
        ns="cli",
        timeout=60,
        check=True,
    )
    return json.loads(res.stdout)


def session_needles(lab: Lab, d: Path) -> dict[str, bytes]:
    """The secrets of the running session, the keys checked against the server's view."""
    log = (d / "client-pppd.log").read_text(errors="replace")
    needles = needles_of(nt_response_from_log(log))
    server_send, server_recv = server_view_keys(lab)
    assert (needles["mppe-send"], needles["mppe-recv"]) == (server_recv, server_send)
    return needles


def scan_during(lab: Lab, d: Path, needles_file: Path) -> None:
    procs = guest_scan(lab, needles_file, "procs")
    assert procs == [], procs
    run = guest_scan(lab, needles_file, "files", "/run/sstp-pppd")
    assert isinstance(run, dict) and run["hits"] == [], run


def scan_after(lab: Lab, d: Path, needles: dict[str, bytes], needles_file: Path) -> int:
    run = guest_scan(lab, needles_file, "files", "/run/sstp-pppd")
    assert isinstance(run, dict) and run["hits"] == [], run
    exclude = {p.resolve() for p in d.iterdir() if p.name in NOT_OURS}
    hits, count = scan_files(needles, [d], exclude)
    assert hits == [], hits
    return count


def start_server(lab: Lab, d: Path) -> None:
    lab.server.start(d, chap_secrets=f'"{USERNAME}" * "{SECRET}" *\n')


def test_launch_mode_leaks_no_secret(lab: Lab, case_dir: Path, timings: Timings) -> None:
    start_server(lab, case_dir)
    pw = case_dir / "password"
    pw.write_text(SECRET + "\n")
    pw.chmod(0o600)
    argv = [str(SSTP_PPPD), "--log-level", "6", "--ipparam", "nosecret-launch",
            "--user", USERNAME, "--password-file", str(pw),
            "--ca-cert", str(lab.certs.ca.cert), SERVER_NAME,
            "--", *CLIENT_PPPD, "logfile", str(case_dir / "client-pppd.log"), "debug"]  # fmt: skip
    with timings.step("connect"):
        client = lab.guest.spawn(argv, ns="cli", log_dir=case_dir, name="sstp-pppd")
        link = lab.wait_for_ppp(timeout=60, proc=client)
    lab.server.wait_for_log("Crypto Binding is valid.", 15)
    needles = session_needles(lab, case_dir)
    needles_file = write_needles(case_dir, needles)
    with timings.step("scan during"):
        scan_during(lab, case_dir, needles_file)
        assert lab.ping(link.peer, log_dir=case_dir).returncode == 0
        scan_during(lab, case_dir, needles_file)
    res = client.stop(20)
    assert res.returncode == 0, res.stderr
    assert lab.wait_for_no_ppp()
    assert "tunnel closed" in res.stderr
    with timings.step("scan after"):
        assert scan_after(lab, case_dir, needles, needles_file) >= 3


def test_pty_mode_leaks_no_secret(lab: Lab, case_dir: Path, timings: Timings) -> None:
    start_server(lab, case_dir)
    log_file = case_dir / "sstp-pppd.log"
    lab.write_client_file(
        "peers/nosecret",
        f'pty "{SSTP_PPPD} --nolaunchpppd --ipparam nosecret-pty --ca-cert '
        f'{lab.certs.ca.cert} --log-level 6 --log-file={log_file} {SERVER_NAME}"\n'
        f"name {USERNAME}\nremotename nosecret\nipparam nosecret-pty\n"
        + "".join(f"{o}\n" for o in CLIENT_PPPD)
        + "nodetach\ndebug\n",
    )
    lab.write_client_file("chap-secrets", f'"{USERNAME}" * "{SECRET}" *\n', 0o600)
    try:
        with timings.step("connect"):
            pppd = lab.pppd_call(
                "nosecret", "logfile", str(case_dir / "client-pppd.log"), log_dir=case_dir
            )
            link = lab.wait_for_ppp(timeout=60, proc=pppd)
        lab.server.wait_for_log("Crypto Binding is valid.", 15)
        needles = session_needles(lab, case_dir)
        needles_file = write_needles(case_dir, needles)
        with timings.step("scan during"):
            scan_during(lab, case_dir, needles_file)
            assert lab.ping(link.peer, log_dir=case_dir).returncode == 0
            scan_during(lab, case_dir, needles_file)
        res = pppd.stop(20)
        assert res.returncode in (5, 16), res.returncode
        assert lab.wait_for_no_ppp()
    finally:
        lab.write_client_file("chap-secrets", CHAP_SECRETS, 0o600)
    assert log_file.exists() and log_file.stat().st_size > 0
    with timings.step("scan after"):
        assert scan_after(lab, case_dir, needles, needles_file) >= 3


def test_the_scan_finds_a_planted_password(lab: Lab, case_dir: Path) -> None:
    """The same scans, once with the password planted: they must find it."""
    needles = needles_of(bytes(24))
    needles_file = write_needles(case_dir, needles)
    planted = lab.guest.spawn(
        ["sleep", "60"], ns="cli", env={"PLANTED": SECRET}, log_dir=case_dir, name="planted"
    )
    try:
        procs = guest_scan(lab, needles_file, "procs")
    finally:
        planted.stop(5)
    assert isinstance(procs, list)
    assert [p["pid"] for p in procs if p["in"] == "environ"] == [planted.pid], procs
    # A hex dump of it in a log, as level 6 writes frames: split bytes, upper case.
    hexdump = " ".join(f"{b:02X}" for b in crypto.nt_password_hash(SECRET))
    (case_dir / "planted.log").write_text(f"frame: {hexdump}\n")
    hits, _ = scan_files(needles, [case_dir], {needles_file.resolve()})
    assert hits == [{"file": str(case_dir / "planted.log"), "found": ["nt-hash"]}], hits
