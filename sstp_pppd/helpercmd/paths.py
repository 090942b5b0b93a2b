"""Where a connection's files live, under a root that unit tests replace by a temp dir.

Every path sstp-helper touches is built here from ``root`` (``/`` in real use), so a test
that sets ``SSTP_HELPER_ROOT`` (or the hidden ``--root``) can never reach the real /etc.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from ..errors import ConfigError

#: The environment variable that moves every path below another root (for tests).
ROOT_ENV = "SSTP_HELPER_ROOT"

# pppd uses NAME in file names (/etc/ppp/peers/NAME, /run/ppp-NAME.pid), as a chap-secrets
# word and in the scripts' arguments; systemd puts it in a unit name. These characters are
# safe in all of them without quoting; "*" (chap-secrets' wildcard) and "@" are not.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def validate_name(name: str) -> str:
    """``name`` if it can name a connection, else a ConfigError saying why."""
    if not _NAME.match(name) or ".." in name:
        raise ConfigError(
            f"connection name {name!r}: use 1-63 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (no '/' and no '..')"
        )
    return name


def default_root() -> Path:
    return Path(os.environ.get(ROOT_ENV) or "/")


@dataclasses.dataclass(frozen=True, slots=True)
class Paths:
    """The files of sstp-helper under ``root``."""

    root: Path = Path("/")

    def _p(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    @property
    def is_real_root(self) -> bool:
        return self.root.resolve() == Path("/")

    @property
    def peers_dir(self) -> Path:
        return self._p("/etc/ppp/peers")

    def peers_file(self, name: str) -> Path:
        return self.peers_dir / name

    @property
    def chap_secrets(self) -> Path:
        return self._p("/etc/ppp/chap-secrets")

    def pid_file(self, name: str) -> Path:
        """pppd's ``linkname`` pid file: the PID, then the interface once it exists."""
        return self._p(f"/run/ppp-{name}.pid")

    def net_dir(self, ifname: str) -> Path:
        return self._p(f"/sys/class/net/{ifname}")

    @property
    def systemd_dir(self) -> Path:
        return self._p("/etc/systemd/system")


class NotRoot(ConfigError):
    """The command changes files only root may change."""


def require_root(paths: Paths, what: str) -> None:
    if paths.is_real_root and os.geteuid() != 0:
        raise NotRoot(f"{what} changes files in /etc/ppp: run it as root (sudo sstp-helper ...)")
