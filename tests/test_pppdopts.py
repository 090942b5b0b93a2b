"""pppdopts: pppd 2.4.9's getword grammar and option files, byte for byte.

The expected words are pppd's (options.c getword); the forms that matter for secrets were
also checked against the real pppd 2.4.9 by tests/e2e/test_secrets.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sstp_pppd.pppdopts import (
    MAXWORDLEN,
    Word,
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


# --- the optimised splitter against its plain transcription ---------------------------

_NL, _BS, _HASH, _DQ, _SQ = 0x0A, 0x5C, 0x23, 0x22, 0x27
_SPACE = frozenset(b" \t\n\v\f\r")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = {ord("a"): 7, ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13,
            ord("s"): 32, ord("t"): 9}  # fmt: skip
_MAXWORDLEN = MAXWORDLEN


def reference_words(data: bytes) -> Iterator[Word]:
    """The first, plain transcription of getword: the reference."""
    i, n = 0, len(data)
    while True:
        newline = escape = comment = False
        c = -1
        while i < n:
            c = data[i]
            i += 1
            if c == _NL:
                if escape:
                    escape = False
                else:
                    newline, comment = True, False
                continue
            if comment:
                continue
            if escape:
                break
            if c == _BS:
                escape = True
                continue
            if c == _HASH:
                comment = True
                continue
            if c not in _SPACE:
                break
        else:
            c = -1
        word = bytearray()
        quoted = 0
        while c != -1:
            if escape:
                escape = False
                if c == _NL:
                    c, i = (data[i], i + 1) if i < n else (-1, i)
                    continue
                got = False
                if c in _ESCAPES:
                    value = _ESCAPES[c]
                elif 0x30 <= c <= 0x37:
                    value = 0
                    for _ in range(3):
                        if not 0x30 <= c <= 0x37:
                            break
                        value = (value << 3) + (c & 7)
                        c, i = (data[i], i + 1) if i < n else (-1, i)
                    got = True
                elif c == ord("x"):
                    value = 0
                    c, i = (data[i], i + 1) if i < n else (-1, i)
                    for _ in range(2):
                        if c not in _HEX:
                            break
                        value = (value << 4) + int(chr(c), 16)
                        c, i = (data[i], i + 1) if i < n else (-1, i)
                    got = True
                else:
                    value = c
                if len(word) < _MAXWORDLEN:
                    word.append(value & 0xFF)  # C stores the int in a char
                if not got:
                    c, i = (data[i], i + 1) if i < n else (-1, i)
                continue
            if c == _BS:
                escape = True
                c, i = (data[i], i + 1) if i < n else (-1, i)
                continue
            if quoted:
                if c == quoted:
                    quoted = 0
                    c, i = (data[i], i + 1) if i < n else (-1, i)
                    continue
            elif c in (_DQ, _SQ):
                quoted = c
                c, i = (data[i], i + 1) if i < n else (-1, i)
                continue
            elif c in _SPACE or c == _HASH:
                i -= 1  # ungetc: the next call sees it (a '#' then starts a comment)
                break
            if len(word) < _MAXWORDLEN:
                word.append(c)
            c, i = (data[i], i + 1) if i < n else (-1, i)
        if c == -1 and not word:
            return
        yield Word(bytes(word[: _MAXWORDLEN - 1]).split(b"\0", 1)[0], newline)


_TRICKY = st.sampled_from([b" ", b"\t", b"\n", b"#", b'"', b"'", b"\\", b"\\\n", b"\\x",
                           b"\\1", b"a", b"\x00", b"\xff", b"\\s", b"\r"])  # fmt: skip


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.one_of(_TRICKY, st.binary(max_size=4)), max_size=60) | st.binary(max_size=200))
def test_words_equals_the_reference(parts: list[bytes] | bytes) -> None:
    data = parts if isinstance(parts, bytes) else b"".join(parts)
    assert list(words(data)) == list(reference_words(data))


def test_long_words_equal_the_reference() -> None:
    for data in (b"x" * 3000, b'"' + b"y" * 2000 + b'" z', b"a\\x41" * 600):
        assert list(words(data)) == list(reference_words(data))


def test_a_key_plugin_in_the_peers_file_or_on_the_command_line() -> None:
    from sstp_pppd.pppdopts import loads_key_plugin

    files = Files({"/etc/ppp/peers/vpn": b"plugin sstp-pppd-plugin.so\nsstp-sock /x\n"})
    assert loads_key_plugin(parse_pppd_options([b"pppd", b"call", b"vpn"], read=files))
    nm = [b"pppd", b"plugin", b"/usr/lib/pppd/2.4.9/nm-sstp-pppd-plugin.so"]
    assert loads_key_plugin(parse_pppd_options(nm, read=Files({})))
    other = [b"pppd", b"plugin", b"passwordfd.so", b"call", b"vpn2"]
    assert not loads_key_plugin(parse_pppd_options(other, read=Files({})))
    assert not loads_key_plugin(None)
