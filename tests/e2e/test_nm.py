"""sstpc's peers files and NetworkManager-sstp's command line, unchanged, with sstp-pppd.

The password is known to pppd alone (its ``password`` option; the chap-secrets the transport
could read is empty), so the binding's keys can only come from Debian's
``sstp-pppd-plugin.so`` through the key socket. sstp-server verifies the Compound MAC, so
"Crypto Binding is valid." proves that the plugin's keys reached CALL_CONNECTED. An ip-up
script plays NetworkManager's plugin at ip-up: it asks the socket for the gateway (ADDR) and
records the reply and the socket's owner and mode.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from sstp_pppd.core.keymsg import AttrType, MsgType, decode, parse_sockaddr

from .bed import PASSWORD, SSTP_PPPD, USERNAME, Lab, SstpServer, Timings
from .certs import SERVER_NAME, SERVER_V4
from .test_transport import CLIENT_PPPD, leftovers

pytestmark = pytest.mark.e2e

DEBIAN_PLUGIN = "/usr/lib/pppd/2.4.9/sstp-pppd-plugin.so"
NM_UUID = "9a8b7c6d-1234-4abc-9def-0123456789ab"

#: /etc/ppp/ip-up of the client: NetworkManager's plugin asks for the gateway at ip-up.
IP_UP = """#!/usr/bin/python3 -I
import json, os, socket, struct, sys
path = "/var/run/sstpc/sstpc-" + sys.argv[6]
st = os.stat(path)
s = socket.socket(socket.AF_UNIX)
s.connect(path)
s.sendall(struct.pack("=IHH", 0x73737470, 0, 2))
data = b""
while chunk := s.recv(4096):
    data += chunk
with open(@OUT@ + ".tmp", "w") as f:
    json.dump({"reply": data.hex(), "mode": st.st_mode, "uid": st.st_uid}, f)
os.rename(@OUT@ + ".tmp", @OUT@)
"""


def holds(lab: Lab, condition: str, seconds: int = 10) -> bool:
    """Whether the bash test ``[ condition ]`` comes true in the guest within ``seconds``."""
    script = (
        f"for i in $(seq {seconds * 10}); do [ {condition} ] && exit 0; sleep 0.1; done; exit 1"
    )
    return lab.guest.run(["bash", "-c", script], timeout=seconds + 30).returncode == 0


def peers_file(lab: Lab, case_dir: Path, name: str, pty: str, ipparam: str) -> Path:
    """An sstpc-style peers file: Debian's plugin and ``sstp-sock``, the password in pppd."""
    lab.write_client_file(
        f"peers/{name}",
        f'pty "{pty}"\n'
        f"plugin {DEBIAN_PLUGIN}\nsstp-sock /var/run/sstpc/sstpc-{ipparam}\n"
        f"name {USERNAME}\npassword {PASSWORD}\nremotename sstpd\nipparam {ipparam}\n"
        + "".join(f"{o}\n" for o in CLIENT_PPPD)
        + "nodetach\ndebug\n",
    )
    lab.write_client_file("chap-secrets", "", 0o600)
    out = case_dir / "ip-up.json"
    lab.write_client_file("ip-up", IP_UP.replace("@OUT@", repr(str(out))), 0o755)
    return out


def run_case(lab: Lab, case_dir: Path, timings: Timings, name: str, ipparam: str) -> None:
    try:
        _run_case(lab, case_dir, timings, name, ipparam)
    finally:
        # The other modules' cases share the client's /etc/ppp: no ip-up of ours there.
        (lab.guest.cli_etc_ppp / "ip-up").unlink(missing_ok=True)


def _run_case(lab: Lab, case_dir: Path, timings: Timings, name: str, ipparam: str) -> None:
    out = case_dir / "ip-up.json"
    with timings.step("connect"):
        pppd = lab.pppd_call(name, "logfile", str(case_dir / "client-pppd.log"), log_dir=case_dir)
        link = lab.wait_for_ppp(timeout=60, proc=pppd)
    lab.server.wait_for_log("Crypto Binding is valid.", 15)
    lab.check_link(link, nbytes=1 << 20, log_dir=case_dir, timings=timings)
    assert holds(lab, f"-e {out}"), "ip-up did not record the gateway query"
    got = json.loads(out.read_text())
    assert stat.S_ISSOCK(got["mode"]) and stat.S_IMODE(got["mode"]) == 0o600
    assert got["uid"] == 0
    reply = decode(bytes.fromhex(got["reply"]))
    assert reply.type is MsgType.ACK
    assert reply.get(AttrType.GATEWAY) == SERVER_NAME.encode()
    raw = reply.get(AttrType.ADDR)
    assert raw is not None and parse_sockaddr(raw) == (SERVER_V4, 443)
    sock = f"/var/run/sstpc/sstpc-{ipparam}"
    with timings.step("disconnect"):
        stopped = pppd.stop(20)
        assert lab.wait_for_no_ppp()
    assert stopped.returncode in (5, 16), stopped.returncode  # pppd: signal / hangup
    lab.server.wait_for_log("Received call disconnect request.", 10)
    log = (case_dir / "client-pppd.log").read_text(errors="replace")
    assert "MPPE keys from the pppd plugin" in log, log[-3000:]
    assert "SSTP call connected: crypto binding sent (keys: plugin)" in log
    assert "Traceback" not in log and "Logging error" not in log
    assert PASSWORD not in log.replace(f"password {PASSWORD}", "")
    assert holds(lab, f"! -e {sock}"), f"{sock} is still there"
    assert leftovers(lab) == []


def test_sstpc_peers_file(
    lab: Lab, case_dir: Path, sstp_server: SstpServer, timings: Timings
) -> None:
    """sstp-client's documented pty setup (sstp-test.example), sstpc replaced by sstp-pppd."""
    pty = (
        f"{SSTP_PPPD} --ipparam lab --nolaunchpppd --ca-cert {lab.certs.ca.cert} "
        f"--log-stderr --log-level 4 {SERVER_NAME}"
    )
    peers_file(lab, case_dir, "lab", pty, "lab")
    run_case(lab, case_dir, timings, "lab", "lab")


def test_networkmanager_order(
    lab: Lab, case_dir: Path, sstp_server: SstpServer, timings: Timings
) -> None:
    """NetworkManager-sstp 1.3's pty line, server first; no --log-stderr (it logs to syslog,
    which the guest lacks, so to stderr, which pppd logs)."""
    ipparam = "nm-pptp-service-1234"
    pty = (
        f"{SSTP_PPPD} {SERVER_NAME} --cert-warn --tls-ext --nolaunchpppd --log-level 5 "
        f"--ipparam {ipparam} --uuid {NM_UUID} --ca-cert {lab.certs.ca.cert}"
    )
    peers_file(lab, case_dir, "nm", pty, ipparam)
    run_case(lab, case_dir, timings, "nm", ipparam)
