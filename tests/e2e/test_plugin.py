"""Our pppd plugin, sstp-pppd-keys.so, with the real pppd 2.4.9 against sstp-server 0.7.2.

The plugin is built once per module against the installed headers (``build.build_plugin``)
into the run directory, which the guest shares, and loaded by absolute path from a pppd
peers file in pty mode. A small listener (``keysink.py``) plays the transport's side of the
socket in the client's namespace: it records every message and acknowledges it, while the
tunnel's binding comes from the transport's chap-secrets. The cases through the
transport's own key channel, and with pppd 2.5, are in test_plugin_channel.py.

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

Not reachable in this bed: EAP-MSCHAPv2. pppd's EAP server offers MSCHAPv2 only when the
peer NAKs its MD5-Challenge proposing type 26, and pppd's EAP client NAKs only with SRP, so
two pppds always settle on EAP-MD5 (tested above) when they share a CHAP secret.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sstp_pppd.core import crypto
from sstp_pppd.plugin import build

from .bed import CHAP_SECRETS, HOST_PYTHON, PASSWORD, Lab, SstpServer, Timings
from .certs import SERVER_NAME
from .pluginlab import (
    ATTR_RECV,
    ATTR_SEND,
    AUTH,
    HANDED,
    MAGIC,
    NOKEYS,
    SOCK_DIR,
    Sink,
    attrs,
    client_auth,
    client_cert,
    client_log,
    connect,
    dual_plugins,
    nt_response_from_log,
    peers_file,
    private_plugin_dir,
    server_options,
    server_view_keys,
    stop,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("tidy_plugin_secrets")]


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
