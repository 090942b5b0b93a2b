"""The real cause wins: LCP that agrees on no authentication method, against real pppd.

sstp-server's pppd insists on a method our client's pppd refuses. What pppd 2.4.9 does then
(its debug logs, both sides, in each case directory): the server's Configure-Request asks
for the method, pppd Configure-Naks it (suggesting one it allows), the server asks again
without it, LCP opens with no authentication, pppd starts IPCP, and the server's pppd
sends ``TermReq "peer refused to authenticate"`` and exits; sstpd then disconnects the
call. Before issue 9 the client blamed that disconnect (exit 10, "the server disconnected
the call"); now it names the refused method and the pppd option (exit 7, AUTH).

The reverse case: our pppd requires the server to authenticate itself (``auth
require-chap``), the server's pppd rejects that, and our pppd ends the link ("peer refused
to authenticate", pppd exit 11). Before, exit 8 ("the server failed to authenticate itself
to pppd"); now exit 7 with the fix, ``noauth``.

Each case runs at the default log level: the error line is what a user sees.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .bed import CHAP_SECRETS, PASSWORD, SERVER_PPPD_OPTIONS, SSTP_PPPD, USERNAME, Lab, Timings
from .certs import SERVER_NAME

pytestmark = pytest.mark.e2e

EXIT_AUTH = 7
#: The server's pppd options without its method: each case adds the one it insists on.
SERVER_BASE = tuple(o for o in SERVER_PPPD_OPTIONS if o != "require-mschap-v2")
CLIENT_BASE = ("nodefaultroute", "noccp", "debug")


def password_file(d: Path) -> Path:
    f = d / "password"
    f.write_text(PASSWORD + "\n")
    f.chmod(0o600)
    return f


def last_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "the client printed nothing"
    assert "Traceback" not in stderr
    return lines[-1]


def check_error(stderr: str, *expected: str) -> None:
    line = last_line(stderr)
    assert "PPP authentication method not agreed: " in line, stderr
    for text in expected:
        assert text in line, line
    # The consequence is not reported as the cause, at any level the user sees.
    assert "disconnected the call" not in stderr, stderr
    assert "wrong user name or password" not in stderr, stderr


def launch(lab: Lab, d: Path, pppd: tuple[str, ...], server: tuple[str, ...]) -> tuple[int, str]:
    """sstp-pppd in launch mode (default log level) against sstpd with ``server`` options."""
    lab.server.start(d, pppd_options=(*SERVER_BASE, *server))
    argv = [str(SSTP_PPPD), "--ca-cert", str(lab.certs.ca.cert), "--user", USERNAME,
            "--password-file", str(password_file(d)), SERVER_NAME,
            "--", *pppd, *CLIENT_BASE, "logfile", str(d / "client-pppd.log")]  # fmt: skip
    res = lab.guest.spawn(argv, ns="cli", log_dir=d, name="sstp-pppd").wait(90)
    return res.returncode, res.stderr


@pytest.mark.parametrize(
    ("server", "client", "method", "suggested"),
    [
        # pppd 2.4.9's Nak: EAP if it may, else CHAP (MD5 first), else PAP; a refused CHAP
        # digest is Naked with another digest.
        ("require-eap", "refuse-eap", "EAP", "CHAP-MD5"),
        ("require-mschap-v2", "refuse-mschap-v2", "MS-CHAPv2", "CHAP-MD5"),
        ("require-pap", "refuse-pap", "PAP", "EAP"),
    ],
)
def test_launch_mode_server_insists_on_a_refused_method(
    lab: Lab,
    case_dir: Path,
    timings: Timings,
    server: str,
    client: str,
    method: str,
    suggested: str,
) -> None:
    if method == "PAP":
        # The server's pppd does not start require-pap without a PAP secret for the peer.
        lab.guest.write_file("/etc/ppp/pap-secrets", CHAP_SECRETS, 0o600)
    try:
        with timings.step("refused"):
            rc, stderr = launch(lab, case_dir, ("noauth", client), (server,))
    finally:
        if method == "PAP":
            lab.guest.run(["rm", "-f", "/etc/ppp/pap-secrets"], ns="srv", check=True)
    server_log = lab.server.pppd_log_text
    assert "peer refused to authenticate: terminating link" in server_log, server_log
    assert rc == EXIT_AUTH, stderr
    check_error(
        stderr,
        f"the server asked for {method}, pppd refused it (Configure-Nak suggesting {suggested})",
        '"peer refused to authenticate"',
        f"remove {client} if set",
        f"or ask the server to offer {suggested}",
    )


def test_launch_mode_pppd_may_use_no_method(lab: Lab, case_dir: Path, timings: Timings) -> None:
    """Every method refused: pppd logs "No auth is possible" and Configure-Rejects."""
    refuse_all = ("refuse-eap", "refuse-pap", "refuse-chap", "refuse-mschap", "refuse-mschap-v2")
    with timings.step("refused"):
        rc, stderr = launch(lab, case_dir, ("noauth", *refuse_all), ("require-mschap-v2",))
    client_log = (case_dir / "client-pppd.log").read_text(errors="replace")
    assert "sent [LCP ConfRej id=0x1 <auth chap MS-v2>]" in client_log, client_log
    assert rc == EXIT_AUTH, stderr
    check_error(
        stderr,
        "the server asked for MS-CHAPv2, pppd refused to authenticate at all (Configure-Reject)",
        "give pppd a password for the user",
        "remove refuse-mschap-v2 if set",
    )


def test_launch_mode_pppd_requires_the_server_to_authenticate(
    lab: Lab, case_dir: Path, timings: Timings
) -> None:
    with timings.step("refused"):
        rc, stderr = launch(
            lab, case_dir, ("auth", "require-chap", "refuse-eap", "refuse-pap"), ("noauth",)
        )
    client_log = (case_dir / "client-pppd.log").read_text(errors="replace")
    assert "peer refused to authenticate: terminating link" in client_log, client_log
    assert rc == EXIT_AUTH, stderr
    check_error(
        stderr,
        "pppd required the server to authenticate itself with CHAP-MD5, the server refused "
        "(Configure-Reject), then pppd ended the link",
        "add noauth to pppd's options",
    )


def test_pty_mode_server_insists_on_a_refused_method(
    lab: Lab, case_dir: Path, timings: Timings
) -> None:
    """``pppd call`` with ``pty``: a wrapper keeps the client's stderr and exit status."""
    lab.server.start(case_dir, pppd_options=(*SERVER_BASE, "require-eap"))
    err, rc_file = case_dir / "client.err", case_dir / "client.rc"
    wrapper = case_dir / "client.sh"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"'{SSTP_PPPD}' --nolaunchpppd --ipparam realcause --ca-cert "
        f"'{lab.certs.ca.cert}' --log-stderr {SERVER_NAME} 2>'{err}'\n"
        f"echo $? >'{rc_file}'\n"
    )
    wrapper.chmod(0o755)
    peers = lab.write_client_file(
        "peers/realcause",
        f'pty "{wrapper}"\nname {USERNAME}\nremotename realcause\nipparam realcause\n'
        "noauth\nrefuse-eap\nnodefaultroute\nnoccp\nnodetach\ndebug\n",
    )
    secrets = lab.guest.cli_etc_ppp / "chap-secrets"
    before = secrets.read_bytes() if secrets.exists() else None
    lab.write_client_file("chap-secrets", f'"{USERNAME}" * "{PASSWORD}" *\n', 0o600)
    try:
        with timings.step("refused"):
            pppd = lab.pppd_call(
                "realcause", "logfile", str(case_dir / "client-pppd.log"), log_dir=case_dir
            )
            pppd.wait(90)
    finally:
        peers.unlink()
        if before is None:
            secrets.unlink()
        else:
            lab.write_client_file("chap-secrets", before.decode(), 0o600)
    client_log = (case_dir / "client-pppd.log").read_text(errors="replace")
    assert 'rcvd [LCP TermReq id=0x3 "peer refused to authenticate"]' in client_log, client_log
    stderr = err.read_text(errors="replace")
    assert rc_file.read_text().strip() == str(EXIT_AUTH), stderr
    check_error(
        stderr,
        "the server asked for EAP, pppd refused it (Configure-Nak suggesting CHAP-MD5)",
        "remove refuse-eap if set",
    )
