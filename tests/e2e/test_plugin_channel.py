"""Our pppd plugin through the transport's own key channel, and in a real pppd 2.5.

Same bed as test_plugin.py (pluginlab.py holds the shared parts). sstpd accepting the
binding ("Crypto Binding is valid.") proves the plugin's keys reached CALL_CONNECTED:
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
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sstp_pppd.plugin import build

from .bed import CHAP_SECRETS, HOST_PYTHON, PASSWORD, SSTP_PPPD, USERNAME, Lab, SstpServer, Timings
from .certs import SERVER_NAME
from .pluginlab import (
    ATTR_RECV,
    ATTR_SEND,
    HANDED,
    MSCHAPV2,
    PPPD25_ROOT,
    PPPD25_RT,
    SOCK_DIR,
    Sink,
    attrs,
    client_auth,
    client_cert,
    client_log,
    connect,
    guest_path_gone,
    peers_file,
    private_plugin_dir,
    server_options,
    server_view_keys,
    stop,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("tidy_plugin_secrets")]


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
