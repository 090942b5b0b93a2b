"""Stand in for sstpc where NetworkManager-sstp looks for it, and undo that exactly.

NetworkManager-sstp runs the first of ``/sbin/sstpc``, ``/usr/sbin/sstpc`` and
``/usr/local/sbin/sstpc`` that exists; no setting names another program. sstp-pppd takes
sstpc's command line, socket and exit behaviour, so it can stand there. The change is made the
Debian way, so that it survives upgrades of ``sstp-client`` and is recorded by dpkg itself:

* replace: ``dpkg-divert --local --rename --divert /usr/sbin/sstpc.distrib --add
  /usr/sbin/sstpc`` (sstp-client's sstpc moves to ``sstpc.distrib``, and future upgrades of
  the package install there too), then a symlink ``/usr/sbin/sstpc -> <sstp-pppd>``. With
  merged /usr (Debian 12), ``/sbin/sstpc`` is the same file. Without sstp-client installed
  the diversion is still added, so that installing it later does not take the name back.
* restore: remove our symlink (only if it is a symlink to an ``sstp-pppd``), then
  ``dpkg-divert --local --rename --divert /usr/sbin/sstpc.distrib --remove /usr/sbin/sstpc``,
  which moves sstpc back. If dpkg refuses, the symlink is put back and the error reported.

Both are idempotent and print the resulting status. The record of the change, and so of its
inverse, is dpkg's own diversion database (``dpkg-divert --list '*sstpc*'``). ``--root DIR``
works on another root filesystem (dpkg-divert's ``--root``: ``DIR/var/lib/dpkg`` as admin
directory and DIR as installation directory), which is how the tests run without touching
this machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, ExitCode

__all__ = [
    "Status",
    "main_replace",
    "main_restore",
    "main_status",
    "replace_sstpc",
    "restore_sstpc",
]

SSTPC = "/usr/sbin/sstpc"
DIVERTED = "/usr/sbin/sstpc.distrib"
#: Where NetworkManager-sstp 1.3 looks, in its order.
NM_CANDIDATES = ("/sbin/sstpc", "/usr/sbin/sstpc", "/usr/local/sbin/sstpc")
OUR_NAME = "sstp-pppd"


def _in(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


@dataclasses.dataclass(frozen=True, slots=True)
class Status:
    """What is at sstpc's places under ``root``, and what NetworkManager would run."""

    diverted_to: str | None  # the divert-to name of a diversion of /usr/sbin/sstpc
    diverted_by: str | None  # "LOCAL" or the package that diverts it
    link_target: str | None  # where /usr/sbin/sstpc points, if it is a symlink
    original_present: bool  # /usr/sbin/sstpc.distrib exists
    nm_runs: str | None  # the first of NM's candidates that exists

    @property
    def replaced(self) -> bool:
        return (
            self.diverted_to == DIVERTED
            and self.diverted_by == "LOCAL"
            and _is_ours(self.link_target)
        )

    def lines(self) -> list[str]:
        out = []
        if self.diverted_to:
            out.append(f"{SSTPC} is diverted to {self.diverted_to} ({self.diverted_by})")
        else:
            out.append(f"{SSTPC} is not diverted")
        if self.link_target:
            out.append(f"{SSTPC} -> {self.link_target}")
        if self.original_present:
            out.append(f"sstp-client's sstpc is at {DIVERTED}")
        out.append(f"NetworkManager-sstp runs: {self.nm_runs or 'nothing (no sstpc found)'}")
        return out


def _is_ours(target: str | None) -> bool:
    return target is not None and Path(target).name == OUR_NAME


def _dpkg_divert(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("dpkg-divert")
    if exe is None:
        raise ConfigError("dpkg-divert not found: replace-sstpc needs a Debian-based system")
    return subprocess.run(
        [exe, "--root", str(root), *args], capture_output=True, text=True, check=False
    )


def _divert_args(action: str) -> list[str]:
    return ["--local", "--rename", "--divert", DIVERTED, action, SSTPC]


def status(root: Path = Path("/")) -> Status:
    truename = _dpkg_divert(root, "--truename", SSTPC).stdout.strip()
    owner = _dpkg_divert(root, "--listpackage", SSTPC).stdout.strip() or None
    link = _in(root, SSTPC)
    target = os.readlink(link) if link.is_symlink() else None
    nm_runs = next((c for c in NM_CANDIDATES if os.path.lexists(_in(root, c))), None)
    return Status(
        diverted_to=truename if owner and truename != SSTPC else None,
        diverted_by=owner,
        link_target=target,
        original_present=os.path.lexists(_in(root, DIVERTED)),
        nm_runs=nm_runs,
    )


def default_target() -> Path:
    """The installed ``sstp-pppd`` entry point: this environment's scripts dir, else PATH."""
    here = Path(sysconfig.get_path("scripts")) / OUR_NAME
    if here.is_file():
        return here
    found = shutil.which(OUR_NAME)
    if found is None:
        raise ConfigError("cannot find the sstp-pppd program; give it with --target PATH")
    return Path(found).absolute()


def replace_sstpc(root: Path = Path("/"), target: Path | None = None) -> Status:
    """Divert sstp-client's sstpc and link sstp-pppd in its place (idempotent)."""
    target = target or default_target()
    if not target.is_absolute() or not os.access(target, os.X_OK):
        raise ConfigError(f"{target} is not an absolute path to an executable")
    before = status(root)
    if before.diverted_by is not None and (
        before.diverted_by != "LOCAL" or before.diverted_to != DIVERTED
    ):
        raise ConfigError(
            f"{SSTPC} is already diverted to {before.diverted_to} by {before.diverted_by}: "
            "not changing it"
        )
    link = _in(root, SSTPC)
    if before.diverted_by is None:
        result = _dpkg_divert(root, *_divert_args("--add"))
        if result.returncode != 0:
            raise ConfigError(f"dpkg-divert --add failed: {_last_line(result)}")
    if link.is_symlink() and os.readlink(link) == str(target):
        return status(root)
    if os.path.lexists(link) and not (link.is_symlink() and _is_ours(os.readlink(link))):
        raise ConfigError(f"{link} exists and is not a link to sstp-pppd: not replacing it")
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".sstpc.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)
    return status(root)


def restore_sstpc(root: Path = Path("/")) -> Status:
    """Remove our link and the diversion, moving sstp-client's sstpc back (idempotent)."""
    before = status(root)
    link = _in(root, SSTPC)
    if before.diverted_by not in (None, "LOCAL") or (
        before.diverted_by == "LOCAL" and before.diverted_to != DIVERTED
    ):
        raise ConfigError(
            f"{SSTPC} is diverted to {before.diverted_to} by {before.diverted_by}, "
            "not by replace-sstpc: not changing it"
        )
    ours = before.link_target if _is_ours(before.link_target) else None
    if os.path.lexists(link) and ours is None and before.diverted_by == "LOCAL":
        raise ConfigError(f"{link} is not a link to sstp-pppd: remove it first, then retry")
    if ours is not None:
        link.unlink()
    if before.diverted_by == "LOCAL":
        result = _dpkg_divert(root, *_divert_args("--remove"))
        if result.returncode != 0:
            if ours is not None:
                link.symlink_to(ours)
            raise ConfigError(f"dpkg-divert --remove failed: {_last_line(result)}")
    return status(root)


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    return " ".join(line.strip() for line in lines) or f"exit {result.returncode}"


def _parser(prog: str, what: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"sstp-helper {prog}", description=what)
    p.add_argument(
        "--root", type=Path, default=Path("/"), help="work on the system under DIR (default /)"
    )
    return p


def _run(args: argparse.Namespace, action: str) -> int:
    if action != "sstpc-status" and args.root == Path("/") and os.geteuid() != 0:
        sys.stderr.write(f"sstp-helper {action}: must be run as root\n")
        return ExitCode.USAGE
    try:
        if action == "replace-sstpc":
            result = replace_sstpc(args.root.absolute(), args.target)
        elif action == "restore-sstpc":
            result = restore_sstpc(args.root.absolute())
        else:
            result = status(args.root.absolute())
    except (ConfigError, OSError) as exc:
        sys.stderr.write(f"sstp-helper {action}: {exc}\n")
        return ExitCode.USAGE
    sys.stdout.write("".join(f"{line}\n" for line in result.lines()))
    return ExitCode.OK


def main_replace(argv: Sequence[str]) -> int:
    """``sstp-helper replace-sstpc [--root DIR] [--target PATH]``."""
    p = _parser(
        "replace-sstpc", "make NetworkManager-sstp (and anything running sstpc) use sstp-pppd"
    )
    p.add_argument("--target", type=Path, help="the sstp-pppd program to link (default: found)")
    return _run(p.parse_args(list(argv)), "replace-sstpc")


def main_restore(argv: Sequence[str]) -> int:
    """``sstp-helper restore-sstpc [--root DIR]``."""
    p = _parser("restore-sstpc", "undo replace-sstpc: sstp-client's sstpc back at /usr/sbin/sstpc")
    return _run(p.parse_args(list(argv)), "restore-sstpc")


def main_status(argv: Sequence[str]) -> int:
    """``sstp-helper sstpc-status [--root DIR]``: what NetworkManager-sstp would run."""
    p = _parser("sstpc-status", "show whether sstpc is replaced by sstp-pppd")
    return _run(p.parse_args(list(argv)), "sstpc-status")
