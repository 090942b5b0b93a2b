"""Fail closed: what can be checked before connecting is checked before connecting.

Each check turns a configuration that would fail open later (stay root after "could not
drop privileges", accept an option and ignore it, trust certificates found in a CRL
file, find an unreadable CA only after the TCP connect) into one clear usage error
(:class:`~sstp_pppd.errors.ConfigError`, exit 2) before anything connects.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Mapping

from .errors import ConfigError

#: --negotiation-timeout bounds: [MS-SSTP]'s 60 s is too short for a server that waits for
#: a second factor (a phone prompt) during PPP authentication; ten minutes is plenty.
NEGOTIATION_TIMEOUT_RANGE = (10.0, 600.0)


def _str(values: Mapping[str, object], key: str) -> str | None:
    v = values.get(key)
    return v if isinstance(v, str) else None


def check_privileges(values: Mapping[str, object]) -> None:
    """--priv-user/--priv-group must name a real user and group; --priv-dir is refused."""
    user, group = _str(values, "priv_user"), _str(values, "priv_group")
    if user is not None:
        try:
            pwd.getpwnam(user)
        except KeyError:
            raise ConfigError(f"--priv-user {user!r}: no such user") from None
    if group is not None:
        try:
            grp.getgrnam(group)
        except KeyError:
            raise ConfigError(f"--priv-group {group!r}: no such group") from None
    if values.get("priv_dir"):
        # sstpc chroots there; a chroot that does not also hold what the transport reads
        # later (chap-secrets, /proc, the log socket) breaks it, so it is refused rather
        # than accepted and ignored.
        raise ConfigError(
            "--priv-dir is not supported (no chroot is made): drop it, and use "
            "--priv-user/--priv-group to give up root"
        )


def _readable(option: str, path: str, *, directory: bool) -> None:
    try:
        if directory:
            os.listdir(path)
        else:
            with open(path, "rb") as f:
                f.read(1)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: {exc.strerror}") from None


def check_tls_files(values: Mapping[str, object]) -> None:
    """CA and CRL files readable; --insecure with CRL options refused."""
    insecure = bool(values.get("insecure") or values.get("cert_warn"))
    if insecure and (values.get("crl_file") or values.get("crl_path")):
        raise ConfigError(
            "--insecure (or --cert-warn) with --crl-file/--crl-path: the certificate is "
            "not verified, so no CRL would be checked; drop one of them"
        )
    for option, key, directory in (
        ("--ca-cert", "ca_cert", False),
        ("--ca-path", "ca_path", True),
        ("--crl-file", "crl_file", False),
        ("--crl-path", "crl_path", True),
    ):
        path = _str(values, key)
        if path:
            _readable(option, path, directory=directory)


def check_pppd(pppd: str | None, *, launch: bool) -> None:
    """Launch mode: the pppd to start exists and is executable (as transport/pppd.py's
    find_pppd chooses it: --pppd, else pppd on PATH, else /usr/sbin/pppd)."""
    if not launch:
        return
    import shutil  # noqa: PLC0415 (launch mode only: shutil pulls in bz2, lzma...)

    path = pppd or shutil.which("pppd") or "/usr/sbin/pppd"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ConfigError(
            f"pppd {path!r} is not an executable file: install pppd (Debian: ppp) "
            "or give --pppd PATH"
        )


def check(values: Mapping[str, object]) -> None:
    """Every check of this module, on the parsed option values."""
    check_privileges(values)
    check_tls_files(values)
