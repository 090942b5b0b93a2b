"""Shared parts of the plugin's end-to-end tests (test_plugin.py, test_plugin_channel.py):
the stand-in listener, peers files, the server's view of the keys, client certificates."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from .bed import SSTP_PPPD, USERNAME, Lab, PppLink, Timings
from .certs import SERVER_NAME
from .uml import REPO, GuestError, GuestProcess

KEYSINK = Path(__file__).with_name("keysink.py")
MAGIC, AUTH, ATTR_SEND, ATTR_RECV = 0x73737470, 1, 2 - 1, 2
SOCK_DIR = "/run/sstp-plugin-test"
#: A client that authenticates with MS-CHAPv2 only, as in test_transport.
MSCHAPV2 = ("noauth", "refuse-eap", "refuse-pap", "refuse-chap", "refuse-mschap",
            "nodefaultroute", "noccp")  # fmt: skip
NOKEYS = "sstp-pppd-keys: no MPPE keys for this auth method: the binding uses zeros"
HANDED = "sstp-pppd-keys: MPPE keys handed to the SSTP client at "
PPPD25_ROOT = REPO / ".e2e" / "pppd25"
PPPD25_RT = PPPD25_ROOT / "rt" / "root"


class Sink:
    """keysink.py in the cli namespace, listening on ``sock``."""

    def __init__(
        self, lab: Lab, d: Path, sock: str, *, name: str = "keysink", no_ack: bool = False
    ) -> None:
        self.record = d / f"{name}.jsonl"
        argv = ["/usr/bin/python3", "-I", "-S", str(KEYSINK), sock, str(self.record)]
        self.proc: GuestProcess = lab.guest.spawn(
            argv + (["--no-ack"] if no_ack else []), ns="cli", log_dir=d, name=name
        )
        deadline = time.monotonic() + 30
        while "listening" not in self.proc.stdout:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise GuestError(f"keysink did not start:\n{self.proc.stderr}")
            time.sleep(0.05)

    def messages(self, n: int = 1, timeout: float = 15.0) -> list[dict[str, object]]:
        """The first ``n`` recorded messages (waits for them)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.record.read_text() if self.record.exists() else ""
            msgs = [json.loads(line) for line in text.splitlines()]
            if len(msgs) >= n or time.monotonic() > deadline:
                return msgs
            time.sleep(0.1)


def peers_file(
    lab: Lab,
    name: str,
    plugin_lines: str,
    *,
    auth: tuple[str, ...] = MSCHAPV2,
    ipparam: str = "lab",
    remotename: str = "lab",
) -> None:
    """A pty-mode peers file: our transport on the pty line, our plugin below it."""
    lab.write_client_file(
        f"peers/{name}",
        f'pty "{SSTP_PPPD} --nolaunchpppd --ca-cert {lab.certs.ca.cert} '
        f'--log-stderr --log-level 4 {SERVER_NAME}"\n'
        f"name {USERNAME}\nremotename {remotename}\nipparam {ipparam}\n"
        + "".join(f"{o}\n" for o in auth)
        + plugin_lines
        + "nodetach\ndebug\n",
    )


def connect(lab: Lab, d: Path, name: str, timings: Timings) -> tuple[GuestProcess, PppLink]:
    with timings.step("connect"):
        pppd = lab.pppd_call(name, "logfile", str(d / "client-pppd.log"), log_dir=d)
        link = lab.wait_for_ppp(timeout=60, proc=pppd)
    return pppd, link


def client_log(d: Path) -> str:
    return (d / "client-pppd.log").read_text(errors="replace")


def stop(lab: Lab, pppd: GuestProcess) -> None:
    res = pppd.stop(20)
    assert lab.wait_for_no_ppp()
    assert res.returncode in (5, 16), res.returncode  # pppd: stopped by signal / hangup


def attrs(msg: dict[str, object]) -> dict[int, bytes]:
    found = msg["attrs"]
    assert isinstance(found, list)
    return {a["type"]: bytes.fromhex(a["data"]) for a in found}


def nt_response_from_log(log: str) -> bytes:
    """The NT-Response of the client's MS-CHAPv2 Response, from pppd's debug packet dump:
    ``sent [CHAP Response id=0x.. <49-byte value as hex>, name = "labuser"]``."""
    m = re.search(r"sent \[CHAP Response id=0x[0-9a-f]+ <([0-9a-f]{98})>", log)
    assert m, "no MS-CHAPv2 Response in the client pppd's debug log"
    value = bytes.fromhex(m.group(1))
    # PeerChallenge 16, reserved 8, NT-Response 24, flags 1 (RFC 2759 4).
    return value[24:48]


def server_view_keys(lab: Lab) -> tuple[bytes, bytes]:
    """(send, receive) as the server's pppd holds them: Debian's sstp-pppd-plugin.so, which
    hands them to sstpd, logs them with ``debug`` ("The mppe send key (16): <hex>")."""
    log = lab.server.pppd_log_text
    found = {
        m.group(1): bytes.fromhex(m.group(2))
        for m in re.finditer(r"The mppe (send|recv) key \(\d+\): ([0-9a-f]+)", log)
    }
    assert set(found) == {"send", "recv"}, "the server's plugin logged no keys"
    return found["send"], found["recv"]


def dual_plugins(lab: Lab, d: Path, ipparam: str, plugin: Path) -> tuple[Sink, Sink, str]:
    """Debian's sstp-pppd-plugin.so (sstp-client 1.0.18) and ours in the same pppd, each
    with its own listener. pppd reads the peers file in order and options are looked up
    among the plugins loaded so far, so ``sstp-sock`` goes to Debian's; ours then uses its
    default path, /var/run/sstpc/sstpc-<ipparam>."""
    theirs = Sink(lab, d, f"{SOCK_DIR}/debian.sock", name="debian-plugin")
    ours_sock = f"/var/run/sstpc/sstpc-{ipparam}"
    ours = Sink(lab, d, ours_sock, name="our-plugin")
    lines = f"plugin sstp-pppd-plugin.so\nsstp-sock {SOCK_DIR}/debian.sock\nplugin {plugin}\n"
    return theirs, ours, lines


def server_options(auth: str) -> tuple[str, ...]:
    return ("name sstpd", auth, "silent", "nodefaultroute", "noccp", "debug")


def client_auth(*allow: str) -> tuple[str, ...]:
    """pppd options refusing every auth method but ``allow`` (pppd's option names)."""
    methods = ("eap", "pap", "chap", "mschap", "mschap-v2")
    return ("noauth", *(f"refuse-{m}" for m in methods if m not in allow),
            "nodefaultroute", "noccp")  # fmt: skip


#: auth method -> (the server pppd's requirement, what the client allows, has MPPE keys)


def client_cert(lab: Lab, d: Path) -> tuple[Path, Path]:
    """A TLS client certificate for labuser from the lab CA."""
    key, csr, cert = d / "client.key", d / "client.csr", d / "client.pem"
    ca = lab.certs.ca
    for argv in (
        ["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(csr), "-subj", f"/O=sstp-pppd tests/CN={USERNAME}"],
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
         "-CAcreateserial", "-CAserial", str(d / "ca.srl"), "-out", str(cert), "-days", "30",
         "-extfile", "/dev/stdin"],
    ):  # fmt: skip
        res = subprocess.run(
            argv,
            input="extendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\n",
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
    key.chmod(0o600)
    return cert, key


def private_plugin_dir(d: Path, version: str) -> str:
    """Shell lines that put a copy of pppd's plugin directory over the real one, in the
    calling command's own mount namespace (``ip netns exec`` gives each command one), so
    installing into it changes nothing outside that command."""
    return (
        f"mkdir -p {d}/plugin-dir && cp -a /usr/lib/pppd/{version}/. {d}/plugin-dir/ && "
        f"mount --bind {d}/plugin-dir /usr/lib/pppd/{version} && "
    )


def guest_path_gone(lab: Lab, path: str, seconds: int = 10) -> bool:
    """Whether ``path`` is absent in the guest (its /run is private) within ``seconds``."""
    script = f"for i in $(seq {seconds * 10}); do [ -e {path} ] || exit 0; sleep 0.1; done; exit 1"
    return lab.guest.run(["bash", "-c", script], ns="cli", timeout=seconds + 30).returncode == 0


def tidy(lab: Lab) -> None:
    """Remove the server's pap-secrets and eaptls-server and the client's pap-secrets that
    some cases write: later test modules share the guest."""
    if lab.guest.alive:
        lab.guest.run(["rm", "-f", "/etc/ppp/pap-secrets", "/etc/ppp/eaptls-server"])
    (lab.guest.cli_etc_ppp / "pap-secrets").unlink(missing_ok=True)


def stop_sinks(sinks: list[Sink]) -> None:
    for s in sinks:
        if s.proc.poll() is None:
            s.proc.stop(5)
