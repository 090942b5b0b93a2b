"""Where passwords come from: --password, --password-file, pppd's options and chap-secrets.

pppd is the judge: without a plugin the transport must find exactly the secret pppd
authenticates with, or the crypto binding goes out with a wrong key and a verifying
server aborts the call. So chap-secrets is read with pppd 2.4.9's own grammar
(:func:`sstp_pppd.pppdopts.words`) and its own choice of line (:func:`scan_authfile`,
after ``auth.c`` ``scan_authfile``), for pppd's own client and server names: the server
field is pppd's ``remotename`` when the options give one, else the name in the server's
CHAP Challenge; a ``password`` option comes before chap-secrets, as in ``get_secret``.

A password is held in a :class:`Secret`, whose repr and str never show it, so it cannot
leak through a log line or a traceback by accident. Secrets are bytes to pppd; here they
are text with the bytes that are not UTF-8 kept as surrogate escapes (``os.fsdecode``),
so the NT hash can be computed from pppd's bytes (:func:`crypto.pppd_password_hash`).
"""

from __future__ import annotations

import logging
import os
import pwd
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .core.pppwatch import PasswordLookup
from .errors import ConfigError
from .pppdopts import MAXSECRETLEN, PppdOptions, parse_pppd_options, pppd_ancestor_argv, words

log = logging.getLogger(__name__)

CHAP_SECRETS = "/etc/ppp/chap-secrets"
#: The line that says what to do when pppd can read its secret and we cannot.
USE_PLUGIN = (
    "load the key plugin in pppd's options (plugin sstp-pppd-keys.so) or give "
    "--password-file, or the crypto binding goes out with zero keys and a verifying "
    "server aborts the call"
)


class Secret:
    """A password that refuses to be printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    @classmethod
    def from_bytes(cls, value: bytes) -> Secret:
        """pppd's bytes, UTF-8 or not (others become surrogate escapes)."""
        return cls(value.decode("utf-8", "surrogateescape"))

    def reveal(self) -> str:
        return self._value

    def reveal_bytes(self) -> bytes:
        """The bytes pppd gets: UTF-8, surrogate escapes back to their bytes."""
        return self._value.encode("utf-8", "surrogateescape")

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def read_password_file(path: str) -> Secret:
    """The first line of ``path``, without its line end. Warns when others may read it.

    The bytes are kept as they are (a password that is not UTF-8 is still pppd's).
    """
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            line = f.readline(MAXSECRETLEN * 4 + 2)
    except OSError as exc:
        raise ConfigError(f"cannot read the password file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "password file %s can be read by other users (mode %o): chmod 600 it",
            path,
            stat.S_IMODE(mode),
        )
    password = line.rstrip(b"\r\n")
    if not password:
        raise ConfigError(f"the password file {path} is empty")
    return Secret.from_bytes(password)


# --- chap-secrets, as pppd reads it ------------------------------------------------------

_NONWILD_SERVER, _NONWILD_CLIENT = 1, 2

ReadIndirect = Callable[[str], bytes]


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@dataclass(slots=True)
class SecretMatch:
    """The outcome of a scan: the secret pppd would use (None: none), and why not."""

    secret: Secret | None
    #: Files pppd reads during the scan that we could not (one line each).
    problems: list[str] = field(default_factory=list)
    #: The words after the secret on the chosen line (pppd's allowed addresses).
    addresses: list[bytes] = field(default_factory=list)


def scan_authfile(
    data: bytes,
    client: bytes,
    server: bytes,
    *,
    read: ReadIndirect | None = _read_bytes,
) -> SecretMatch:
    """The secret for ``client`` authenticating to ``server``, chosen as pppd does.

    pppd 2.4.9 ``auth.c`` ``scan_authfile``: a line is ``client server secret
    [addresses...]``; ``*`` alone is a wildcard. A line that names the client exactly beats
    one that names only the server exactly, which beats ``* *``; at equal rank the first
    line wins. A secret ``@/path`` is the first word of that file (``@word`` without the
    slash is a literal); if that file cannot be read pppd skips the line. The secret is
    cut to MAXSECRETLEN (256) bytes, as ``get_secret`` does. ``read`` None: do not read
    ``@/path`` files (pppd's ``have_chap_secret`` does not either).
    """
    match = SecretMatch(None)
    it = words(data)
    first = next(it, None)
    if first is None:
        return match
    word, newline = first.value, True
    best_flag = -1
    while True:
        while not newline:
            w = next(it, None)
            if w is None:
                return match
            word, newline = w.value, w.newline
        got_flag = 0
        if word not in (client, b"*"):
            newline = False
            continue
        if word != b"*":
            got_flag = _NONWILD_CLIENT
        w = next(it, None)
        if w is None:
            return match
        word, newline = w.value, w.newline
        if newline:
            continue
        if word != b"*":
            if word != server:
                continue
            got_flag |= _NONWILD_SERVER
        if got_flag <= best_flag:
            continue
        w = next(it, None)
        if w is None:
            return match
        word, newline = w.value, w.newline
        if newline:
            continue
        secret = word
        if word[:2] == b"@/" and read is not None:
            path = os.fsdecode(word[1:])
            try:
                indirect = next(words(read(path)), None)
            except PermissionError:
                # pppd (root) may read it; then its line wins there and not here.
                match.problems.append(
                    f"pppd can read the secret file {path} but this process "
                    f"(uid {os.getuid()}) cannot: {USE_PLUGIN}"
                )
                continue
            except OSError as exc:
                match.problems.append(f"cannot read the secret file {path}: {exc.strerror}")
                continue
            if indirect is None:
                continue  # pppd: "no secret in indirect secret file"
            secret = indirect.value
        addresses = []
        while True:
            w = next(it, None)
            if w is None:
                newline = False
                break
            word, newline = w.value, w.newline
            if newline:
                break
            addresses.append(word)
        best_flag = got_flag
        match.secret = Secret.from_bytes(secret[:MAXSECRETLEN])
        match.addresses = addresses
        if not newline:
            return match


def chap_secret(
    client: bytes, server: bytes, path: str | None = None, *, read: ReadIndirect = _read_bytes
) -> SecretMatch:
    """Read ``path`` (chap-secrets) and scan it; a file we cannot read is a problem."""
    path = path or CHAP_SECRETS
    try:
        data = read(path)
    except PermissionError:
        return SecretMatch(
            None,
            [f"pppd can read {path} but this process (uid {os.getuid()}) cannot: {USE_PLUGIN}"],
        )
    except OSError as exc:
        return SecretMatch(None, [f"cannot read {path}: {exc.strerror}"])
    return scan_authfile(data, client, server, read=read)


def _home() -> str | None:
    try:
        return pwd.getpwuid(os.getuid()).pw_dir or None
    except KeyError:
        return None


def pppd_options(launch_argv: Sequence[str] | None) -> PppdOptions | None:
    """pppd's options: from ``launch_argv`` (launch mode), else from the pppd above us."""
    argv = [os.fsencode(a) for a in launch_argv] if launch_argv is not None else None
    if argv is None:
        argv = pppd_ancestor_argv()
    if argv is None:
        return None
    return parse_pppd_options(argv, home=_home())


def find_pppd_secret(
    user: bytes,
    challenge_name: bytes,
    opts: PppdOptions | None,
    path: str | None = None,
    *,
    read: ReadIndirect = _read_bytes,
) -> SecretMatch:
    """The secret pppd's ``get_secret`` uses as a client (chap-new.c ``chap_respond``).

    ``user`` is the name pppd sent in its Response; the server is ``remotename`` when the
    options give one (explicit_remote), else the name in the server's Challenge.
    """
    if opts is not None and opts.password:
        return SecretMatch(Secret.from_bytes(opts.password))
    server = challenge_name
    if opts is not None and opts.remotename is not None:
        server = opts.remotename
    match = chap_secret(user, server, path, read=read)
    if opts is not None:
        match.problems[:0] = opts.problems
    return match


def password_lookup(
    given: Secret | None, launch_argv: Sequence[str] | None = None
) -> PasswordLookup:
    """How the binding finds the MS-CHAPv2 password: the one we were given, else the
    secret pppd itself uses (its ``password`` option or chap-secrets, for its names).

    ``launch_argv``: pppd's command line in launch mode; None in pty mode, where pppd's
    argv is read from /proc (we are its ``pty`` command).
    """

    def lookup(user: str, server: str) -> str | None:
        if given is not None:
            return given.reveal()
        opts = pppd_options(launch_argv)
        match = find_pppd_secret(
            user.encode("utf-8", "surrogateescape"),
            server.encode("utf-8", "surrogateescape"),
            opts,
        )
        for problem in match.problems:
            log.warning("%s", problem)
        if match.secret is None:
            if not match.problems:
                remote = opts.remotename if opts is not None else None
                where = (
                    f"remotename {remote.decode('utf-8', 'replace')!r} from pppd's options"
                    if remote is not None
                    else f"{server!r} from the server's challenge"
                )
                log.warning(
                    "no chap-secrets line for user %r and server %s: the binding keys "
                    "cannot be derived",
                    user,
                    where,
                )
            return None
        return match.secret.reveal()

    return lookup
