"""sstp-helper add, remove and list against a temp root: the files pppd and the transport read.

Every command runs through :func:`sstp_pppd.helper.main` with ``--root``, so the real /etc
is never touched; what is checked is the bytes written, read back with the same parsers
pppd's rules are implemented by (:mod:`sstp_pppd.secrets`, :func:`peers.pppd_words`).
"""

from __future__ import annotations

import os
import pty
import select
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sstp_pppd import helper, secrets
from sstp_pppd.errors import ConfigError, ExitCode
from sstp_pppd.helpercmd import peers
from sstp_pppd.helpercmd.paths import NotRoot, Paths, require_root, validate_name
from sstp_pppd.pppdopts import MAXSECRETLEN
from sstp_pppd.secrets import Secret

pytest.importorskip("sstp_pppd.host.connconf", reason="host.connconf is merged separately")

HARD_PASSWORDS = [
    "plain",
    "with space",
    'dq"uote',
    "sq'uote",
    "back\\slash",
    "trailing\\",
    "#hash at start",
    "mid#hash",
    "\\n not a newline",
    "ünïcødé ✓",
    '"\\"#\' \\\\',
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


def run(root: Path, *argv: str) -> int:
    return helper.main(["--root", str(root), *argv])


def add(
    root: Path, tmp_path: Path, name: str = "work", password: str = "s3cret", *extra: str
) -> int:
    pw = tmp_path / f"pw-{name}"
    pw.write_text(password + "\n")
    pw.chmod(0o600)
    return run(root, "add", name, "--server", "vpn.example.com:8443", "--user", "alice",
               "--password-file", str(pw), *extra)  # fmt: skip


def transport_secret(data: str, client: str, server: str) -> Secret | None:
    """The password the transport finds for the crypto binding in chap-secrets ``data``."""
    if hasattr(secrets, "scan_authfile"):
        return secrets.scan_authfile(data.encode(), client.encode(), server.encode()).secret
    return secrets.find_secret(secrets.parse_secrets(data.split("\n")), client, server)


def secrets_of(root: Path) -> list[str]:
    return (root / "etc/ppp/chap-secrets").read_text().rstrip("\n").split("\n")


def test_add_writes_the_peers_file(root: Path, tmp_path: Path) -> None:
    assert add(root, tmp_path) == 0
    text = (root / "etc/ppp/peers/work").read_text()
    lines = text.splitlines()
    assert peers.is_ours(text)
    assert "name alice" in lines
    assert "remotename work" in lines
    assert "ipparam work" in lines
    assert "linkname work" in lines
    assert " ".join(peers.DEFAULT_PPPD_OPTIONS) in lines
    assert "usepeerdns" not in lines
    argv = shlex.split(peers.peers_option(text, "pty") or "")
    assert argv[1:] == ["--nolaunchpppd", "--ipparam", "work", "vpn.example.com:8443"]
    assert argv[0].endswith("sstp-pppd") and os.path.isabs(argv[0])
    assert "s3cret" not in text
    mode = stat.S_IMODE((root / "etc/ppp/peers/work").stat().st_mode)
    assert mode == 0o644


def test_defaults_leave_only_mschap_v2() -> None:
    opts = set(peers.DEFAULT_PPPD_OPTIONS)
    assert {"noauth", "refuse-eap", "refuse-pap", "refuse-chap", "refuse-mschap"} <= opts
    assert "refuse-mschap-v2" not in opts
    assert "nodefaultroute" in opts and "persist" not in opts


def test_pppd_options_replace_the_defaults_and_dns_adds_usepeerdns(
    root: Path, tmp_path: Path
) -> None:
    assert add(root, tmp_path, "work", "pw", "--dns", "--", "noauth", "mtu", "1400", "a b") == 0
    lines = (root / "etc/ppp/peers/work").read_text().splitlines()
    assert 'noauth mtu 1400 "a b"' in lines
    assert "usepeerdns" in lines
    assert not any(line.startswith("refuse-") for line in lines)


def test_pty_command_survives_both_quotings(root: Path, tmp_path: Path) -> None:
    """A CA file with a space, quotes, a backslash and '#' reaches sstp-pppd as one argument."""
    odd = tmp_path / 'my ca\'s "dir" #1 \\x'
    odd.mkdir()
    ca = odd / "ca.pem"
    ca.write_text("x")
    pin = "ab" * 32
    assert add(root, tmp_path, "work", "pw", "--ca-cert", str(ca), "--pin-sha256", pin) == 0
    text = (root / "etc/ppp/peers/work").read_text()
    (pty_line,) = [line for line in text.splitlines() if line.startswith("pty ")]
    words = peers.pppd_words(pty_line)
    assert len(words) == 2, pty_line  # pppd sees one word after "pty"
    argv = shlex.split(words[1])  # and /bin/sh -c splits it back
    assert argv[1:] == ["--nolaunchpppd", "--ipparam", "work", "--ca-cert", str(ca),
                        "--pin-sha256", pin, "vpn.example.com:8443"]  # fmt: skip


@pytest.mark.parametrize("password", HARD_PASSWORDS)
def test_chap_secrets_quoting_round_trips(root: Path, tmp_path: Path, password: str) -> None:
    assert add(root, tmp_path, "work", password) == 0
    data = (root / "etc/ppp/chap-secrets").read_text()
    assert transport_secret(data, "alice", "work") == Secret(password)
    # pppd's own word splitting gives the same third word
    (line,) = secrets_of(root)
    assert peers.pppd_words(line) == ["alice", "work", password, "*"]


@settings(max_examples=300, deadline=None)
@given(
    st.text(st.characters(codec="utf-8", min_codepoint=0x20, exclude_characters="\x7f"), min_size=1)
)
def test_secrets_line_round_trips(password: str) -> None:
    if password.startswith("@/") or len(password.encode()) > MAXSECRETLEN:
        with pytest.raises(ConfigError):
            peers.secrets_line("alice", "work", Secret(password))
        return
    line = peers.secrets_line("alice", "work", Secret(password))
    assert peers.pppd_words(line) == ["alice", "work", password, "*"]
    if password.startswith("@") and not hasattr(secrets, "scan_authfile"):
        return  # the old reader took any "@word" for a file; pppd only "@/path"
    assert transport_secret(line, "alice", "work") == Secret(password)


def test_a_password_pppd_would_cut_is_refused() -> None:
    """pppd takes 256 bytes of a secret and drops the rest (with a log line only)."""
    longest = "é" * 128  # 256 bytes
    line = peers.secrets_line("alice", "work", Secret(longest))
    assert transport_secret(line, "alice", "work") == Secret(longest)
    with pytest.raises(ConfigError, match="257 bytes long") as refused:
        peers.secrets_line("alice", "work", Secret(longest + "x"))
    assert "é" not in str(refused.value)


def test_control_characters_are_refused(root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        peers.secrets_line("alice", "work", Secret("tab\there"))
    pw = tmp_path / "pw"
    pw.write_text("bell\a\n")
    rc = run(root, "add", "w", "--server", "s", "--user", "u", "--password-file", str(pw))
    assert rc == ExitCode.USAGE
    assert not (root / "etc/ppp/peers/w").exists()


def test_chap_secrets_mode_other_lines_kept_no_duplicate(root: Path, tmp_path: Path) -> None:
    cs = root / "etc/ppp/chap-secrets"
    cs.parent.mkdir(parents=True)
    cs.write_text('# Secrets\n"labuser" * "labpass" *\nbob other "x" *\n')
    cs.chmod(0o644)
    assert add(root, tmp_path, "work", "first") == 0
    assert add(root, tmp_path, "work", "second") == 0
    lines = secrets_of(root)
    assert lines[:3] == ["# Secrets", '"labuser" * "labpass" *', 'bob other "x" *']
    assert lines[3:] == ['alice work "second" *']
    assert stat.S_IMODE(cs.stat().st_mode) == 0o600
    assert [p.name for p in cs.parent.iterdir() if p.name.startswith(".")] == []


def test_write_atomic_keeps_the_old_file_on_failure(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert add(root, tmp_path, "work", "old") == 0
    before = (root / "etc/ppp/chap-secrets").read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        peers.update_secrets(root / "etc/ppp/chap-secrets", "work", 'alice work "new" *\n')
    assert (root / "etc/ppp/chap-secrets").read_bytes() == before
    assert sorted(p.name for p in (root / "etc/ppp").iterdir()) == ["chap-secrets", "peers"]


def test_password_never_printed(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "Very-Secret-42"
    assert add(root, tmp_path, "work", secret) == 0
    assert run(root, "list") == 0
    assert run(root, "status") == 0
    assert run(root, "status", "--json") == 0
    out, err = capsys.readouterr()
    assert secret not in out and secret not in err


def test_ask_password_reads_a_line_from_stdin_not_argv(root: Path) -> None:
    """The password comes through a pipe; neither argv nor the output carries it."""
    secret = "piped pass\\word"
    argv = [sys.executable, "-m", "sstp_pppd.helper", "--root", str(root), "add", "work",
            "--server", "vpn", "--user", "alice", "--ask-password"]  # fmt: skip
    res = subprocess.run(argv, input=secret + "\n", capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert secret not in res.stdout + res.stderr
    assert secret not in " ".join(argv)
    data = (root / "etc/ppp/chap-secrets").read_text()
    assert transport_secret(data, "alice", "work") == Secret(secret)


def test_ask_password_empty_is_refused(root: Path) -> None:
    argv = [sys.executable, "-m", "sstp_pppd.helper", "--root", str(root), "add", "work",
            "--server", "vpn", "--user", "alice", "--ask-password"]  # fmt: skip
    res = subprocess.run(argv, input="", capture_output=True, text=True, check=False)
    assert res.returncode == ExitCode.USAGE
    assert res.stderr.strip() == "sstp-helper add: no password given"


@pytest.mark.parametrize(
    "name", ["", "a/b", "..", "a..b", "*", "-x", "sp ace", "x" * 64, "new\nline", "a@b"]
)
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError):
        validate_name(name)


@pytest.mark.parametrize("name", ["work", "Work-2", "a.b_c", "x" * 63, "0"])
def test_good_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--route", "10.1.2.3/16"], "--route"),
        (["--kill-switch"], "--kill-switch needs --default-route"),
        (["--dns-domain", "not a domain"], "--dns-domain"),
        (["--pin-sha256", "xyz"], "--pin-sha256"),
        (["--ca-cert", "/nonexistent/ca.pem"], "--ca-cert"),
        (["--", "nodetach"], "nodetach"),
        (["--", "ipparam", "x"], "ipparam"),
    ],
)
def test_bad_settings_write_nothing(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert add(root, tmp_path, "work", "pw", *extra) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (root / "etc").exists() or not any((root / "etc").rglob("*work*"))


def test_route_and_dns_settings_are_saved(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sstp_pppd.helpercmd import hostapi

    extra = ["--route", "10.1.0.0/16", "--route", "2001:db8:1::/48", "--default-route",
             "--kill-switch", "--dns", "--dns-domain", "corp.example",
             "--dns-domain", "~lab"]  # fmt: skip
    assert add(root, tmp_path, "work", "pw", *extra) == 0
    conn = hostapi.load_connection("work", root)
    assert conn.routes == ("10.1.0.0/16", "2001:db8:1::/48")
    assert conn.default_route and conn.kill_switch and conn.dns
    assert conn.dns_domains == ("corp.example", "~lab")
    assert hostapi.scripts_dir("work", root).is_dir()
    assert "sstp-helper install-hooks" in capsys.readouterr().out


def test_remove_undoes_add(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert add(root, tmp_path, "work", "pw1", "--route", "10.1.0.0/16") == 0
    assert add(root, tmp_path, "other", "pw2") == 0
    capsys.readouterr()
    assert run(root, "remove", "work") == 0
    assert not (root / "etc/ppp/peers/work").exists()
    assert not (root / "etc/sstp-pppd/work.conf").exists()
    assert not (root / "etc/sstp-pppd/work").exists()
    assert secrets_of(root) == ['alice other "pw2" *']
    assert run(root, "list") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "connection work removed"
    assert [line.split()[0] for line in out[2:]] == ["other"]
    assert run(root, "remove", "work") == ExitCode.USAGE


def test_remove_keeps_user_scripts(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add(root, tmp_path) == 0
    script = root / "etc/sstp-pppd/work/scripts.d/50-mine"
    script.write_text("#!/bin/sh\n")
    assert run(root, "remove", "work") == 0
    assert script.exists()
    assert "stay in" in capsys.readouterr().out


def test_foreign_peers_file_is_left_alone(root: Path, tmp_path: Path) -> None:
    mine = root / "etc/ppp/peers/work"
    mine.parent.mkdir(parents=True)
    mine.write_text("pty 'sstpc ...'\n")
    assert add(root, tmp_path) == ExitCode.USAGE
    assert run(root, "remove", "work") == ExitCode.USAGE
    assert mine.read_text() == "pty 'sstpc ...'\n"


def test_list(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(root, "list") == 0
    assert "no connections" in capsys.readouterr().out
    assert add(root, tmp_path, "b") == 0
    assert add(root, tmp_path, "a") == 0
    (root / "etc/ppp/peers/foreign").write_text("pty x\n")
    capsys.readouterr()
    assert run(root, "list") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "STATE", "SERVER", "USER"]
    assert [line.split() for line in out[1:]] == [
        ["a", "down", "vpn.example.com:8443", "alice"],
        ["b", "down", "vpn.example.com:8443", "alice"],
    ]


def test_writes_need_root_on_the_real_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(NotRoot, match="run it as root"):
        require_root(Paths(Path("/")), "add")
    require_root(Paths(Path("/tmp")), "add")  # a test root: file permissions decide


def test_usage_errors_exit_2(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run(root, "add", "work", "--user", "u", "--password-file", "x")
    assert exc.value.code == ExitCode.USAGE
    assert "--server" in capsys.readouterr().err
    assert run(root, "up", "work", "--", "x") == ExitCode.USAGE


def test_other_lines_are_kept_byte_for_byte(root: Path, tmp_path: Path) -> None:
    """Lines are split at \\n only: a U+2028 or U+0085 in someone's password stays put."""
    cs = root / "etc/ppp/chap-secrets"
    cs.parent.mkdir(parents=True)
    other = 'bob srv "a\u2028b\x85c" *\n# no newline at the end'
    cs.write_text(other)
    assert add(root, tmp_path, "work", "pw") == 0
    assert cs.read_text() == other + '\nalice work "pw" *\n'


def test_install_unit_writes_this_installations_paths(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(root, "install-unit") == 0
    unit = (root / "etc/systemd/system/sstp-pppd@.service").read_text()
    assert stat.S_IMODE((root / "etc/systemd/system/sstp-pppd@.service").stat().st_mode) == 0o644
    (start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert start.split("=", 1)[1].split()[1:] == ["call", "%i", "nodetach", "up_sdnotify"]
    assert os.path.isabs(start.split("=", 1)[1].split()[0])
    (post,) = [line for line in unit.splitlines() if line.startswith("ExecStopPost=")]
    helper_exe, *rest = post.split("=", 1)[1].split()
    assert rest == ["cleanup", "%i"] and helper_exe.endswith("sstp-helper")
    assert "installed" in capsys.readouterr().out


def test_install_hooks(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(root, "install-hooks") == 0
    for d in ("ip-up.d", "ip-down.d", "ipv6-up.d", "ipv6-down.d"):
        hook = root / "etc/ppp" / d / "sstp-pppd"
        assert hook.read_text().startswith("#!/bin/sh")
        assert os.access(hook, os.X_OK)
    from sstp_pppd.helpercmd import hostapi

    assert hostapi.hooks_installed(root)


def test_commands_of_other_parts_fail_clearly_when_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Dispatched lazily: a part that is not there names itself, nothing else breaks."""
    for name, (modname, _, _) in helper.EXTERNAL.items():
        try:
            __import__(f"sstp_pppd.{modname}")
        except ImportError:
            assert helper.main([name, "--help"]) == ExitCode.INTERNAL
            err = capsys.readouterr().err
            assert err.startswith(f"sstp-helper {name}: ") and f"sstp_pppd.{modname}" in err


def test_ask_password_on_a_terminal_is_not_echoed(root: Path) -> None:
    """On a terminal the password is read by getpass: the terminal shows the prompt only."""
    secret = "typed-Secret 1"
    argv = [sys.executable, "-m", "sstp_pppd.helper", "--root", str(root), "add", "work",
            "--server", "vpn", "--user", "alice", "--ask-password"]  # fmt: skip
    pid, fd = pty.fork()
    if pid == 0:  # the child: its terminal is the pty
        os.execv(argv[0], argv)
    seen = b""
    try:
        while b"Password for alice on work: " not in seen:
            ready, _, _ = select.select([fd], [], [], 10)
            assert ready, f"no prompt: {seen!r}"
            seen += os.read(fd, 1024)
        os.write(fd, secret.encode() + b"\n")
        while True:
            ready, _, _ = select.select([fd], [], [], 10)
            if not ready:
                break
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    finally:
        _, wait_status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(wait_status) == 0, seen
    assert secret.encode() not in seen
    assert b"start it with: sstp-helper up work" in seen
    data = (root / "etc/ppp/chap-secrets").read_text()
    assert transport_secret(data, "alice", "work") == Secret(secret)


def test_a_bug_ends_in_one_line(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sstp_pppd.helpercmd import state

    assert add(root, tmp_path) == 0
    capsys.readouterr()

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(state, "probe", broken)
    assert run(root, "list") == ExitCode.INTERNAL
    err = capsys.readouterr().err
    assert err == (
        "sstp-helper list: internal error: OSError: [Errno 22] Invalid argument "
        "(SSTP_HELPER_DEBUG=1 shows where)\n"
    )
