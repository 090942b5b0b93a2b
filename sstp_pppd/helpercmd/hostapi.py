"""The few calls sstp-helper makes into other parts of the package, in one place.

host/ (connconf, status, record, hooks, hookmain), the plugin builder and the sstpc
diversion are written beside sstp-helper. They are imported when a command needs them,
so a missing part makes that one command fail with a clear line instead of breaking
every command at import time; and if their names change, only this file follows.

host/ finds its files through :class:`sstp_pppd.host.paths.Paths` (``/etc/sstp-pppd``,
``/run/sstp-pppd``, moved by its own environment variables); here they are derived from
sstp-helper's root, so a test's temp root moves them too.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import SstpPppdError


class MissingPart(SstpPppdError):
    """A module this command needs is not installed with this copy of sstp-pppd."""


def module(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"sstp_pppd.{name}")
    except ImportError as exc:
        raise MissingPart(
            f"this copy of sstp-pppd has no sstp_pppd.{name} ({exc}): reinstall sstp-pppd"
        ) from exc


def attr(modname: str, name: str) -> Any:
    found = getattr(module(modname), name, None)
    if found is None:
        raise MissingPart(f"sstp_pppd.{modname} has no {name}: reinstall sstp-pppd")
    return found


def command(modname: str, func: str) -> Callable[[Sequence[str]], int]:
    """A command implemented elsewhere: ``main(argv) -> exit code``."""

    def run(argv: Sequence[str]) -> int:
        return int(attr(modname, func)(list(argv)))

    return run


def host_paths(root: Path) -> Any:
    """host's Paths for sstp-helper's ``root`` (the real root: host's own defaults)."""
    cls = attr("host.paths", "Paths")
    if root.resolve() == Path("/"):
        return cls.from_env()
    return cls(
        etc_dir=str(root / "etc/sstp-pppd"),
        run_dir=str(root / "run/sstp-pppd"),
        resolv_conf=str(root / "etc/resolv.conf"),
    )


# -- host.connconf: the route and DNS settings of a connection ---------------------------


def connection(
    *,
    name: str,
    routes: Sequence[str],
    default_route: bool,
    kill_switch: bool,
    dns: bool,
    dns_domains: Sequence[str],
) -> Any:
    """The settings object (validated by host: a ConfigError names a bad value)."""
    return attr("host.connconf", "Connection")(
        name=name,
        routes=tuple(routes),
        default_route=default_route,
        kill_switch=kill_switch,
        dns=dns,
        dns_domains=tuple(dns_domains),
    )


def save_connection(conn: Any, root: Path) -> Path:
    return Path(attr("host.connconf", "save_connection")(conn, host_paths(root)))


def load_connection(name: str, root: Path) -> Any:
    """The connection's settings (host.connconf.Connection), or None if it has none."""
    return attr("host.connconf", "load_connection")(name, host_paths(root))


def remove_connection(name: str, root: Path) -> None:
    attr("host.connconf", "remove_connection")(name, host_paths(root))


def scripts_dir(name: str, root: Path) -> Path:
    return Path(host_paths(root).scripts_dir(name))


# -- host.status: what the transport and the hooks report ---------------------------------


def read_status(name: str, root: Path) -> dict[str, Any]:
    """The status file (host.status), {} when there is none (or no host.status)."""
    try:
        paths = host_paths(root)
    except MissingPart:
        return {}
    try:
        with open(os.path.join(paths.state_dir(name), "status.json"), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def state_dir(name: str, root: Path) -> Path:
    return Path(host_paths(root).state_dir(name))


# -- host.record / hookmain: what was changed on the host, to be undone -------------------


def undo_pending(name: str, root: Path) -> bool:
    """Whether the undo record lists anything (False when this user cannot see it)."""
    path = state_dir(name, root) / "record.json"
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (FileNotFoundError, PermissionError):
        # The state directory is root's (0700): a member of dip cannot tell.
        return False
    except (OSError, ValueError):
        return True  # damaged: host's undo reports it
    return not isinstance(data, dict) or bool(data.get("entries"))


def undo(name: str, root: Path, *, keep_kill_switch: bool = False) -> int:
    """Undo what connection ``name`` recorded; 0 if all of it was undone.

    Everything, and its state tidied (hookmain.undo), or with ``keep_kill_switch`` all but
    the changes that live as long as the connection (the kill switch): those hold until
    ``down``.
    """
    paths = host_paths(root)
    if not keep_kill_switch:
        return int(attr("host.hookmain", "undo")(name, paths))
    scope = attr("host.plan", "Scope")
    errors = attr("host.record", "undo_all")(name, paths, scopes={scope.SESSION, scope.LINK})
    for error in errors:
        print(f"sstp-helper: {name}: cannot undo {error}")
    return 1 if errors else 0


# -- host.hooks -----------------------------------------------------------------------------


def hook_files(root: Path) -> list[Path]:
    hooks = module("host.hooks")
    prefix = root / "etc/ppp"
    return [prefix / d / hooks.HOOK_NAME for d in hooks.HOOK_DIRS]


def hooks_installed(root: Path) -> bool:
    return all(f.exists() for f in hook_files(root))


def install_hooks(root: Path) -> list[str]:
    fn = attr("host.hooks", "install_hooks")
    return [str(f) for f in fn(str(root / "etc/ppp"), paths=host_paths(root))]
