"""pppd is the judge: our reading of pppd's files against the real pppd 2.4.9, by experiment.

pppd needs the kernel's PPP driver only once it opens a unit. With ``dryrun`` it reads
every option file, applies its priorities and prints each option's final value and source
(``dump``), then exits; with ``auth require-chap`` it first scans chap-secrets with its own
``scan_authfile`` for the peer (``remotename``) and itself (``name``) and refuses to start
when the best line allows no IP address. So, on this machine and without UML:

- getword: a tricky word as ``remotename``'s value in a peers file; pppd's printed value
  is compared with :mod:`sstp_pppd.pppdopts`'s;
- option priorities: /etc/ppp/options, ~/.ppprc, ``call`` files and the command line;
- chap-secrets line choice: each line's addresses are ``*`` (allowed) when its secret
  starts with "ok", else ``-``: pppd starts if and only if the line it picked is the one
  :func:`sstp_pppd.secrets.scan_authfile` picks (or neither finds one).

The private /etc/ppp and home directory are bind mounts in a mount namespace of their
own (``unshare -m``), with a private /dev whose ``ppp`` is a null device: pppd's "is
there a PPP driver?" check only opens it. Needs root, pppd and unshare; no UML (which
does not boot on a host whose CPU has AMX).
What this cannot see: the secret word itself (pppd never prints it) and ``@/file``
secrets (read only when the secret is needed): unit tests cover those by pppd's source.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sstp_pppd.pppdopts import parse_pppd_options, words
from sstp_pppd.secrets import scan_authfile

pytestmark = pytest.mark.e2e


class Pppd:
    """pppd 2.4.9 in dryrun, with its own /etc/ppp (``etc``) and home (``home``)."""

    def __init__(self, d: Path) -> None:
        self.etc, self.home, self.d = d / "etc-ppp", d / "home", d
        (self.etc / "peers").mkdir(parents=True)
        self.home.mkdir()
        (self.etc / "options").write_bytes(b"")
        self.runs = 0

    def run(self, *args: str) -> tuple[int, bytes]:
        """pppd ARGS dryrun dump: (exit status, what it logged)."""
        self.runs += 1
        log = self.d / f"pppd-{self.runs}.log"
        # A private /dev where /dev/ppp is a null device: pppd's "is there a PPP driver?"
        # check only opens it. /etc/ppp and the home directory are ours too.
        script = (
            "mount -t tmpfs -o mode=755 tmpfs /dev && mknod -m 666 /dev/null c 1 3 && "
            'mknod -m 666 /dev/ppp c 1 3 && mount --bind "$1" /etc/ppp && '
            'mount --bind "$2" "$3" && shift 3 && exec pppd "$@"'
        )
        res = subprocess.run(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
                str(self.etc),
                str(self.home),
                pwd.getpwuid(os.getuid()).pw_dir,
                *args,
                "nodetach",
                "notty",
                "dryrun",
                "dump",
                "logfile",
                str(log),
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        return res.returncode, (log.read_bytes() if log.exists() else b"") + res.stderr

    def option(self, name: str, *args: str) -> tuple[bytes | None, str]:
        """The value pppd ends up with for option ``name`` and where it came from."""
        rc, out = self.run(*args)
        assert rc == 0, out
        for line in out.split(b"\n"):
            head, sep, source = line.rpartition(b"\t\t# (from ")
            if sep and head.startswith(name.encode() + b" "):
                return unquote(head[len(name) + 1 :]), source.rstrip(b")").decode()
        return None, ""


def unquote(printed: bytes) -> bytes:
    """Undo pppd's ``%q`` (print_options): a backslash before ``"`` and itself, ``\\t
    \\n \\b \\f`` and ``\\xHH`` for the other bytes below 0x20 and 0x7f..0x9f."""
    out, i = bytearray(), 0
    while i < len(printed):
        c = printed[i]
        if c == 0x5C and i + 1 < len(printed):
            e = printed[i + 1]
            if e == ord("x"):
                out.append(int(printed[i + 2 : i + 4], 16))
                i += 4
                continue
            out.append({ord("t"): 9, ord("n"): 10, ord("b"): 8, ord("f"): 12}.get(e, e))
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


@pytest.fixture(scope="module")
def pppd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pppd]:
    missing = [p for p in ("pppd", "unshare", "mknod") if not shutil.which(p)]
    if os.geteuid() != 0:
        missing.append("root")
    if os.environ.get("SSTP_E2E") != "1":
        pytest.skip("real-pppd experiments run with SSTP_E2E=1")
    if missing:
        pytest.fail(f"SSTP_E2E=1 but missing: {', '.join(missing)}")
    yield Pppd(tmp_path_factory.mktemp("pppd"))


WORDS = [
    rb"plain",
    rb'"two words"',
    rb"'it\"s'",
    rb'a"b c"d',
    rb"ab#cd",
    rb"ab\#cd",
    rb"\x21\x4a\x4\x",
    rb"\101\0611\7z",
    rb"a\sb\tc",
    rb"\\\"\q",
    b"ab\\\ncd",
    rb"ab\x00cd",
    rb"\xzz",
    b"caf\xc3\xa9\xff\xfe",
    b"a\x85b\xa0c",
    rb'"quoted # hash"',
    rb"\r\x7f\x9f\x1b",
]


@pytest.mark.parametrize("word", WORDS, ids=range(len(WORDS)))
def test_getword_as_pppd(pppd: Pppd, word: bytes) -> None:
    peers = b"# a peers file\nremotename " + word + b"\n"
    (pppd.etc / "peers" / "w").write_bytes(peers)
    value, source = pppd.option("remotename", "call", "w")
    ours = parse_pppd_options([b"pppd", b"call", b"w"], etc=str(pppd.etc), home=None).remotename
    assert value == ours, (word, value, ours)
    if value is not None:
        assert source.endswith("peers/w")


def test_word_length_limit_as_pppd(pppd: Pppd) -> None:
    """MAXWORDLEN: pppd warns about a word of 1024 bytes or more (and cuts it), not 1023."""
    for n, warned in ((1023, False), (1024, True)):
        (pppd.etc / "peers" / "long").write_bytes(b"ipparam " + b"y" * n + b"\n")
        rc, out = pppd.run("call", "long")
        assert rc == 0, out
        assert (b"too long" in out) == warned, out
        [_, word] = [w.value for w in words((pppd.etc / "peers" / "long").read_bytes())]
        assert len(word) == 1023


@pytest.mark.parametrize(
    ("files", "args", "home"),
    [
        ({"options": b"remotename sys\n", "peers/p": b"remotename peers\n"}, ["call", "p"], None),
        ({"peers/p": b"remotename peers\n"}, ["remotename", "cmd", "call", "p"], None),
        ({"peers/p": b"remotename peers\n"}, ["call", "p", "remotename", "cmd"], None),
        ({"options": b"remotename sys\n"}, [], b"remotename home\n"),
        (
            {"options": b"remotename sys\n", "peers/p": b"remotename p\n"},
            ["call", "p"],
            b"remotename home\n",
        ),
        (
            {"peers/p": b"file /etc/ppp/more\nremotename after\n", "more": b"remotename more\n"},
            ["call", "p"],
            None,
        ),
        (
            {"peers/p": b"remotename first\nfile /etc/ppp/more\n", "more": b"remotename more\n"},
            ["call", "p"],
            None,
        ),
        ({"peers/p": b"ipparam remotename\nconnect 'remotename x'\n"}, ["call", "p"], None),
    ],
)
def test_option_priorities_as_pppd(
    pppd: Pppd, files: dict[str, bytes], args: list[str], home: bytes | None
) -> None:
    for f in (pppd.etc / "options", pppd.home / ".ppprc", pppd.etc / "more"):
        f.unlink(missing_ok=True)
    (pppd.etc / "options").write_bytes(b"")
    for name, data in files.items():
        (pppd.etc / name).write_bytes(data)
    if home is not None:
        (pppd.home / ".ppprc").write_bytes(home)
    value, _ = pppd.option("remotename", *args)

    def read(path: str) -> bytes:
        rel = Path(path).relative_to("/etc/ppp") if path.startswith("/etc/ppp") else None
        real = pppd.etc / rel if rel is not None else Path(path)
        return real.read_bytes()

    ours = parse_pppd_options(
        [b"pppd", *(a.encode() for a in args)],
        home="/home-of-test" if home is not None else None,
        read=lambda p: (pppd.home / ".ppprc").read_bytes() if p.endswith(".ppprc") else read(p),
    ).remotename
    assert value == ours


CHAP_CASES = [
    # (client (pppd's remotename here), server (pppd's name), chap-secrets)
    (b"alice", b"srv", [b"* * bad", b"alice * ok", b"* srv bad"]),
    (b"alice", b"srv", [b"* srv bad", b"alice * ok"]),
    (b"alice", b"srv", [b"* * bad", b"* srv ok"]),
    (b"alice", b"srv", [b"* srv bad", b"* * bad", b"alice srv ok", b"alice * bad"]),
    (b"alice", b"srv", [b"alice * ok", b"alice * bad"]),  # first at equal rank
    (b"alice", b"srv", [b"alice * bad", b"alice * ok"]),
    (b"alice", b"srv", [b"* * ok", b"* * bad"]),
    (b"alice", b"srv", [b"bob * bad", b"alice other bad"]),  # no line
    (b"alice", b"srv", [b"alice srv", b"ok"]),  # the secret on the next line: no line
    (b"alice", b"srv", [b"alice \\\n srv \\\n ok"]),  # continued: one line
    (b"alice", b"srv", [b"# alice srv bad", b"al\\x69ce s'r'v ok"]),
    (b"alice", b"srv", [b"alice#x srv bad", b"alice srv ok"]),
    (b"alice", b"srv", [b"alice\\x00zz srv ok"]),  # the C string is "alice"
    (b"al\xe9", b"srv", [b"al\\351 srv ok"]),  # bytes that are not UTF-8
    (b"alice", b"srv", [b"alice srv ok#comment *"]),  # the address is in the comment
    (b"alice", b"srv", [b"alice srv 'ok#x' *"]),
    (b"x" * 300, b"srv", [b"x" * 300 + b" srv bad", b"x" * 255 + b" srv ok"]),  # MAXNAMELEN
    (b"alice", b"srv", [b"alice srv 'ok 2' 10.0.0.1", b"alice srv bad"]),
]


@pytest.mark.parametrize(("client", "server", "lines"), CHAP_CASES, ids=range(len(CHAP_CASES)))
def test_chap_secrets_line_choice_as_pppd(
    pppd: Pppd, client: bytes, server: bytes, lines: list[bytes]
) -> None:
    # The winner's addresses tell pppd's choice: "*" allows an IP address, "-" none.
    def with_addresses(line: bytes) -> bytes:
        ws = [w.value for w in words(line)]
        ok = len(ws) >= 3 and ws[2].startswith(b"ok")
        return line + (b" *" if ok else b" -") if len(ws) == 3 else line

    data = b"\n".join(with_addresses(line) for line in lines) + b"\n"
    (pppd.etc / "chap-secrets").write_bytes(data)
    rc, out = pppd.run(
        "auth", "require-chap", "remotename", os.fsdecode(client), "name", os.fsdecode(server)
    )
    # pppd's have_chap_secret: the best line, then some_ip_ok() on its addresses;
    # the names pppd got on its command line are cut to MAXNAMELEN - 1 bytes.
    ours = scan_authfile(data, client[:255], server[:255], read=None)
    ip_ok = False
    for a in ours.addresses:
        if a.startswith(b"-"):
            break
        if not a.startswith(b"!"):
            ip_ok = True
            break
    assert rc in (0, 1), out
    if rc == 1:
        assert b"couldn't find any suitable secret" in out, out
    assert (rc == 0) == (ours.secret is not None and ip_ok), out
