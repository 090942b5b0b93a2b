"""pppdopts: pppd 2.4.9's getword grammar and option files, byte for byte.

The expected words are pppd's (options.c getword); the forms that matter for secrets were
also checked against the real pppd 2.4.9 by tests/e2e/test_secrets.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sstp_pppd.pppdopts import (
    MAXWORDLEN,
    parse_pppd_options,
    pppd_ancestor_argv,
    words,
)


def split(data: bytes) -> list[bytes]:
    return [w.value for w in words(data)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a b\tc\n", [b"a", b"b", b"c"]),
        (b"\"a b\" 'c d'", [b"a b", b"c d"]),
        (b'a"b c"d', [b"ab cd"]),  # quotes anywhere in a word
        (b"'it\"s'", [b'it"s']),
        (b"# all comment\nx", [b"x"]),
        (b"ab#cd ef\ngh", [b"ab", b"gh"]),  # '#' ends the word and starts a comment
        (b'"ab#cd"', [b"ab#cd"]),
        (b"ab\\#cd", [b"ab#cd"]),
        (b"\\x21\\x4a\\x4", [b"!J\x04"]),
        (b"\\101\\0611\\7", [b"A11\x07"]),  # at most three octal digits
        (b"a\\sb", [b"a b"]),
        (b"\\t\\n\\r\\a\\b\\f", [b"\t\n\r\x07\x08\x0c"]),
        (b'\\\\ \\"', [b"\\", b'"']),
        (b"\\q", [b"q"]),
        (b"ab\\\ncd", [b"abcd"]),  # backslash-newline joins
        (b"ab \\\ncd", [b"ab", b"cd"]),
        (b'"a\\"b"', [b'a"b']),  # backslash escapes inside quotes
        (b'"two\nlines"', [b"two\nlines"]),
        (b'"" x', [b"", b"x"]),
        (b'x ""', [b"x"]),  # an empty word at the end of the file is no word
        (b'x "" ', [b"x", b""]),
        (b"ab\\x00cd x", [b"ab", b"x"]),  # the C string ends at NUL
        (b"\\xzz", [b"\x00zz"[:0]]),  # \x without digits is NUL: an empty C string
        (b"caf\xc3\xa9 \xff\xfe", [b"caf\xc3\xa9", b"\xff\xfe"]),
        (b"a\x0bb\x0cc", [b"a", b"b", b"c"]),  # C isspace
        (b"a\x85b\xa0c", [b"a\x85b\xa0c"]),  # not space in the C locale
        (b'"unterminated', [b"unterminated"]),
        (b"\\", []),
    ],
)
def test_getword(data: bytes, expected: list[bytes]) -> None:
    assert split(data) == expected


def test_newline_flags() -> None:
    got = [(w.value, w.newline) for w in words(b"a b\nc # x\n\n d \\\ne")]
    assert got == [(b"a", False), (b"b", False), (b"c", True), (b"d", True), (b"e", False)]


def test_long_word_is_cut_to_1023_bytes() -> None:
    [w] = split(b"x" * 5000)
    assert w == b"x" * (MAXWORDLEN - 1)
    assert split(b"y" * 2000 + b" z")[1] == b"z"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_words_any_bytes(data: bytes) -> None:
    for w in words(data):
        assert b"\0" not in w.value and len(w.value) < MAXWORDLEN


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=30), min_size=1, max_size=8))
def test_quoting_round_trip(items: list[bytes]) -> None:
    """Any word without NUL, written with octal escapes, reads back as itself."""
    items = [i.replace(b"\0", b"") or b"x" for i in items]
    text = b" ".join(b"".join(b"\\%03o" % c for c in i) for i in items)
    assert split(text) == items


class Files:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.read_paths: list[str] = []

    def __call__(self, path: str) -> bytes:
        self.read_paths.append(path)
        if path not in self.files:
            raise FileNotFoundError(2, "No such file or directory", path)
        data = self.files[path]
        if data == b"EACCES":
            raise PermissionError(13, "Permission denied", path)
        return data


def test_call_reads_the_peers_file() -> None:
    files = Files({"/etc/ppp/peers/vpn": b'pty "sstp-pppd --nolaunchpppd x"\nremotename VPN\n'
                   b"name alice\n"})  # fmt: skip
    opts = parse_pppd_options([b"pppd", b"call", b"vpn"], read=files)
    assert (opts.remotename, opts.name, opts.user) == (b"VPN", b"alice", None)
    assert opts.client_name == b"alice"
    assert files.read_paths == ["/etc/ppp/options", "/etc/ppp/peers/vpn"]


def test_command_line_and_its_files_beat_options_and_ppprc() -> None:
    files = Files({
        "/etc/ppp/options": b"remotename sys\nuser u0\n",
        "/h/.ppprc": b"remotename home\n",
        "/etc/ppp/peers/p": b"remotename peers\nuser u1\n",
    })  # fmt: skip
    opts = parse_pppd_options(
        [b"pppd", b"remotename", b"cmd", b"call", b"p"], home="/h", read=files
    )
    # a file named on the command line is read at the command line's priority: the
    # later one wins (seen on pppd 2.4.9 by tests/e2e/test_secrets.py)
    assert opts.remotename == b"peers"
    assert opts.user == b"u1"
    opts = parse_pppd_options([b"pppd", b"call", b"p", b"remotename", b"cmd"], read=files)
    assert opts.remotename == b"cmd"
    opts = parse_pppd_options([b"pppd", b"call", b"p"], home="/h", read=files)
    assert opts.remotename == b"peers"
    opts = parse_pppd_options([b"pppd"], home="/h", read=files)
    assert opts.remotename == b"home"


def test_option_arguments_are_skipped() -> None:
    files = Files({"/etc/ppp/peers/p": b"ipparam remotename\nconnect 'user x'\nuser real\n"})
    opts = parse_pppd_options([b"pppd", b"logfile", b"user", b"call", b"p"], read=files)
    assert (opts.user, opts.remotename) == (b"real", None)


def test_password_option_and_file_option() -> None:
    files = Files({"/x/opts": b"password 's3cret#1'\nfile /x/more\n", "/x/more": b"name n\n"})
    opts = parse_pppd_options([b"pppd", b"file", b"/x/opts"], read=files)
    assert opts.password == b"s3cret#1" and opts.name == b"n"
    assert "s3cret" not in repr(opts)


def test_bad_call_names_and_unreadable_files() -> None:
    files = Files({"/etc/ppp/peers/secret": b"EACCES"})
    opts = parse_pppd_options(
        [b"pppd", b"call", b"../x", b"call", b"/abs", b"call", b"secret", b"call", b"gone"],
        read=files,
    )
    assert files.read_paths == ["/etc/ppp/options", "/etc/ppp/peers/secret", "/etc/ppp/peers/gone"]
    assert len(opts.problems) == 2
    assert "Permission denied" in opts.problems[0]


def test_file_loops_end() -> None:
    files = Files({"/a": b"file /a\nname x\n"})
    assert parse_pppd_options([b"pppd", b"file", b"/a"], read=files).name == b"x"


def test_pppd_ancestor(tmp_path: Path) -> None:
    proc = tmp_path
    for pid, ppid, comm, argv in [
        (30, 20, b"python3", [b"python3", b"sstp-pppd"]),
        (20, 10, b"sh", [b"sh", b"-c", b"sstp-pppd"]),
        (10, 1, b"pppd", [b"pppd", b"call", b"vpn", b"remotename", b"R"]),
    ]:
        (proc / str(pid)).mkdir()
        (proc / str(pid) / "stat").write_bytes(b"%d (%s) S %d 1 1" % (pid, comm, ppid))
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(argv) + b"\0")
    assert pppd_ancestor_argv(30, proc=str(proc)) == [b"pppd", b"call", b"vpn", b"remotename", b"R"]
    assert pppd_ancestor_argv(99, proc=str(proc)) is None
    (proc / "10" / "stat").write_bytes(b"10 (init) S 1 1 1")
    assert pppd_ancestor_argv(30, proc=str(proc)) is None


def test_files_that_call_themselves_many_times_end_quickly() -> None:
    """Found by fuzzing: a file naming itself N times made 16**N reads."""
    files = Files({"/etc/ppp/peers/p": b"call p " * 50 + b"name x\n"})
    opts = parse_pppd_options([b"pppd", b"call", b"p"], read=files)
    assert opts.name == b"x" and len(files.read_paths) <= 33
