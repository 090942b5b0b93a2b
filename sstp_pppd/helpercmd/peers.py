"""The two pppd files a connection consists of: /etc/ppp/peers/NAME and its chap-secrets line.

Both are read by pppd's option parser (options.c ``getword``), which splits words at
white space, honours double quotes and backslash escapes, and starts a comment with ``#``
at the beginning of a word. Inside quotes a backslash before a letter is a C escape
(``\\n`` is a newline), so we escape only ``\\`` and ``"`` and refuse control characters:
then pppd and the transport's reader (:mod:`sstp_pppd.secrets`, which finds the binding
password the way pppd does) read back exactly what was written.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from ..pppdopts import MAXSECRETLEN
from ..secrets import Secret

#: The pppd options written when ``add`` is given none (see man sstp-helper, PPPD OPTIONS).
DEFAULT_PPPD_OPTIONS: tuple[str, ...] = (
    # The server does not authenticate itself to a client in PPP; its TLS certificate does.
    "noauth",
    # Our own method: MS-CHAPv2 only. pppd cannot prefer a method, it can only refuse the
    # others; SoftEther offers EAP first and the login fails if pppd takes it.
    "refuse-eap",
    "refuse-pap",
    "refuse-chap",
    "refuse-mschap",
    # Compression other than MPPE is not worth its CPU inside TLS; CCP stays for MPPE.
    "nobsdcomp",
    "nodeflate",
    # The server assigns the address; the routes are sstp-helper's (connconf), not pppd's.
    "noipdefault",
    "nodefaultroute",
)

HEADER = "# sstp-pppd connection {name}: written by 'sstp-helper add'; replaced by the next add.\n"

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def check_text(what: str, value: str) -> str:
    """Refuse control characters: pppd would read some back as escapes, others end a line."""
    if _UNSAFE.search(value):
        raise ConfigError(f"{what} contains a control character (newline, tab...): not allowed")
    return value


def pppd_quote(word: str) -> str:
    """One word for pppd's option parser: as is when safe, else double-quoted and escaped."""
    check_text("a pppd option word", word)
    if word and _PLAIN_WORD.match(word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PeerSettings:
    """What ``add`` writes into /etc/ppp/peers/NAME."""

    name: str
    server: str
    user: str
    transport: str
    ca_cert: str | None = None
    pins: tuple[str, ...] = ()
    usepeerdns: bool = False
    pppd_options: tuple[str, ...] = ()


def transport_argv(s: PeerSettings) -> list[str]:
    """The command pppd runs with ``pty``: sstp-pppd in pty mode for this connection."""
    argv = [s.transport, "--nolaunchpppd", "--ipparam", s.name]
    if s.ca_cert:
        argv += ["--ca-cert", s.ca_cert]
    for pin in s.pins:
        argv += ["--pin-sha256", pin]
    argv.append(s.server)
    return argv


def render_peers(s: PeerSettings) -> str:
    """The peers file. pppd runs the pty command with ``/bin/sh -c``: each argument is
    quoted for the shell, and the whole command once more as one pppd word."""
    command = " ".join(shlex.quote(check_text("an argument", a)) for a in transport_argv(s))
    lines = [
        HEADER.format(name=s.name),
        f"pty {pppd_quote(command)}\n",
        f"name {pppd_quote(s.user)}\n",
        f"remotename {s.name}\n",
        f"ipparam {s.name}\n",
        f"linkname {s.name}\n",
    ]
    options = s.pppd_options or DEFAULT_PPPD_OPTIONS
    lines += [" ".join(pppd_quote(o) for o in options) + "\n"]
    if s.usepeerdns:
        lines.append("usepeerdns\n")
    return "".join(lines)


# C's isspace() in pppd's locale: Unicode spaces such as U+0085 are part of a word.
_SPACE = " \t\n\v\f\r"
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "s": " ", "t": "\t"}


def pppd_words(line: str) -> list[str]:
    """Split one line as pppd's ``getword`` does (quotes, backslash escapes, ``#`` comments).

    Octal and hex escapes are not decoded: we never write them.
    """
    words: list[str] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n or line[i] == "#":
            break
        word: list[str] = []
        quote = ""
        while i < n:
            c = line[i]
            if c == "\\" and i + 1 < n:
                i += 1
                word.append(_ESCAPES.get(line[i], line[i]))
            elif quote:
                if c == quote:
                    quote = ""
                else:
                    word.append(c)
            elif c in "\"'":
                quote = c
            elif c in _SPACE:
                break
            else:
                word.append(c)
            i += 1
        words.append("".join(word))
    return words


def peers_option(text: str, option: str) -> str | None:
    """The value of the last ``option VALUE`` line of a peers file (pppd: the last wins)."""
    value = None
    for line in text.split("\n"):
        words = pppd_words(line)
        if len(words) >= 2 and words[0] == option:
            value = words[1]
    return value


def peers_server(text: str) -> str | None:
    """The SERVER argument of the pty command of a peers file written by ``add``."""
    command = peers_option(text, "pty")
    if command is None:
        return None
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    return argv[-1] if argv else None


def is_ours(text: str) -> bool:
    """Whether a peers file was written by ``sstp-helper add``."""
    return text.startswith(HEADER.split("{", 1)[0])


def secrets_line(user: str, name: str, password: Secret) -> str:
    """``USER NAME "PASSWORD" *``, each word quoted the way pppd reads it back."""
    check_text("the password", password.reveal())
    if password.reveal().startswith("@/"):
        # pppd's scan_authfile reads a secret "@/path" from that file, quoted or not.
        raise ConfigError("a password starting with '@/' cannot go into chap-secrets")
    size = len(password.reveal().encode("utf-8", "surrogateescape"))
    if size > MAXSECRETLEN:
        # pppd's get_secret logs "Secret ... is too long" and authenticates with the
        # first 256 bytes: a login that fails with no word of why, so refuse it here.
        raise ConfigError(
            f"the password is {size} bytes long; pppd reads at most {MAXSECRETLEN} of a secret"
        )
    quoted = '"' + password.reveal().replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{pppd_quote(user)} {name} {quoted} *\n"


def without_connection(lines: Sequence[str], name: str) -> list[str]:
    """The chap-secrets lines that do not belong to connection ``name``: a line whose server
    word is NAME does (``remotename NAME`` makes pppd use it for this connection only)."""
    kept = []
    for line in lines:
        words = pppd_words(line)
        if len(words) >= 2 and words[1] == name:
            continue
        kept.append(line if line.endswith("\n") else line + "\n")
    return kept


def write_atomic(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` by a file with ``text`` and ``mode``: a reader (pppd) sees the old
    file or the new one, never a part, and the content is never readable with a wider mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_lines(path: Path) -> list[str]:
    """The lines of ``path``, split at "\\n" only, as pppd splits them (str.splitlines
    would also split at U+0085 or U+2028 inside a password)."""
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return []
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    return [line for line in lines if line]


def update_secrets(path: Path, name: str, line: str | None) -> None:
    """Drop connection ``name``'s lines from chap-secrets and append ``line`` (if any)."""
    lines = without_connection(read_lines(path), name)
    if line is not None:
        lines.append(line)
    write_atomic(path, "".join(lines), 0o600)
