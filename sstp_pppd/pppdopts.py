"""pppd's own rules for its files: the ``getword`` grammar and the option files.

Without a pppd plugin the transport has to find the secret pppd authenticates with, so it
reads pppd's files the way pppd 2.4.9 does (``options.c`` ``getword``,
``options_from_file``, ``process_option``), byte for byte, and learns the options that
decide which secret that is: ``name``, ``user``, ``remotename`` and ``password``.

Where the options come from, as pppd reads them (later wins at equal priority):

1. ``/etc/ppp/options``, then ``~/.ppprc`` (of the real uid): priority 1;
2. pppd's command line, in order, at priority 2, so it beats those two files; ``call NAME``
   (``/etc/ppp/peers/NAME``) and ``file F`` read their file at that place and at the
   command line's priority (``options_from_file`` keeps the caller's ``option_priority``),
   so between the command line and a peers file the later one wins. Files may nest.

These rules were seen on the real pppd 2.4.9 (tests/e2e/test_secrets.py, ``dryrun dump``).

In pty mode the transport is pppd's ``pty`` command, a child of pppd (through ``sh -c``):
pppd's argv is in ``/proc/<pid>/cmdline`` of that ancestor (see :func:`pppd_ancestor_argv`).
In launch mode it is the argv we start pppd with. What this cannot see: options given by
plugins, and an option's argument that looks like one of ours when the option is unknown
here (only pppd's own options and common plugins' are known to take an argument).

Everything here is pure (the file reader is passed in) except :func:`pppd_ancestor_argv`
and :func:`read_file`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

#: pppd's pppd.h: a word is at most MAXWORDLEN - 1 bytes; a secret at most MAXSECRETLEN.
MAXWORDLEN = 1024
MAXSECRETLEN = 256

ETC_PPP = "/etc/ppp"

_NL, _BS, _HASH, _DQ, _SQ = 0x0A, 0x5C, 0x23, 0x22, 0x27
#: C's isspace() in the C locale (pppd never calls setlocale): bytes >= 0x80 are not space.
_SPACE = frozenset(b" \t\n\v\f\r")
_HEX = frozenset(b"0123456789abcdefABCDEF")
#: Runs of bytes that getword stores as they are: outside quotes, in "...", in '...'.
_RUN = re.compile(rb"[^ \t\n\v\f\r#\"'\\]+")
_RUN_DQ = re.compile(rb'[^"\\]+')
_RUN_SQ = re.compile(rb"[^'\\]+")
_ESCAPES = {ord("a"): 7, ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13,
            ord("s"): 32, ord("t"): 9}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a pppd file, as the C string pppd sees (cut at its first NUL byte)."""

    value: bytes
    #: An unescaped newline came before this word: it starts a line.
    newline: bool


def words(data: bytes) -> Iterator[Word]:
    """Split ``data`` exactly as pppd 2.4.9's ``getword`` does, call after call.

    - white space separates words; ``#`` starts a comment to the end of the line, also
      right after a word (``ab#c`` is the word ``ab``), but not inside quotes or escaped;
    - ``"`` and ``'`` quote (quotes may start and end anywhere in a word, ``a"b c"d`` is
      one word); a backslash escapes inside quotes too;
    - C escapes: ``\\a \\b \\f \\n \\r \\t``, ``\\s`` (a space), up to three octal digits,
      ``\\x`` with up to two hex digits (none: a NUL byte), any other byte stands for
      itself; backslash-newline is removed (a line continues);
    - a word keeps its first 1023 bytes (pppd warns and truncates); a NUL byte ends the
      C string, so the word pppd uses ends there;
    - an empty quoted word (``""``) is a word, except at the very end of the file.
    """
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
                # Fast path: the rest of a comment goes at once, up to its newline.
                j = data.find(b"\n", i)
                i = n if j < 0 else j
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
                if len(word) < MAXWORDLEN:
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
            # An ordinary byte: take the whole run of them at once (fast path; the same
            # bytes as one getc at a time, see tests/test_pppdopts.py's reference).
            run = (_RUN_DQ if quoted == _DQ else _RUN_SQ if quoted else _RUN).match(data, i - 1)
            end = run.end() if run is not None else i
            if len(word) < MAXWORDLEN:
                word += data[i - 1 : min(end, i - 1 + MAXWORDLEN - len(word))]
            i = end
            c, i = (data[i], i + 1) if i < n else (-1, i)
        if c == -1 and not word:
            return
        yield Word(bytes(word[: MAXWORDLEN - 1]).split(b"\0", 1)[0], newline)


# --- pppd's options -------------------------------------------------------------------

#: pppd 2.4.9 options (and common plugins' options) that take one argument. Any other
#: option is taken to take none; pppd would refuse an unknown one anyway.
ONE_ARG = frozenset(
    """active-filter allow-ip allow-number asyncmap bsdcomp call chap-interval
    chap-max-challenge chap-restart child-timeout connect connect-delay deflate
    disconnect domain eap-interval eap-max-rreq eap-max-sreq eap-restart
    eap-timeout escape file holdoff idle ifname init ip-down-script ip-up-script
    ipcp-max-configure ipcp-max-failure ipcp-max-terminate ipcp-restart ipparam ipv6
    ipv6-down-script ipv6-up-script ipv6cp-max-configure ipv6cp-max-failure
    ipv6cp-max-terminate ipv6cp-restart ipx-network ipx-node ipx-router-name ipx-routing
    ipxcp-max-configure ipxcp-max-failure ipxcp-max-terminate ipxcp-restart
    lcp-echo-failure lcp-echo-interval lcp-max-configure lcp-max-failure lcp-max-terminate
    lcp-restart linkname logfd logfile maxconnect maxfail mo-timeout mru ms-dns ms-wins
    mtu name netmask pap-max-authreq pap-restart pap-timeout pass-filter password plugin
    precompiled-active-filter precompiled-pass-filter privgroup pty record remotename
    remotenumber set socket unset unit user welcome +ua passwordfd sstp-sock
    pppoe-service rp_pppoe_service rp_pppoe_ac pppol2tp pppol2tp_tunnel_id
    pppol2tp_session_id pppoatm""".split()
)
#: The options that decide the secret (their values are kept), and the ones read files.
_KEPT = ("name", "user", "remotename", "password")

ReadFile = Callable[[str], bytes]
_MAX_FILES = 32


@dataclass(slots=True)
class PppdOptions:
    """What pppd's options say about authentication; None: not given anywhere."""

    name: bytes | None = None
    user: bytes | None = None
    remotename: bytes | None = None
    #: The ``password`` option: pppd then uses it for CHAP too, before chap-secrets.
    password: bytes | None = field(default=None, repr=False)
    #: The ``plugin`` options, in order (pppd loads every one).
    plugins: list[bytes] = field(default_factory=list)
    #: The files read, in order.
    files: list[str] = field(default_factory=list)
    #: Files pppd would read that we could not (one line each).
    problems: list[str] = field(default_factory=list)
    _prio: dict[str, int] = field(default_factory=dict, repr=False)

    def _set(self, option: str, value: bytes, prio: int) -> None:
        # process_option: OPT_PRIO options keep a value of higher priority.
        if prio < self._prio.get(option, 0):
            return
        self._prio[option] = prio
        # pppd's o_string with MAXNAMELEN/MAXSECRETLEN: strlcpy truncates to size - 1.
        setattr(self, option, value[: MAXSECRETLEN - 1])

    @property
    def client_name(self) -> bytes | None:
        """The name pppd authenticates as: ``user``, else ``name`` (else the host name)."""
        return self.user or self.name


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _callfile_path(name: bytes, etc: str) -> str | None:
    # options.c callfile(): no absolute names, no "..", no empty name.
    text = os.fsdecode(name)
    if not text or text.startswith("/") or "../" in text or text == ".." or text.endswith("/.."):
        return None
    return os.path.join(etc, "peers", text)


#: pppd plugins that hand the MPPE keys to the transport over sstpc's socket: sstp-client's,
#: ours, and NetworkManager-sstp's.
KEY_PLUGINS = frozenset({b"sstp-pppd-plugin.so", b"sstp-pppd-keys.so", b"nm-sstp-pppd-plugin.so"})


def loads_key_plugin(opts: PppdOptions | None) -> bool:
    """Whether pppd loads a plugin that will send the keys (by the plugin's file name)."""
    return opts is not None and any(p.rsplit(b"/", 1)[-1] in KEY_PLUGINS for p in opts.plugins)


class _Reader:
    def __init__(self, opts: PppdOptions, read: ReadFile, etc: str) -> None:
        self.opts, self.read, self.etc = opts, read, etc
        self.depth = 0

    def apply(self, args: Sequence[bytes], prio: int) -> None:
        """Options in order, as parse_args/options_from_file walk them."""
        k = 0
        while k < len(args):
            option = args[k].decode("latin-1")
            k += 1
            if option not in ONE_ARG:
                continue
            if k >= len(args):
                return  # pppd: "too few parameters for option"
            value = args[k]
            k += 1
            if option in _KEPT:
                self.opts._set(option, value, prio)
            elif option == "plugin":
                self.opts.plugins.append(value)
            elif option == "call":
                path = _callfile_path(value, self.etc)
                if path is not None:
                    self.file(path, prio)
            elif option == "file":
                self.file(os.fsdecode(value), prio)

    def file(self, path: str, prio: int, *, must_exist: bool = True) -> None:
        # pppd recurses without a bound (a file that calls itself runs it out of file
        # descriptors); here nesting and the number of files read are bounded.
        if self.depth > 8 or len(self.opts.files) + len(self.opts.problems) >= _MAX_FILES:
            return
        try:
            data = self.read(path)
        except FileNotFoundError:
            if must_exist:
                self.opts.problems.append(f"cannot read pppd's options file {path}: not found")
            return
        except OSError as exc:
            self.opts.problems.append(f"cannot read pppd's options file {path}: {exc.strerror}")
            return
        self.opts.files.append(path)
        self.depth += 1
        try:
            self.apply([w.value for w in words(data)], prio)
        finally:
            self.depth -= 1


def parse_pppd_options(
    argv: Sequence[bytes],
    *,
    etc: str = ETC_PPP,
    home: str | None = None,
    read: ReadFile = read_file,
) -> PppdOptions:
    """The options pppd with command line ``argv`` (argv[0] is pppd itself) ends up with.

    ``home`` is the real user's home directory (``~/.ppprc``), None to skip it.
    """
    opts = PppdOptions()
    reader = _Reader(opts, read, etc)
    reader.file(os.path.join(etc, "options"), 1, must_exist=False)
    if home:
        reader.file(os.path.join(home, ".ppprc"), 1, must_exist=False)
    reader.apply(list(argv[1:]), prio=2)
    return opts


def pppd_ancestor_argv(pid: int | None = None, *, proc: str = "/proc") -> list[bytes] | None:
    """pppd's argv if this process runs below pppd (its ``pty`` command), else None.

    pppd starts the pty command with ``/bin/sh -c``, so pppd is the parent or the
    grandparent; /proc/PID/cmdline is readable by every user, also for a setuid pppd.
    """
    pid = os.getppid() if pid is None else pid
    for _ in range(4):
        if pid <= 1:
            return None
        try:
            with open(f"{proc}/{pid}/stat", "rb") as f:
                stat = f.read()
            with open(f"{proc}/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            return None
        comm = stat[stat.find(b"(") + 1 : stat.rfind(b")")]
        if comm == b"pppd":
            return cmdline.rstrip(b"\0").split(b"\0")
        try:
            pid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        except (ValueError, IndexError):
            return None
    return None
