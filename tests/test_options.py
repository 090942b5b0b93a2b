"""The command line: sstpc compatibility, --help equals the man page, secrets leave argv."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sstp_pppd import cli
from sstp_pppd.config import build_config, parse_pin
from sstp_pppd.errors import ConfigError, ExitCode
from sstp_pppd.options import OPTIONS, ArgKind, help_text, parse_args, parse_server

MAN = Path(__file__).resolve().parent.parent / "man" / "sstp-pppd.8"

#: Every option sstpc 1.0.18 accepts (src/sstp-option.c, its --help and its man page).
SSTPC_OPTIONS = {
    "--ca-cert",
    "--ca-path",
    "--crl-file",
    "--crl-path",
    "--cert-warn",
    "--tls-ext",
    "--host",
    "--uuid",
    "--proxy",
    "--nolaunchpppd",
    "--ipparam",
    "--user",
    "--password",
    "--priv-user",
    "--priv-group",
    "--priv-dir",
    "--save-server-route",
    "--log-level",
    "--log-syslog",
    "--log-stderr",
    "--log-stdout",
    "--log-file",
    "--log-ident",
    "--log-lineno",
    "--log-filter",
    "--log-token",
    "--help",
    "--version",
}


def man_options() -> set[str]:
    """The options the man page describes: the tags of its .TP paragraphs."""
    lines = MAN.read_text().splitlines()
    opts = set()
    for prev, line in itertools.pairwise(lines):
        m = re.match(r"^\.(?:BI|BR|B) (\\-\\-[a-z0-9\\-]+)", line)
        if prev == ".TP" and m:
            opts.add(m.group(1).replace("\\-", "-"))
    return opts


def test_every_sstpc_option_is_accepted() -> None:
    names = {o.name for o in OPTIONS}
    assert SSTPC_OPTIONS <= names
    for spec in OPTIONS:
        assert spec.sstpc == (spec.name in SSTPC_OPTIONS), spec.name


def test_help_and_man_page_list_the_same_options() -> None:
    in_help = set(re.findall(r"^  (--[a-z0-9-]+)", help_text(), re.M))
    assert in_help == {o.name for o in OPTIONS}
    assert man_options() == in_help


def test_man_page_exit_codes_match_the_enum() -> None:
    text = MAN.read_text().split(".SH EXIT STATUS", 1)[1].split(".SH", 1)[0]
    codes = {int(c) for c in re.findall(r"^\.B (\d+)$", text, re.M)}
    assert codes == {int(c) for c in ExitCode}


def test_options_then_server_then_pppd_options() -> None:
    p = parse_args(
        [
            "--cert-warn",
            "--log-level",
            "4",
            "--log-syslog",
            "vpn.example.com",
            "--",
            "noauth",
            "-am",
            "--weird",
        ]
    )
    assert p.values == {"cert_warn": True, "log_level": "4", "log_syslog": True}
    assert p.server is not None and p.server.host == "vpn.example.com"
    assert p.server.port == 443
    assert p.pppd_options == ["noauth", "-am", "--weird"]


def test_optional_values_only_with_equals() -> None:
    p = parse_args(["--log-file=/tmp/x.log", "--log-syslog=/dev/log", "h"])
    assert p.values == {"log_file": "/tmp/x.log", "log_syslog": "/dev/log"}


def test_pppd_options_without_separator() -> None:
    p = parse_args(["--nolaunchpppd", "h:4433", "noauth", "debug"])
    assert p.server is not None and p.server.port == 4433
    assert p.pppd_options == ["noauth", "debug"]


def test_double_dash_before_server() -> None:
    p = parse_args(["--user", "u", "--", "host", "noauth"])
    assert p.server is not None and p.server.host == "host"
    assert p.pppd_options == ["noauth"]


@pytest.mark.parametrize(
    ("text", "host", "port", "user", "password"),
    [
        ("vpn.example.com", "vpn.example.com", 443, None, None),
        ("https://vpn.example.com:8443/path", "vpn.example.com", 8443, None, None),
        ("https://al%40ice:p%3Ass@10.0.0.1", "10.0.0.1", 443, "al@ice", "p:ss"),
        ("[2001:db8::1]:4443", "2001:db8::1", 4443, None, None),
        ("[2001:db8::1]", "2001:db8::1", 443, None, None),
    ],
)
def test_server_syntax(
    text: str, host: str, port: int, user: str | None, password: str | None
) -> None:
    server, u, p = parse_server(text)
    assert (server.host, server.port, u, p) == (host, port, user, password)


@pytest.mark.parametrize("text", ["http://h", "h:99999", "[nothex]:1", "h:x", ""])
def test_bad_server(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_server(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus", "h"],
        ["--ca-cert"],
        ["--tls-ext=1", "h"],
        ["--log-level", "9", "h"],
        ["--tls-min-version", "1.0", "h"],
        ["--nolaunchpppd", "--log-stdout", "h"],
        [],
        ["--password", "a", "--password-file", "/dev/null", "h"],
        ["--pin-sha256", "abc", "h"],
        ["--connect-timeout", "-1", "h"],
    ],
)
def test_usage_errors(argv: list[str]) -> None:
    with pytest.raises(ConfigError):
        build_config(parse_args(argv))


def test_usage_error_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--bogus", "h"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--bogus" in err


def test_pins() -> None:
    fp = "AB:" * 31 + "CD"
    assert parse_pin(fp).digest == bytes.fromhex("ab" * 31 + "cd")
    assert not parse_pin(fp).spki
    pin = parse_pin("sha256//" + "A" * 43 + "=")
    assert pin.spki and len(pin.digest) == 32


def test_password_file(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text("s3cret with spaces\nsecond line\n")
    f.chmod(0o600)
    cfg = build_config(parse_args(["--password-file", str(f), "--user", "u", "h"]))
    assert cfg.pppd.password is not None and cfg.pppd.password.reveal() == "s3cret with spaces"
    assert "s3cret" not in repr(cfg)


def test_insecure_and_cert_warn_are_one_option() -> None:
    assert build_config(parse_args(["--cert-warn", "h"])).tls.insecure
    assert build_config(parse_args(["--insecure", "h"])).tls.insecure
    assert not build_config(parse_args(["h"])).tls.insecure


def test_password_is_scrubbed_from_the_process_command_line() -> None:
    code = (
        "import sys, time; from sstp_pppd.scrub import scrub_process_argv; "
        "ok = scrub_process_argv(); print(ok, flush=True); time.sleep(5)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--password", "hunter2secret"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "True"
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert b"hunter2secret" not in cmdline
        assert b"xxxxxxxxxxxxx" in cmdline
    finally:
        proc.kill()
        proc.wait()


def test_help_goes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "--pin-sha256" in capsys.readouterr().out


def test_every_option_kind_parses() -> None:
    for spec in OPTIONS:
        if spec.name in ("--help", "--version"):
            continue
        argv = {
            ArgKind.NONE: [spec.name],
            ArgKind.OPTIONAL: [spec.name],
            ArgKind.REQUIRED: [spec.name, "1"],
        }[spec.arg]
        p = parse_args([*argv, "host"])
        assert spec.dest in p.values
        assert p.server is not None and p.server.host == "host"


def test_pty_mode_never_writes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--nolaunchpppd", "--version"]) == 0
    assert cli.main(["--nolaunchpppd", "--help"]) == 0
    out = capsys.readouterr()
    assert out.out == ""
    assert "sstp-pppd" in out.err


def test_proxy_password_not_in_config_repr() -> None:
    cfg = build_config(parse_args(["--proxy", "http://u:s3cr3t@127.0.0.1:3128", "h"]))
    assert cfg.proxy is not None
    assert "s3cr3t" not in repr(cfg)


# --- sstpc's getopt_long grammar (issue 7) -------------------------------------------------

NM_UUID = "0c4bbf5c-9f02-4b5f-8a4e-5c1f9c3f1c2d"
#: A readable file for --ca-cert: the run checks it can read the CA before connecting
#: (its contents are only read by TLS, which these tests never reach).
CA_FILE = __file__


@pytest.mark.parametrize("proxy", [None, "http://u:p@h:8080"])
def test_networkmanager_sstp_order(proxy: str | None) -> None:
    """NetworkManager-sstp 1.3's pty line: the server first, every sstpc option after it."""
    argv = ["vpn.example.com", "--cert-warn", "--tls-ext"]
    if proxy:
        argv += ["--proxy", proxy]
    argv += ["--nolaunchpppd", "--log-level", "5", "--ipparam", "nm-pptp-service-1234"]
    argv += ["--uuid", NM_UUID, "--ca-cert", CA_FILE]
    p = parse_args(argv)
    want: dict[str, object] = {
        "cert_warn": True,
        "tls_ext": True,
        "nolaunchpppd": True,
        "log_level": "5",
        "ipparam": "nm-pptp-service-1234",
        "uuid": NM_UUID,
        "ca_cert": CA_FILE,
    }
    if proxy:
        want["proxy"] = proxy
    assert p.values == want
    assert p.server is not None and p.server.host == "vpn.example.com"
    assert p.pppd_options == []
    cfg = build_config(p)
    assert cfg.tls.insecure
    assert (cfg.proxy is not None) == bool(proxy)


def test_networkmanager_proxy_password_stays_out_of_the_config_repr() -> None:
    p = parse_args(["gw", "--proxy", "http://u:s3cr3t@h:8080", "--nolaunchpppd"])
    assert "s3cr3t" not in repr(build_config(p))


@pytest.mark.parametrize(
    ("argv", "server", "pppd"),
    [
        # sstpc(8): sstpc [options] <server> [[--] pppd options]
        (["--user", "u", "--password", "p", "h", "noauth", "debug"], "h", ["noauth", "debug"]),
        (["--user", "u", "h", "--", "noauth", "-detach"], "h", ["noauth", "-detach"]),
        (["--nolaunchpppd", "--ipparam", "x", "h"], "h", []),
        # permutation: options between and after the non-option words
        (["h", "noauth", "--user", "u", "debug"], "h", ["noauth", "debug"]),
        (["h", "a", "--", "b", "--user", "-c"], "h", ["a", "b", "--user", "-c"]),
        # the server may follow "--"
        (["--user", "u", "--", "h", "noauth"], "h", ["noauth"]),
        # a lone "-" is a word, and a required value is the next word whatever it is
        (["--user", "-am", "h", "-"], "h", ["-"]),
    ],
)
def test_sstpc_man_page_forms(argv: list[str], server: str, pppd: list[str]) -> None:
    p = parse_args(argv)
    assert p.server is not None and p.server.host == server
    assert p.pppd_options == pppd


def test_required_value_may_look_like_an_option() -> None:
    p = parse_args(["--password", "--secret", "--user", "--", "h"])
    assert p.values == {"password": "--secret", "user": "--"}


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["h", "--bogus"], "'--bogus'"),
        (["h", "noauth", "--cert-warnings"], "'--cert-warn...'"),
        (["h", "noauth", "-detach"], "'-d'"),
        (["-am", "h"], "'-a'"),
        (["h", "--ca", "x"], "ambiguous"),
        (["h", "--nolaunchpppd=yes"], "takes no value"),
        (["h", "--log-level"], "needs a value"),
    ],
)
def test_sstpc_usage_errors(argv: list[str], word: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=re.escape(word)):
        parse_args(argv)
    assert cli.main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and word in err


def test_unknown_option_after_double_dash_goes_to_pppd() -> None:
    p = parse_args(["h", "--", "--bogus", "-detach"])
    assert p.pppd_options == ["--bogus", "-detach"]


def test_abbreviations_as_getopt_long() -> None:
    p = parse_args(["--nolaunch", "h", "--log-le", "3", "--ipp=n"])
    assert p.values == {"nolaunchpppd": True, "log_level": "3", "ipparam": "n"}
    # an exact name wins over the longer names it prefixes
    assert parse_args(["--password", "x", "h"]).values == {"password": "x"}


def test_short_v_is_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["-v"]).values == {"version": True}
    assert cli.main(["h", "--nolaunchpppd", "-v"]) == 0
    assert "sstp-pppd" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "path"),
    [
        (["h"], "/var/run/sstpc/sstpc-uds-sock"),
        (["h", "--ipparam", "nm-pptp-service-7"], "/var/run/sstpc/sstpc-nm-pptp-service-7"),
        (["h", "--ipparam", "x", "--key-socket", "/run/k"], "/run/k"),
        (["h", "--key-socket", "none"], None),
    ],
)
def test_key_socket(argv: list[str], path: str | None) -> None:
    assert build_config(parse_args(argv)).pppd.key_socket == path


@pytest.mark.parametrize("argv", [["h", "--ipparam", "../etc"], ["h", "--key-socket", "rel"]])
def test_bad_key_socket(argv: list[str]) -> None:
    with pytest.raises(ConfigError):
        build_config(parse_args(argv))


# --- the same verdicts as the real sstpc 1.0.18 ----------------------------------------------

SSTPC = shutil.which("sstpc")
#: Nothing listens on port 1: sstpc gets as far as connecting only if it accepted its argv.
NOWHERE = "127.0.0.1:1"
DIFFERENTIAL_FORMS = [
    [
        NOWHERE,
        "--cert-warn",
        "--tls-ext",
        "--nolaunchpppd",
        "--uuid",
        NM_UUID,
        "--ca-cert",
        CA_FILE,
    ],
    [NOWHERE, "--nolaunchpppd", "--proxy", "http://u:p@127.0.0.1:1"],
    ["--nolaunchpppd", NOWHERE, "noauth", "debug"],
    ["--nolaunchpppd", NOWHERE, "noauth", "-detach"],
    ["--nolaunchpppd", NOWHERE, "--", "noauth", "-detach"],
    [NOWHERE, "--nolaunchpppd", "--bogus"],
    [NOWHERE, "--nolaunchpppd", "--", "--bogus"],
    ["--nolaunch", NOWHERE],
    ["--nolaunchpppd=1", NOWHERE],
    ["--cert", "--nolaunchpppd", NOWHERE],
    ["--nolaunchpppd", "-x", NOWHERE],
    ["--nolaunchpppd", "--", NOWHERE, "noauth"],
    ["--nolaunchpppd", NOWHERE, "--uuid"],
    ["--nolaunchpppd", "--user", "--", NOWHERE],
    ["--nolaunchpppd"],
    ["-v"],
]


def sstpc_accepts(argv: list[str], ipparam: str) -> bool:
    """Whether sstpc 1.0.18 takes ``argv``: it then connects (and fails: nobody listens)."""
    assert SSTPC is not None
    # --log-stderr first: without a syslog daemon sstpc crashes; --ipparam: its own socket.
    full = [SSTPC, "--log-stderr", "--ipparam", ipparam, *argv]
    res = subprocess.run(
        full, capture_output=True, timeout=30, stdin=subprocess.DEVNULL, check=False
    )
    out = (res.stdout + res.stderr).decode(errors="replace")
    refused = "Could not execute `" in out
    assert out, "sstpc printed nothing"
    return not refused


def we_accept(argv: list[str]) -> bool:
    try:
        p = parse_args(["--log-stderr", "--ipparam", "x", *argv])
        if not p.values.get("version"):
            build_config(p)
    except ConfigError:
        return False
    return True


@pytest.mark.skipif(SSTPC is None or os.getuid() != 0, reason="needs sstpc 1.0.18 and root")
@pytest.mark.parametrize("argv", DIFFERENTIAL_FORMS, ids=" ".join)
def test_same_verdict_as_sstpc(argv: list[str]) -> None:
    ipparam = f"kcdiff-{os.getpid()}"
    try:
        assert we_accept(argv) == sstpc_accepts(argv, ipparam)
    finally:
        # sstpc leaves its socket behind when it fails.
        Path(f"/var/run/sstpc/sstpc-{ipparam}").unlink(missing_ok=True)


@pytest.mark.skipif(SSTPC is None or os.getuid() != 0, reason="needs sstpc 1.0.18 and root")
def test_the_one_difference_from_sstpc() -> None:
    """glibc takes the first of several prefix matches that take the same kind of value
    (sstpc reads --ca FILE as --ca-cert FILE); an ambiguous prefix is an error here."""
    ipparam = f"kcdiff-{os.getpid()}"
    ambiguous = ["--ca", "/x", "--nolaunchpppd", NOWHERE]
    try:
        assert sstpc_accepts(ambiguous, ipparam) and not we_accept(ambiguous)
    finally:
        Path(f"/var/run/sstpc/sstpc-{ipparam}").unlink(missing_ok=True)
