"""``sstp-helper status [NAME] [--json]``: what each connection is doing.

The JSON form is an interface (man sstp-helper, JSON OUTPUT): ``{"version": 1,
"connections": [...]}``, every key always present (null when unknown), keys only ever
added within a version.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import ConfigError
from . import hostapi
from .add import connection_names
from .paths import Paths, validate_name
from .peers import peers_option, peers_server
from .state import Probe, State, iface_counter, link_addresses, probe, uptime

JSON_VERSION = 1

#: The keys of one connection in ``status --json``, in order (the man page lists them).
KEYS = (
    "name", "state", "stage", "interface", "local", "peer", "local6", "peer6", "server",
    "server_address", "user", "routes", "kill_switch", "dns", "dns_domains", "dns_backend",
    "pppd_pid", "uptime", "rx_bytes", "tx_bytes", "last_error", "scripts_dir",
)  # fmt: skip


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="show the state of one or every connection",
        description="Show the state of connection NAME, or of every connection.",
    )
    p.add_argument("name", metavar="NAME", nargs="?")
    p.add_argument("--json", action="store_true", help="print JSON (schema: man sstp-helper)")
    p.set_defaults(func=cmd_status)


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def entry(name: str, paths: Paths, p: Probe | None = None) -> dict[str, Any]:
    """One connection as ``status --json`` shows it."""
    p = p or probe(name, paths)
    s = p.status
    try:
        text = paths.peers_file(name).read_text(errors="replace")
    except OSError:
        text = ""
    local, peer = link_addresses(p, paths)
    try:
        scripts: str | None = str(hostapi.scripts_dir(name, paths.root))
    except hostapi.MissingPart:
        scripts = None
    up = p.state is not State.DOWN
    result: dict[str, Any] = {
        "name": name,
        "state": p.state.value,
        "stage": _str(s.get("stage")),
        "interface": p.interface if up else None,
        "local": local,
        "peer": peer,
        "local6": _str(s.get("local6")),
        "peer6": _str(s.get("peer6")),
        "server": _str(s.get("server")) or peers_server(text),
        "server_address": _str(s.get("server_address")),
        "kill_switch": s.get("kill_switch") is True,
        "dns_backend": _str(s.get("dns_backend")),
        "user": peers_option(text, "name"),
        "routes": _strings(s.get("routes")),
        "dns": _strings(s.get("dns")),
        "dns_domains": _strings(s.get("dns_domains")),
        "pppd_pid": p.pppd_pid,
        "uptime": round(u, 1) if (u := uptime(p)) is not None else None,
        "rx_bytes": iface_counter(paths, p.interface, "rx_bytes") if up else None,
        "tx_bytes": iface_counter(paths, p.interface, "tx_bytes") if up else None,
        "last_error": p.last_error,
        "scripts_dir": scripts,
    }
    return {k: result[k] for k in KEYS}


def human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def human_time(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d {h:02d}h {m:02d}m"
    if h:
        return f"{h}h {m:02d}m {s:02d}s"
    return f"{m}m {s:02d}s" if m else f"{s}s"


def format_entry(e: dict[str, Any]) -> str:
    """The human form of one :func:`entry`."""
    lines = [f"{e['name']}: {e['state']}" + (f" ({e['stage']})" if e["state"] == "connecting"
                                              and e["stage"] else "")]  # fmt: skip

    def row(label: str, value: str) -> None:
        lines.append(f"  {label + ':':<12}{value}")

    if e["interface"]:
        addr = f" {e['local']}" if e["local"] else ""
        addr += f" peer {e['peer']}" if e["peer"] else ""
        row("interface", e["interface"] + addr)
    if e["server"]:
        row("server", e["server"] + (f" ({e['server_address']})" if e["server_address"] else ""))
    if e["user"]:
        row("user", e["user"])
    if e["state"] == "up":
        row("routes", ", ".join(e["routes"]) or "none")
        dns = ", ".join(e["dns"]) or "none"
        if e["dns_domains"]:
            dns += f" (domains {', '.join(e['dns_domains'])})"
        row("dns", dns)
        if e["uptime"] is not None:
            row("uptime", human_time(e["uptime"]))
        row("traffic", f"received {human_bytes(e['rx_bytes'])}, sent {human_bytes(e['tx_bytes'])}")
    if e["pppd_pid"] is not None:
        row("pppd", f"PID {e['pppd_pid']}")
    err = e["last_error"]
    if err and err["reason"]:
        code = f" (exit {err['exit_code']})" if err["exit_code"] is not None else ""
        row("last error", f"{err['reason']}{code}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace, paths: Paths) -> int:
    if args.name is not None:
        name = validate_name(args.name)
        if not paths.peers_file(name).exists():
            raise ConfigError(f"no connection {name}")
        names = [name]
    else:
        names = connection_names(paths)
    entries = [entry(n, paths) for n in names]
    if args.json:
        print(json.dumps({"version": JSON_VERSION, "connections": entries}, indent=2))
    elif not entries:
        print("no connections")
    else:
        print("\n".join(format_entry(e) for e in entries))
    return 0
