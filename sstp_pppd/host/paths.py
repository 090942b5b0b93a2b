"""Where the host modules keep their files, in one place.

``/etc/sstp-pppd`` holds the connections' settings (``NAME.conf``) and their route scripts
(``NAME/scripts.d/``); ``/run/sstp-pppd/NAME/`` holds what a running connection changed
(``record.json``), its status (``status.json``) and the log of its hooks. The environment
variables below move them (tests, a system that is not the real one); pppd clears the
environment of its scripts, so the hook scripts written by
:func:`sstp_pppd.host.hooks.install_hooks` set them again when they were given.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping

ETC_ENV = "SSTP_PPPD_ETC"
RUN_ENV = "SSTP_PPPD_RUN"
RESOLV_ENV = "SSTP_PPPD_RESOLV_CONF"

#: A connection name: also a file name, a pppd ``ipparam``/``linkname`` and a log ident.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def valid_name(name: str) -> bool:
    """True if ``name`` can name a connection (no slash, no dot-dot, no space)."""
    return bool(NAME_RE.match(name)) and ".." not in name


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Paths:
    etc_dir: str = "/etc/sstp-pppd"
    run_dir: str = "/run/sstp-pppd"
    resolv_conf: str = "/etc/resolv.conf"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        d = cls()
        return cls(
            etc_dir=env.get(ETC_ENV) or d.etc_dir,
            run_dir=env.get(RUN_ENV) or d.run_dir,
            resolv_conf=env.get(RESOLV_ENV) or d.resolv_conf,
        )

    def as_env(self) -> dict[str, str]:
        """The variables that give these paths to another process (only those changed)."""
        d = Paths()
        env = {}
        for var, mine, default in (
            (ETC_ENV, self.etc_dir, d.etc_dir),
            (RUN_ENV, self.run_dir, d.run_dir),
            (RESOLV_ENV, self.resolv_conf, d.resolv_conf),
        ):
            if mine != default:
                env[var] = mine
        return env

    def conf_file(self, name: str) -> str:
        return os.path.join(self.etc_dir, f"{name}.conf")

    def scripts_dir(self, name: str) -> str:
        return os.path.join(self.etc_dir, name, "scripts.d")

    def state_dir(self, name: str) -> str:
        return os.path.join(self.run_dir, name)
