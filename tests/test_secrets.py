"""secrets: the secret pppd 2.4.9 would use, chosen by pppd's rules (auth.c scan_authfile,
get_secret, chap-new.c chap_respond). The e2e twin, tests/e2e/test_secrets.py, checks the
same forms against the real pppd."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sstp_pppd.errors import ConfigError
from sstp_pppd.pppdopts import PppdOptions
from sstp_pppd.secrets import (
    USE_PLUGIN,
    Secret,
    chap_secret,
    find_pppd_secret,
    password_lookup,
    read_password_file,
    scan_authfile,
)


def secret(data: bytes, client: bytes = b"alice", server: bytes = b"srv") -> bytes | None:
    found = scan_authfile(data, client, server).secret
    return None if found is None else found.reveal_bytes()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'alice srv "pw one" *\n', b"pw one"),
        (b"alice * pw\n", b"pw"),
        (b"* srv pw\n", b"pw"),
        (b"* * pw\n", b"pw"),
        (b"bob * pw\n", None),
        (b"alice other pw\n", None),
        (b"alice srv\n", None),  # no secret on the line
        (b"alice srv\npw\n", None),  # a secret on the next line is a new line
        (b"alice \\\nsrv \\\npw\n", b"pw"),  # continued lines are one line
        (b"alice srv ab#cd\n", b"ab"),
        (b"alice srv 'ab#cd'\n", b"ab#cd"),
        (b"# alice srv x\nalice srv y\n", b"y"),
        (b"alice srv \\x21\\101\\\\\n", b"!A\\"),
        (b"alice srv @literal\n", b"@literal"),  # only @/ names a file
        (b"alice srv caf\xc3\xa9\n", b"caf\xc3\xa9"),
        (b"alice srv \xff\xfe\n", b"\xff\xfe"),  # not UTF-8: pppd's bytes all the same
        (b'alice srv ""\n', b""),
        (b"alice srv " + b"x" * 600 + b"\n", b"x" * 256),  # MAXSECRETLEN
        (b"alice\\x00junk srv pw\n", b"pw"),  # the C string is "alice"
        (b"ali\\x00ce srv pw\n", None),  # "ali": the C string stops at NUL
        (b"ali\\x63e srv pw\n", b"pw"),
        (b"", None),
        (b"alice srv pw 10.0.0.1 10.0.0.2\nalice srv other\n", b"pw"),
    ],
)
def test_forms(data: bytes, expected: bytes | None) -> None:
    assert secret(data) == expected


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # exact client and server beat everything, wherever they are
        ([b"* * any", b"alice * cl", b"* srv sv", b"alice srv both"], b"both"),
        # an exact client beats an exact server (NONWILD_CLIENT 2 > NONWILD_SERVER 1)
        ([b"* srv sv", b"alice * cl"], b"cl"),
        ([b"alice * cl", b"* srv sv"], b"cl"),
        ([b"* * any", b"* srv sv"], b"sv"),
        # at the same rank the first line wins
        ([b"alice * first", b"alice * second"], b"first"),
        ([b"* * first", b"* * second"], b"first"),
    ],
)
def test_pppd_line_priority(lines: list[bytes], expected: bytes) -> None:
    assert secret(b"\n".join(lines) + b"\n") == expected


def test_indirect_secret_file(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_bytes(b'  "the secret" ignored\n')
    assert secret(b"alice srv @" + os.fsencode(f) + b"\n") == b"the secret"
    # an indirect file that cannot be read: pppd skips the line and takes the next match
    data = b"alice srv @/nonexistent/x\n* * fallback\n"
    match = scan_authfile(data, b"alice", b"srv")
    assert match.secret == Secret("fallback")
    assert "cannot read the secret file /nonexistent/x" in match.problems[0]
    empty = tmp_path / "empty"
    empty.write_bytes(b"# nothing\n")
    assert secret(b"alice srv @" + os.fsencode(empty) + b"\n* * fb\n") == b"fb"


def test_remotename_is_the_server_field() -> None:
    """sstpc's documented line: ``user remotename "secret" *`` with remotename in peers."""
    data = b'alice VPN "right" *\nalice srv-in-challenge "wrong" *\n'
    path = "/chap"

    def read(p: str) -> bytes:
        assert p == path
        return data

    opts = PppdOptions(remotename=b"VPN")
    assert find_pppd_secret(b"alice", b"srv-in-challenge", opts, path, read=read).secret == Secret(
        "right"
    )
    assert find_pppd_secret(b"alice", b"srv-in-challenge", None, path, read=read).secret == Secret(
        "wrong"
    )
    # pppd's password option comes before chap-secrets
    opts = PppdOptions(remotename=b"VPN", password=b"opt")
    assert find_pppd_secret(b"alice", b"x", opts, path, read=read).secret == Secret("opt")


def test_unreadable_chap_secrets_says_to_use_the_plugin(tmp_path: Path) -> None:
    def read(p: str) -> bytes:
        raise PermissionError(13, "Permission denied", p)

    match = chap_secret(b"alice", b"srv", "/etc/ppp/chap-secrets", read=read)
    assert match.secret is None
    [line] = match.problems
    assert USE_PLUGIN in line and "plugin sstp-pppd-keys.so" in line and "\n" not in line


def test_lookup_logs_why_and_never_the_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    chap = tmp_path / "chap-secrets"
    chap.write_bytes(b"alice * s3cret-pw\n")
    monkeypatch.setattr("sstp_pppd.secrets.CHAP_SECRETS", str(chap))
    lookup = password_lookup(None, ["pppd", "nodetach"])
    caplog.set_level(logging.DEBUG)
    assert lookup("alice", "x") == "s3cret-pw"
    assert lookup("bob", "x") is None
    assert "no chap-secrets line for user 'bob'" in caplog.text
    assert "s3cret" not in caplog.text
    assert password_lookup(Secret("given"))("anyone", "") == "given"


def test_non_utf8_secret_keeps_pppds_bytes() -> None:
    s = Secret.from_bytes(b"\xe9t\xe9")
    assert s.reveal_bytes() == b"\xe9t\xe9"
    assert "\xe9" not in repr(s) and "hidden" in str(s)


def test_password_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "pw"
    f.write_bytes(b"p\xffw\r\nsecond\n")
    f.chmod(0o644)
    assert read_password_file(str(f)).reveal_bytes() == b"p\xffw"
    assert "chmod 600" in caplog.text
    f.write_bytes(b"\n")
    with pytest.raises(ConfigError, match="empty"):
        read_password_file(str(f))
    with pytest.raises(ConfigError, match="cannot read") as exc:
        read_password_file(str(tmp_path / "nope"))
    assert "\n" not in str(exc.value)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([b"alice", b"*", b""]), st.binary(max_size=8))
def test_scan_any_bytes(data: bytes, client: bytes, server: bytes) -> None:
    match = scan_authfile(data, client, server, read=lambda p: b"x")
    if match.secret is not None:
        assert len(match.secret.reveal_bytes()) <= 256


def test_unreadable_indirect_file_says_to_use_the_plugin() -> None:
    def read(p: str) -> bytes:
        raise PermissionError(13, "Permission denied", p)

    match = scan_authfile(b"alice srv @/etc/ppp/pw *\n", b"alice", b"srv", read=read)
    assert match.secret is None
    assert "plugin sstp-pppd-keys.so" in match.problems[0] and "/etc/ppp/pw" in match.problems[0]
