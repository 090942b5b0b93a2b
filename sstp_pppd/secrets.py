"""Where passwords come from: --password, --password-file and pppd's chap-secrets.

A password is held in a :class:`Secret`, whose repr and str never show it, so it cannot
leak through a log line or a traceback by accident.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .core.pppwatch import PasswordLookup
from .errors import ConfigError

log = logging.getLogger(__name__)

CHAP_SECRETS = "/etc/ppp/chap-secrets"


class Secret:
    """A password that refuses to be printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def read_password_file(path: str) -> Secret:
    """The first line of ``path``, without its line end. Warns when others may read it."""
    try:
        with open(path, encoding="utf-8") as f:
            mode = os.fstat(f.fileno()).st_mode
            line = f.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the password file {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "password file %s can be read by other users (mode %o): chmod 600 it",
            path,
            stat.S_IMODE(mode),
        )
    password = line.rstrip("\r\n")
    if not password:
        raise ConfigError(f"the password file {path} is empty")
    return Secret(password)


@dataclass(frozen=True, slots=True)
class SecretEntry:
    """One line of a pppd secrets file: client, server, secret."""

    client: str
    server: str
    secret: Secret


def _words(line: str) -> Iterator[str]:
    """Split a secrets line as pppd's getword() does: quotes, backslash escapes, # comments."""
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i].isspace():
            i += 1
        if i >= n or line[i] == "#":
            return
        word: list[str] = []
        quote = ""
        while i < n:
            c = line[i]
            if quote:
                if c == quote:
                    quote = ""
                elif c == "\\" and i + 1 < n:
                    i += 1
                    word.append(line[i])
                else:
                    word.append(c)
            elif c in "\"'":
                quote = c
            elif c == "\\" and i + 1 < n:
                i += 1
                word.append(line[i])
            elif c.isspace():
                break
            else:
                word.append(c)
            i += 1
        yield "".join(word)


def parse_secrets(lines: Iterable[str]) -> list[SecretEntry]:
    """Parse the lines of a chap-secrets file (``client server secret [addresses...]``)."""
    entries = []
    for line in lines:
        words = list(_words(line))
        if len(words) >= 3:
            entries.append(SecretEntry(client=words[0], server=words[1], secret=Secret(words[2])))
    return entries


def find_secret(entries: Iterable[SecretEntry], client: str, server: str) -> Secret | None:
    """The secret pppd would use for ``client`` talking to ``server``.

    The most specific line wins: an exact server name, then ``*``. A line whose client is
    ``*`` matches any user, as in pppd.
    """
    best: tuple[int, Secret] | None = None
    for e in entries:
        if e.client not in (client, "*"):
            continue
        if e.server == server and server:
            score = 2
        elif e.server == "*":
            score = 1
        else:
            continue
        score = score * 2 + (e.client == client)
        if best is None or score > best[0]:
            best = (score, e.secret)
    if best is None:
        return None
    secret = best[1]
    if secret.reveal().startswith("@"):
        # pppd: "@file" means the secret is the first word of that file.
        return read_password_file(secret.reveal()[1:])
    return secret


def chap_secrets_lookup(path: str = CHAP_SECRETS) -> tuple[list[SecretEntry], str | None]:
    """Read chap-secrets; returns the entries and an explanation when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_secrets(f), None
    except OSError as exc:
        return [], f"cannot read {path}: {exc.strerror}"


def password_lookup(given: Secret | None) -> PasswordLookup:
    """How the binding finds the MS-CHAPv2 password: the one we were given, else the
    chap-secrets entry pppd itself would use for that user and server name."""

    def lookup(user: str, server: str) -> str | None:
        if given is not None:
            return given.reveal()
        entries, problem = chap_secrets_lookup()
        if problem:
            log.warning("no password for the crypto binding: %s", problem)
            return None
        found = find_secret(entries, user, server)
        if found is None:
            log.warning("no chap-secrets entry for %r to derive the binding keys", user)
            return None
        return found.reveal()

    return lookup
