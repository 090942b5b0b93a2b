"""``sstp-helper install-unit``: the systemd template unit ``sstp-pppd@.service``.

The unit ships as package data (``sstp_pppd/data``); installing it writes a copy with the
real paths of this installation's pppd and sstp-helper into /etc/systemd/system.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib import resources
from pathlib import Path

from ..transport.pppd import find_pppd
from . import hostapi
from .paths import Paths, require_root
from .peers import write_atomic
from .updown import cmd_cleanup

UNIT_NAME = "sstp-pppd@.service"
PACKAGED_PPPD = "/usr/sbin/pppd"
PACKAGED_HELPER = "/usr/bin/sstp-helper"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "install-unit",
        help="install the systemd unit sstp-pppd@.service",
        description=f"Write {UNIT_NAME} into /etc/systemd/system with the paths of this "
        "installation; then 'systemctl daemon-reload' and 'systemctl enable --now "
        "sstp-pppd@NAME'.",
    )
    p.set_defaults(func=cmd_install_unit)
    c = sub.add_parser(
        "cleanup",
        help="undo what a connection's killed pppd left behind (the unit's ExecStopPost)",
        description="Undo the routes and DNS settings a connection whose pppd has ended "
        "left behind. Does nothing while its pppd runs.",
    )
    c.add_argument("name", metavar="NAME")
    c.set_defaults(func=cmd_cleanup)
    h = sub.add_parser(
        "install-hooks",
        help="install pppd's ip-up/ip-down hooks that apply the routes and DNS",
        description="Write the sstp-pppd hook into /etc/ppp/ip-up.d, ip-down.d, ipv6-up.d "
        "and ipv6-down.d (again after an upgrade: it is harmless).",
    )
    h.set_defaults(func=cmd_install_hooks)


def packaged_unit() -> str:
    return (resources.files("sstp_pppd") / "data" / UNIT_NAME).read_text(encoding="utf-8")


def helper_path() -> str:
    me = Path(sys.argv[0]).resolve() if sys.argv[0] else None
    if me is not None and me.name == "sstp-helper" and me.is_file():
        return str(me)
    found = shutil.which("sstp-helper")
    return str(Path(found).resolve()) if found else PACKAGED_HELPER


def render_unit(pppd: str, helper: str) -> str:
    """The unit with this installation's paths in its Exec lines."""
    lines = []
    for line in packaged_unit().splitlines(True):
        if line.startswith("Exec"):
            lines.append(line.replace(PACKAGED_PPPD, pppd).replace(PACKAGED_HELPER, helper))
        else:
            lines.append(line)
    return "".join(lines)


def cmd_install_hooks(args: argparse.Namespace, paths: Paths) -> int:
    require_root(paths, "install-hooks")
    for path in hostapi.install_hooks(paths.root):
        print(f"installed {path}")
    return 0


def cmd_install_unit(args: argparse.Namespace, paths: Paths) -> int:
    require_root(paths, "install-unit")
    target = paths.systemd_dir / UNIT_NAME
    write_atomic(target, render_unit(find_pppd(None), helper_path()), 0o644)
    print(f"installed {target}")
    print("now: systemctl daemon-reload && systemctl enable --now sstp-pppd@NAME")
    return 0
