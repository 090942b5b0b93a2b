"""Our pppd plugin, sstp-pppd-keys.so, with the real pppd 2.4.9 against sstp-server 0.7.2.

The plugin is built once per module against the installed headers (``build.build_plugin``)
into the run directory, which the guest shares, and loaded by absolute path from a pppd
peers file in pty mode. In the first cases a small listener (``keysink.py``) plays the
transport's side of the socket in the client's namespace: it records every message and
acknowledges it, while the tunnel's binding comes from the transport's chap-secrets. The
last cases use the transport's own key channel (sstp_pppd.transport.keychannel).

What is proven here, and how:
- (e) the keys the plugin hands over are the session's MS-CHAPv2 MPPE keys: the listener's
  send/receive keys equal ``crypto.mschapv2_mppe_keys`` computed in Python from the password
  and the NT-Response in the client pppd's own ``debug`` log of its CHAP Response, and they
  are the server's pair seen from the other end (the server's sstp-pppd-plugin.so logs its
  keys with ``debug``); the same session's binding, built by the transport from
  chap-secrets, is accepted by sstpd. They arrive after authentication and before IPCP, in
  sstp-api's layout, and never appear in pppd's log.
- In one session with both loaded, our AUTH message is byte for byte the one Debian's
  sstp-pppd-plugin.so (sstp-client 1.0.18) sends, for MS-CHAPv2, EAP-TLS and the methods
  without MPPE keys (PAP, CHAP-MD5, EAP-MD5: no key attributes; ours also says once that
  the binding uses zeros).
- EAP-TLS with a client certificate in pppd's ``cert``/``key``/``ca`` options against the
  server pppd's eaptls-server: pppd 2.4.9 keeps 16 bytes of each key (MSK[0:16] and
  MSK[32:48]); the plugin hands over exactly those, the server's pair reversed.
- (f) nothing listens on the socket: one warning in pppd's log, pppd carries on, the session
  comes up with a valid binding and passes traffic. A listener that never acknowledges
  costs pppd at most 5 s and one warning.
- The default socket path with an ipparam is /var/run/sstpc/sstpc-<ipparam>.
- With ``persist``, each new link's keys are handed over again, once per link.
- The install command compiles in the guest, installs into /usr/lib/pppd/<version>/ (a
  private bind mount there, so the host is untouched), prints the path, and pppd loads
  the plugin by name.

With the transport's key channel, sstpd accepting the binding ("Crypto Binding is valid.")
proves the plugin's keys reached CALL_CONNECTED:
- (c) pty mode, the password only in pppd's ``password`` option, chap-secrets empty; ping,
  1 MiB transfer, clean stop, the socket gone.
- (d) launch mode with ``--user`` and no password option: sstp-pppd loads the plugin that
  ``install_plugin`` put in pppd's directory; MS-CHAPv2 (chap-secrets) and EAP-TLS (a
  certificate, chap-secrets empty: the plugin is the only key source).
- (g) EAP-TLS in pty mode with the certificate in pppd's cert/key/ca: binding accepted.
  With pppd 2.4.9 at both ends the HLAK is MSK[0:16] || MSK[32:48] (what both pppds keep);
  a Windows server wants MSK[0:32], which pppd 2.4.9 does not keep: unproven here.

pppd 2.5.2 (Debian 13's, run through its own ld.so from scripts/fetch-pppd25.sh) with the
plugin built against its headers: MS-CHAPv2 in pty mode with the password only in pppd is
accepted by sstpd (pppd 2.5 hands over 20-byte MS-CHAPv2 keys); EAP-TLS hands over
send = MSK[0:32], receive = MSK[32:64], matching the 2.4.9 server's 16-byte halves.

Not reachable in this bed: EAP-MSCHAPv2. pppd's EAP server offers MSCHAPv2 only when the
peer NAKs its MD5-Challenge proposing type 26, and pppd's EAP client NAKs only with SRP, so
two pppds always settle on EAP-MD5 (tested above) when they share a CHAP secret.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sstp_pppd.core import crypto
from sstp_pppd.plugin import build

from .bed import (
    CHAP_SECRETS,
    HOST_PYTHON,
    PASSWORD,
    SSTP_PPPD,
    USERNAME,
    Lab,
    PppLink,
    SstpServer,
    Timings,
)
from .certs import SERVER_NAME
from .uml import REPO, GuestError, GuestProcess

pytestmark = pytest.mark.e2e

KEYSINK = Path(__file__).with_name("keysink.py")
MAGIC, AUTH, ATTR_SEND, ATTR_RECV = 0x73737470, 1, 2 - 1, 2
SOCK_DIR = "/run/sstp-plugin-test"
#: A client that authenticates with MS-CHAPv2 only, as in test_transport.
MSCHAPV2 = ("noauth", "refuse-eap", "refuse-pap", "refuse-chap", "refuse-mschap",
            "nodefaultroute", "noccp")  # fmt: skip
NOKEYS = "sstp-pppd-keys: no MPPE keys for this auth method: the binding uses zeros"
HANDED = "sstp-pppd-keys: MPPE keys handed to the SSTP client at "


@pytest.fixture(autouse=True)
def tidy_secrets(lab: Lab) -> Iterator[None]:
    """The server's pap-secrets and eaptls-server and the client's pap-secrets that some
    cases write are removed afterwards: later test modules share the guest."""
    yield
    if lab.guest.alive:
        lab.guest.run(["rm", "-f", "/etc/ppp/pap-secrets", "/etc/ppp/eaptls-server"])
    (lab.guest.cli_etc_ppp / "pap-secrets").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def plugin(lab: Lab) -> Path:
    """sstp-pppd-keys.so for the installed pppd, in the run directory the guest sees."""
    return build.build_plugin(lab.run_dir / "plugin").path


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


@pytest.fixture
def sink_factory(lab: Lab, case_dir: Path) -> Iterator[list[Sink]]:
    sinks: list[Sink] = []
    yield sinks
    for s in sinks:
        if s.proc.poll() is None:
            s.proc.stop(5)


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


def test_plugin_keys_are_the_sessions_mschapv2_keys(
    lab: Lab,
    case_dir: Path,
    plugin: Path,
    sstp_server: SstpServer,
    sink_factory: list[Sink],
    timings: Timings,
) -> None:
    """(e) the plugin's keys equal the Python-derived keys of the same MS-CHAPv2 session."""
    sock = f"{SOCK_DIR}/e.sock"
    sink_factory.append(sink := Sink(lab, case_dir, sock))
    peers_file(lab, "keys-e", f"plugin {plugin}\nsstp-sock {sock}\n")
    lab.write_client_file("chap-secrets", CHAP_SECRETS, 0o600)
    pppd, link = connect(lab, case_dir, "keys-e", timings)
    # The transport's binding (keys from chap-secrets) matches the server's keys.
    sstp_server.wait_for_log("Crypto Binding is valid.", 15)
    assert lab.ping(link.peer, log_dir=case_dir).returncode == 0

    msgs = sink.messages(1)
    assert len(msgs) == 1, msgs  # one AUTH for the session, nothing more
    msg = msgs[0]
    assert "error" not in msg and msg["acked"], msg
    assert (msg["magic"], msg["type"]) == (MAGIC, AUTH)
    keys = attrs(msg)
    assert sorted(keys) == [ATTR_SEND, ATTR_RECV]
    # sstp-api layout: two attributes of 4 + 16 bytes, no padding needed, nothing else.
    assert msg["length"] == 2 * (4 + 16)
    assert [a["type"] for a in msg["attrs"]] == [ATTR_SEND, ATTR_RECV]  # type: ignore[union-attr]

    log = client_log(case_dir)
    expected = crypto.mschapv2_mppe_keys(PASSWORD, nt_response_from_log(log))
    assert (keys[ATTR_SEND], keys[ATTR_RECV]) == expected
    # ... and the server's keys are the same pair seen from the other end.
    assert (keys[ATTR_SEND], keys[ATTR_RECV]) == server_view_keys(lab)[::-1]
    assert keys[ATTR_SEND] != keys[ATTR_RECV] and any(keys[ATTR_SEND])

    # Handed over after authentication and before any network protocol started.
    assert log.count(HANDED) == 1
    handed = log.index(HANDED + sock)
    assert log.index("CHAP authentication succeeded") < handed < log.index("sent [IPCP ConfReq")
    # With debug on, pppd logs only the key lengths.
    assert "sending MPPE keys (send 16 bytes, receive 16 bytes)" in log
    for key in keys.values():
        assert key.hex() not in log.lower()
        assert key.hex(" ") not in log.lower()
    stop(lab, pppd)


def test_no_socket_pppd_warns_once_and_carries_on(
    lab: Lab, case_dir: Path, plugin: Path, sstp_server: SstpServer, timings: Timings
) -> None:
    """(f) nothing listens: one warning, pppd does not die, the session is bound and works."""
    sock = f"{SOCK_DIR}/nobody-listens.sock"
    peers_file(lab, "keys-f", f"plugin {plugin}\nsstp-sock {sock}\n")
    lab.write_client_file("chap-secrets", CHAP_SECRETS, 0o600)
    pppd, link = connect(lab, case_dir, "keys-f", timings)
    sstp_server.wait_for_log("Crypto Binding is valid.", 15)
    lab.check_link(link, nbytes=1 << 20, log_dir=case_dir, timings=timings)
    assert pppd.poll() is None
    log = client_log(case_dir)
    warning = (
        f"sstp-pppd-keys: no SSTP client listens on {sock} (No such file or directory): "
        "pppd continues without handing over the MPPE keys"
    )
    assert log.count("sstp-pppd-keys: no SSTP client") == 1 and warning in log, log
    assert HANDED not in log
    stop(lab, pppd)


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
METHODS = {
    "mschapv2": ("require-mschap-v2", ("mschap-v2",), True),
    "pap": ("require-pap", ("pap",), False),
    "chap-md5": ("require-chap", ("chap",), False),
    # pppd's EAP server starts with MD5-Challenge whenever it has a CHAP secret.
    "eap-md5": ("require-eap", ("eap",), False),
}


@pytest.mark.parametrize("auth", list(METHODS))
def test_same_message_as_debians_plugin(
    lab: Lab,
    case_dir: Path,
    plugin: Path,
    sink_factory: list[Sink],
    timings: Timings,
    auth: str,
) -> None:
    """In one session, our plugin's AUTH message is byte for byte the one sstp-client's own
    plugin sends: same keys, same order, same layout (MS-CHAPv2: also the server's keys and
    a binding sstpd accepts), and for methods without MPPE keys (PAP, CHAP-MD5, EAP-MD5) the
    same bare header, with our notice that the binding uses zeros."""
    require, allow, has_keys = METHODS[auth]
    # pap-secrets for PAP; the server's chap-secrets (the bed's default) for the rest.
    lab.guest.write_file("/etc/ppp/pap-secrets", CHAP_SECRETS, 0o600)
    lab.server.start(case_dir, pppd_options=server_options(require))
    lab.write_client_file("pap-secrets", CHAP_SECRETS, 0o600)
    lab.write_client_file("chap-secrets", CHAP_SECRETS, 0o600)
    name = f"dual-{auth}"
    theirs, ours, lines = dual_plugins(lab, case_dir, name, plugin)
    sink_factory.extend((theirs, ours))
    peers_file(lab, name, lines, auth=client_auth(*allow), ipparam=name)
    pppd = lab.pppd_call(name, "logfile", str(case_dir / "client-pppd.log"), log_dir=case_dir)
    t_msgs, o_msgs = theirs.messages(1, timeout=60), ours.messages(1, timeout=10)
    assert len(t_msgs) == 1 and len(o_msgs) == 1, (t_msgs, o_msgs)
    assert o_msgs[0]["raw"] == t_msgs[0]["raw"]
    assert o_msgs[0]["acked"] and t_msgs[0]["acked"]
    log = client_log(case_dir)
    if has_keys:
        link = lab.wait_for_ppp(timeout=60, proc=pppd)
        lab.server.wait_for_log("Crypto Binding is valid.", 15)
        assert lab.ping(link.peer, log_dir=case_dir).returncode == 0
        keys = attrs(o_msgs[0])
        expected = crypto.mschapv2_mppe_keys(PASSWORD, nt_response_from_log(log))
        assert (keys[ATTR_SEND], keys[ATTR_RECV]) == expected == server_view_keys(lab)[::-1]
        stop(lab, pppd)
        return
    # sstp-server 0.7.2 cannot verify such a session at all: its own plugin gives it no
    # keys, it logs "missing master send and/or receive key" and never lets data through.
    assert (o_msgs[0]["type"], o_msgs[0]["length"], o_msgs[0]["attrs"]) == (AUTH, 0, [])
    succeeded = {"pap": "PAP", "chap-md5": "CHAP", "eap-md5": "EAP"}[auth]
    assert f"{succeeded} authentication succeeded" in log
    assert log.count(NOKEYS) == 1
    told = f"sstp-pppd-keys: told the SSTP client at /var/run/sstpc/sstpc-{name} that"
    assert log.count(f"{told} there are no MPPE keys") == 1
    pppd.stop(20)


def test_no_ack_times_out_and_pppd_carries_on(
    lab: Lab,
    case_dir: Path,
    plugin: Path,
    sstp_server: SstpServer,
    sink_factory: list[Sink],
    timings: Timings,
) -> None:
    """A listener that takes the message but never answers holds pppd up for at most 5 s."""
    sock = f"{SOCK_DIR}/mute.sock"
    sink_factory.append(sink := Sink(lab, case_dir, sock, no_ack=True))
    peers_file(lab, "keys-mute", f"plugin {plugin}\nsstp-sock {sock}\n")
    lab.write_client_file("chap-secrets", CHAP_SECRETS, 0o600)
    pppd, link = connect(lab, case_dir, "keys-mute", timings)
    sstp_server.wait_for_log("Crypto Binding is valid.", 15)
    assert lab.ping(link.peer, log_dir=case_dir).returncode == 0
    assert len(sink.messages(1)) == 1
    log = client_log(case_dir)
    assert log.count(f"sstp-pppd-keys: no acknowledgement from {sock} (Connection timed out)") == 1
    assert HANDED not in log
    stop(lab, pppd)


def test_default_socket_path_follows_ipparam(
    lab: Lab,
    case_dir: Path,
    plugin: Path,
    sstp_server: SstpServer,
    sink_factory: list[Sink],
    timings: Timings,
) -> None:
    """Without ``sstp-sock`` the plugin uses sstpc's name, /var/run/sstpc/sstpc-<ipparam>
    (the name NetworkManager-sstp's plugin and existing peers files hard-code)."""
    sock = "/var/run/sstpc/sstpc-plugintest"
    sink_factory.append(sink := Sink(lab, case_dir, sock))
    peers_file(lab, "keys-default", f"plugin {plugin}\n", ipparam="plugintest")
    lab.write_client_file("chap-secrets", CHAP_SECRETS, 0o600)
    pppd, _ = connect(lab, case_dir, "keys-default", timings)
    sstp_server.wait_for_log("Crypto Binding is valid.", 15)
    msgs = sink.messages(1)
    assert len(msgs) == 1 and sorted(attrs(msgs[0])) == [ATTR_SEND, ATTR_RECV], msgs
    assert client_log(case_dir).count(HANDED + sock) == 1
    stop(lab, pppd)


# -- EAP-TLS: a client certificate through pppd's own cert/key/ca options ---------------


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


def test_eap_tls_keys_match_debians_plugin(
    lab: Lab, case_dir: Path, plugin: Path, sink_factory: list[Sink], timings: Timings
) -> None:
    """(g, the plugin's part) EAP-TLS with pppd's cert/key/ca: both sides are Debian's
    pppd 2.4.9, the server authenticates the client's certificate (its chap-secrets is
    empty, so EAP-TLS is the only method), and our plugin hands over the keys pppd derived
    from the TLS session, byte for byte what sstp-client's plugin sends in the same session."""
    cert, key = client_cert(lab, case_dir)
    srv = lab.certs.server
    lab.guest.write_file(
        "/etc/ppp/eaptls-server", f"* sstpd - {srv.cert} {lab.certs.ca.cert} {srv.key} *\n", 0o600
    )
    lab.server.start(case_dir, pppd_options=server_options("require-eap"), chap_secrets="")
    lab.write_client_file("chap-secrets", "", 0o600)
    theirs, ours, lines = dual_plugins(lab, case_dir, "eaptls", plugin)
    sink_factory.extend((theirs, ours))
    tls = f"cert {cert}\nkey {key}\nca {lab.certs.ca.cert}\n"
    peers_file(
        lab,
        "eaptls",
        tls + lines,
        auth=client_auth("eap"),
        ipparam="eaptls",
        remotename=SERVER_NAME,
    )
    pppd = lab.pppd_call("eaptls", "logfile", str(case_dir / "client-pppd.log"), log_dir=case_dir)
    t_msgs, o_msgs = theirs.messages(1, timeout=60), ours.messages(1, timeout=10)
    log = client_log(case_dir)
    assert "EAP authentication succeeded" in log, log
    assert len(t_msgs) == 1 and len(o_msgs) == 1, (t_msgs, o_msgs)
    assert o_msgs[0]["raw"] == t_msgs[0]["raw"]
    keys = attrs(o_msgs[0])
    # pppd 2.4.9 keeps 16 bytes of each: send = MSK[0:16], receive = MSK[32:48].
    assert sorted(keys) == [ATTR_SEND, ATTR_RECV]
    assert len(keys[ATTR_SEND]) == len(keys[ATTR_RECV]) == 16
    assert keys[ATTR_SEND] != keys[ATTR_RECV] and any(keys[ATTR_SEND])
    assert (keys[ATTR_SEND], keys[ATTR_RECV]) == server_view_keys(lab)[::-1]
    # (Debian's plugin logs the keys with "debug", so the log is not checked for them here.)
    pppd.stop(20)


def test_persist_hands_over_each_links_keys(
    lab: Lab, case_dir: Path, plugin: Path, sink_factory: list[Sink], timings: Timings
) -> None:
    """With ``persist`` pppd makes a new link after the first one drops: the plugin sends
    the new authentication's keys again, once per link."""
    sock = f"{SOCK_DIR}/persist.sock"
    sink_factory.append(sink := Sink(lab, case_dir, sock))
    peers_file(lab, "keys-persist", f"plugin {plugin}\nsstp-sock {sock}\npersist\nholdoff 1\n")
    lab.write_client_file("chap-secrets", CHAP_SECRETS, 0o600)
    first, second = case_dir / "first", case_dir / "second"
    lab.server.start(first)
    pppd, _ = connect(lab, case_dir, "keys-persist", timings)
    lab.server.wait_for_log("Crypto Binding is valid.", 15)
    assert len(sink.messages(1)) == 1
    lab.server.stop()  # the first link drops; pppd keeps retrying its pty command
    assert lab.wait_for_no_ppp(timeout=30)
    lab.server.start(second)
    with timings.step("reconnect"):
        lab.wait_for_ppp(timeout=90, proc=pppd)
    lab.server.wait_for_log("Crypto Binding is valid.", 15)
    msgs = sink.messages(2)
    assert len(msgs) == 2, msgs
    keys = [attrs(m) for m in msgs]
    assert keys[0] != keys[1] and all(sorted(k) == [ATTR_SEND, ATTR_RECV] for k in keys)
    assert keys[1][ATTR_SEND] == server_view_keys(lab)[1]
    assert client_log(case_dir).count(HANDED + sock) == 2
    stop(lab, pppd)


def private_plugin_dir(d: Path, version: str) -> str:
    """Shell lines that put a copy of pppd's plugin directory over the real one, in the
    calling command's own mount namespace (``ip netns exec`` gives each command one), so
    installing into it changes nothing outside that command."""
    return (
        f"mkdir -p {d}/plugin-dir && cp -a /usr/lib/pppd/{version}/. {d}/plugin-dir/ && "
        f"mount --bind {d}/plugin-dir /usr/lib/pppd/{version} && "
    )


def test_install_plugin_into_pppds_dir_then_load_it_by_name(
    lab: Lab,
    case_dir: Path,
    sstp_server: SstpServer,
    sink_factory: list[Sink],
    timings: Timings,
) -> None:
    """``install_plugin`` (sstp-helper install-plugin) in the guest: it compiles against
    /usr/include/pppd, installs into the running pppd's /usr/lib/pppd/<version>/, prints
    the path, and pppd then loads it by name (``plugin sstp-pppd-keys.so``)."""
    version = build.running_pppd_version()
    sock = f"{SOCK_DIR}/byname.sock"
    sink_factory.append(sink := Sink(lab, case_dir, sock))
    peers_file(lab, "keys-byname", f"plugin {build.PLUGIN_NAME}\nsstp-sock {sock}\n")
    lab.write_client_file("chap-secrets", CHAP_SECRETS, 0o600)
    script = (
        private_plugin_dir(case_dir, version)
        + f"{HOST_PYTHON} -m sstp_pppd.plugin.build > {case_dir}/install.out && "
        + f"exec pppd call keys-byname logfile {case_dir}/client-pppd.log"
    )
    with timings.step("install + connect"):
        pppd = lab.guest.spawn(["bash", "-c", script], ns="cli", log_dir=case_dir, name="pppd")
        link = lab.wait_for_ppp(timeout=120, proc=pppd)
    installed = f"/usr/lib/pppd/{version}/{build.PLUGIN_NAME}"
    assert (case_dir / "install.out").read_text() == installed + "\n"
    assert (case_dir / "plugin-dir" / build.PLUGIN_NAME).is_file()
    assert not Path(installed).exists()  # the host's plugin directory is untouched
    sstp_server.wait_for_log("Crypto Binding is valid.", 15)
    assert lab.ping(link.peer, log_dir=case_dir).returncode == 0
    # pppd says this before its logfile option takes effect: on its stderr.
    assert f"Plugin {build.PLUGIN_NAME} loaded." in pppd.stdout + pppd.stderr
    assert len(sink.messages(1)) == 1 and client_log(case_dir).count(HANDED + sock) == 1
    stop(lab, pppd)


# -- with the transport's own key channel (sstp_pppd.transport.keychannel) ---------------


def guest_path_gone(lab: Lab, path: str, seconds: int = 10) -> bool:
    """Whether ``path`` is absent in the guest (its /run is private) within ``seconds``."""
    script = f"for i in $(seq {seconds * 10}); do [ -e {path} ] || exit 0; sleep 0.1; done; exit 1"
    return lab.guest.run(["bash", "-c", script], ns="cli", timeout=seconds + 30).returncode == 0


def test_pty_mode_password_only_in_pppd(
    lab: Lab, case_dir: Path, plugin: Path, sstp_server: SstpServer, timings: Timings
) -> None:
    """(c) our plugin in pty mode: the password is only in pppd's ``password`` option and
    the transport's chap-secrets is empty, so the binding's keys can only come from our
    plugin through the transport's socket, /var/run/sstpc/sstpc-<ipparam>."""
    ipparam = "ourplugin"
    sock = f"/var/run/sstpc/sstpc-{ipparam}"
    lab.write_client_file(
        "peers/ours-pty",
        f'pty "{SSTP_PPPD} --nolaunchpppd --ipparam {ipparam} --ca-cert {lab.certs.ca.cert} '
        f'--log-stderr --log-level 4 {SERVER_NAME}"\n'
        f"plugin {plugin}\nname {USERNAME}\npassword {PASSWORD}\nremotename sstpd\n"
        f"ipparam {ipparam}\n" + "".join(f"{o}\n" for o in MSCHAPV2) + "nodetach\ndebug\n",
    )
    lab.write_client_file("chap-secrets", "", 0o600)
    pppd, link = connect(lab, case_dir, "ours-pty", timings)
    sstp_server.wait_for_log("Crypto Binding is valid.", 15)
    lab.check_link(link, nbytes=1 << 20, log_dir=case_dir, timings=timings)
    log = client_log(case_dir)
    assert log.count(HANDED + sock) == 1
    assert "crypto binding sent (keys: plugin)" in log
    assert PASSWORD not in log.replace(f"password {PASSWORD}", "")
    with timings.step("disconnect"):
        stop(lab, pppd)
    assert guest_path_gone(lab, sock), f"{sock} is left behind"


@pytest.mark.parametrize("auth", ["mschapv2", "eap-tls"])
def test_launch_mode_user_and_chap_secrets_only(
    lab: Lab, case_dir: Path, timings: Timings, auth: str
) -> None:
    """(d) launch mode with ``--user`` and no password option (sstpc's "plugin mode"): with
    our plugin installed for the running pppd, sstp-pppd loads it itself and its keys
    reach the binding. MS-CHAPv2 with the password in chap-secrets; EAP-TLS with the
    certificate in pppd's options and an empty chap-secrets, where the plugin is the only
    key source. The plugin is installed by ``install_plugin`` into a private copy of
    pppd's plugin directory (a bind mount in this command's own mount namespace)."""
    version = build.running_pppd_version()
    if auth == "eap-tls":
        cert, key = client_cert(lab, case_dir)
        srv = lab.certs.server
        lab.guest.write_file(
            "/etc/ppp/eaptls-server",
            f"* sstpd - {srv.cert} {lab.certs.ca.cert} {srv.key} *\n",
            0o600,
        )
        lab.server.start(case_dir, pppd_options=server_options("require-eap"), chap_secrets="")
        lab.write_client_file("chap-secrets", "", 0o600)
        pppd_opts = [*client_auth("eap"), "cert", str(cert), "key", str(key),
                     "ca", str(lab.certs.ca.cert), "remotename", SERVER_NAME]  # fmt: skip
    else:
        lab.server.start(case_dir)
        lab.write_client_file("chap-secrets", CHAP_SECRETS, 0o600)
        pppd_opts = list(MSCHAPV2)
    argv = [str(SSTP_PPPD), "--log-level", "4", "--user", USERNAME, "--ca-cert",
            str(lab.certs.ca.cert), SERVER_NAME, "--", *pppd_opts,
            "logfile", str(case_dir / "client-pppd.log"), "debug"]  # fmt: skip
    script = (
        private_plugin_dir(case_dir, version)
        + f"{HOST_PYTHON} -m sstp_pppd.plugin.build > {case_dir}/install.out && "
        + "exec "
        + " ".join(argv)
    )
    with timings.step("install + connect"):
        client = lab.guest.spawn(["bash", "-c", script], ns="cli", log_dir=case_dir, name="client")
        link = lab.wait_for_ppp(timeout=120, proc=client)
    lab.server.wait_for_log("Crypto Binding is valid.", 15)
    lab.check_link(link, nbytes=1 << 20, log_dir=case_dir, timings=timings)
    installed = f"/usr/lib/pppd/{version}/{build.PLUGIN_NAME}"
    assert (case_dir / "install.out").read_text() == installed + "\n"
    with timings.step("disconnect"):
        res = client.stop(20)
        assert lab.wait_for_no_ppp()
    assert res.returncode == 0, res.stderr
    assert f"loading our pppd plugin {installed}" in res.stderr
    assert "key channel: MPPE keys from the pppd plugin" in res.stderr
    assert client_log(case_dir).count(HANDED + "/var/run/sstpc/sstpc-uds-sock") == 1
    if auth == "eap-tls":
        assert "crypto binding sent (keys: plugin)" in res.stderr
    else:
        # The transport sees the CHAP Success before pppd's auth-up and has the same keys
        # from chap-secrets already; either source gives this binding.
        assert re.search(r"crypto binding sent \(keys: (plugin|password)\)", res.stderr)
    assert PASSWORD not in res.stderr
    assert guest_path_gone(lab, "/var/run/sstpc/sstpc-uds-sock")


def test_eap_tls_binding_with_our_plugin(
    lab: Lab, case_dir: Path, plugin: Path, timings: Timings
) -> None:
    """(g) EAP-TLS, client certificate in pppd's cert/key/ca options, pty mode, no password
    anywhere: the keys come only from our plugin and sstpd accepts the binding. With pppd
    2.4.9 on both ends that HLAK is send || recv = MSK[0:16] || MSK[32:48] (pppd 2.4.9 keeps
    16 bytes of each), which is what sstp-server with pppd 2.4.9 computes too."""
    cert, key = client_cert(lab, case_dir)
    srv = lab.certs.server
    lab.guest.write_file(
        "/etc/ppp/eaptls-server", f"* sstpd - {srv.cert} {lab.certs.ca.cert} {srv.key} *\n", 0o600
    )
    lab.server.start(case_dir, pppd_options=server_options("require-eap"), chap_secrets="")
    lab.write_client_file("chap-secrets", "", 0o600)
    ipparam = "ourtls"
    lab.write_client_file(
        "peers/ours-tls",
        f'pty "{SSTP_PPPD} --nolaunchpppd --ipparam {ipparam} --ca-cert {lab.certs.ca.cert} '
        f'--log-stderr --log-level 4 {SERVER_NAME}"\n'
        f"plugin {plugin}\ncert {cert}\nkey {key}\nca {lab.certs.ca.cert}\n"
        f"name {USERNAME}\nremotename {SERVER_NAME}\nipparam {ipparam}\n"
        + "".join(f"{o}\n" for o in client_auth("eap"))
        + "nodetach\ndebug\n",
    )
    pppd, link = connect(lab, case_dir, "ours-tls", timings)
    lab.server.wait_for_log("Crypto Binding is valid.", 15)
    assert lab.ping(link.peer, log_dir=case_dir).returncode == 0
    log = client_log(case_dir)
    assert "EAP authentication succeeded" in log and "EAP-TLS" in log
    assert "crypto binding sent (keys: plugin)" in log
    stop(lab, pppd)
    assert guest_path_gone(lab, f"/var/run/sstpc/sstpc-{ipparam}")


# -- pppd 2.5 (Debian 13's, unpacked by scripts/fetch-pppd25.sh) --------------------------

PPPD25_ROOT = REPO / ".e2e" / "pppd25"
PPPD25_RT = PPPD25_ROOT / "rt" / "root"


@pytest.fixture(scope="module")
def pppd25(lab: Lab) -> tuple[list[str], Path]:
    """The argv that runs trixie's pppd 2.5.2 here (through trixie's own ld.so, with its
    libc, libssl and libpcap; the rest from this system), and our plugin built against
    pppd 2.5's headers."""
    pppd = PPPD25_RT / "usr" / "sbin" / "pppd"
    include = PPPD25_ROOT / "root" / "usr" / "include"
    if not pppd.exists() or not (include / "pppd" / "pppd.h").exists():
        pytest.skip(f"no pppd 2.5 in {PPPD25_ROOT}: run scripts/fetch-pppd25.sh")
    libs = PPPD25_RT / "usr" / "lib" / "x86_64-linux-gnu"
    argv = [str(libs / "ld-linux-x86-64.so.2"), "--library-path",
            f"{libs}:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu", str(pppd)]  # fmt: skip
    built = build.build_plugin(lab.run_dir / "plugin25", include_dir=include)
    assert built.version == "2.5.2"
    return argv, built.path


def test_pppd25_pty_mode_password_only_in_pppd(
    lab: Lab,
    case_dir: Path,
    pppd25: tuple[list[str], Path],
    sstp_server: SstpServer,
    timings: Timings,
) -> None:
    """The 2.5 build in a real pppd 2.5.2 (ppp_add_notify(NF_AUTH_UP), mppe_get_send_key,
    ppp_ipparam): pty mode, password only in pppd, empty chap-secrets; sstpd accepts the
    binding, so the 2.5 API handed over the right MS-CHAPv2 keys."""
    argv, plugin25 = pppd25
    ipparam = "ours25"
    sock = f"/var/run/sstpc/sstpc-{ipparam}"
    lab.write_client_file(
        "peers/ours25",
        f'pty "{SSTP_PPPD} --nolaunchpppd --ipparam {ipparam} --ca-cert {lab.certs.ca.cert} '
        f'--log-stderr --log-level 4 {SERVER_NAME}"\n'
        f"plugin {plugin25}\nname {USERNAME}\npassword {PASSWORD}\nremotename sstpd\n"
        f"ipparam {ipparam}\n" + "".join(f"{o}\n" for o in MSCHAPV2) + "nodetach\ndebug\n",
    )
    lab.write_client_file("chap-secrets", "", 0o600)
    log_file = case_dir / "client-pppd.log"
    with timings.step("connect"):
        pppd = lab.guest.spawn(
            [*argv, "call", "ours25", "logfile", str(log_file)], ns="cli", log_dir=case_dir,
            name="pppd25",
        )  # fmt: skip
        link = lab.wait_for_ppp(timeout=60, proc=pppd)
    sstp_server.wait_for_log("Crypto Binding is valid.", 15)
    assert lab.ping(link.peer, log_dir=case_dir).returncode == 0
    log = client_log(case_dir)
    assert "sstp-pppd-keys: authentication done (auth-up)" in log
    # pppd 2.5 keeps MS-CHAPv2's keys as the whole 20-byte SHA-1 (2.4.9: 16 bytes); the
    # HLAK takes the first 16 of each, which are the 128-bit MPPE keys (RFC 3079 3.4).
    assert "sending MPPE keys (send 20 bytes, receive 20 bytes)" in log
    assert log.count(HANDED + sock) == 1
    assert "crypto binding sent (keys: plugin)" in log
    stop(lab, pppd)
    assert guest_path_gone(lab, sock)


def test_pppd25_eap_tls_hands_over_the_msk(
    lab: Lab,
    case_dir: Path,
    pppd25: tuple[list[str], Path],
    sink_factory: list[Sink],
    timings: Timings,
) -> None:
    """EAP-TLS with pppd 2.5.2 as the client: it keeps 32 bytes of each key, so the plugin
    hands over send = MSK[0:32] and receive = MSK[32:64], from which the transport's HLAK is
    MSK[0:32] as [MS-SSTP] wants. Checked against the server's pppd 2.4.9, which keeps
    MSK[0:16] as its receive key and MSK[32:48] as its send key. (That server's sstpd
    expects the 2.4.9 split, so this pair's binding could not be accepted: not checked.)"""
    argv, plugin25 = pppd25
    cert, key = client_cert(lab, case_dir)
    srv = lab.certs.server
    lab.guest.write_file(
        "/etc/ppp/eaptls-server", f"* sstpd - {srv.cert} {lab.certs.ca.cert} {srv.key} *\n", 0o600
    )
    lab.server.start(case_dir, pppd_options=server_options("require-eap"), chap_secrets="")
    lab.write_client_file("chap-secrets", "", 0o600)
    sock = f"{SOCK_DIR}/tls25.sock"
    sink_factory.append(sink := Sink(lab, case_dir, sock))
    tls = f"cert {cert}\nkey {key}\nca {lab.certs.ca.cert}\n"
    peers_file(lab, "tls25", tls + f"plugin {plugin25}\nsstp-sock {sock}\n",
               auth=client_auth("eap"), ipparam="tls25", remotename=SERVER_NAME)  # fmt: skip
    pppd = lab.guest.spawn(
        [*argv, "call", "tls25", "logfile", str(case_dir / "client-pppd.log")],
        ns="cli", log_dir=case_dir, name="pppd25",
    )  # fmt: skip
    msgs = sink.messages(1, timeout=60)
    assert len(msgs) == 1, (msgs, client_log(case_dir))
    keys = attrs(msgs[0])
    assert len(keys[ATTR_SEND]) == len(keys[ATTR_RECV]) == 32
    assert msgs[0]["length"] == 2 * (4 + 32)
    server_send, server_recv = server_view_keys(lab)
    assert keys[ATTR_SEND][:16] == server_recv and keys[ATTR_RECV][:16] == server_send
    assert "sending MPPE keys (send 32 bytes, receive 32 bytes)" in client_log(case_dir)
    pppd.stop(20)
