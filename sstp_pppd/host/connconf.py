"""A connection's route and DNS settings: ``/etc/sstp-pppd/NAME.conf``.

The format is one setting a line, ``key value``; ``#`` starts a comment line; keys that take
a list repeat::

    # sstp-pppd connection settings (format 1)
    route 10.99.0.0/24
    route 2001:db8:99::/48
    default-route no
    kill-switch no
    dns yes
    dns-domain corp.example
    dns-domain ~internal.example
    save-server-route no
    script /usr/local/sbin/my-vpn-script

``route`` (repeatable, IPv4 or IPv6 CIDR): a split route through the tunnel.
``default-route``: a full tunnel (the server route is pinned, see routes.py).
``kill-switch`` (only with default-route): no traffic in the clear when the link drops.
``dns``: the server's DNS servers are used (``sstp-helper add`` then writes ``usepeerdns``).
``dns-domain`` (repeatable): a search domain, or with ``~`` a routing-only domain (split DNS).
``save-server-route``: pin the host route to the server even without ``default-route``.
``script``: a main script replacing the built-in route and DNS work (see hooks.py).
Unknown keys are refused, so a typo does not silently leave a tunnel without its routes.
``sstp-helper add`` writes this file with :func:`save_connection`; the hooks and the
transport read it with :func:`load_connection`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping

from ..errors import ConfigError
from .atomic import write_atomic
from .paths import Paths, valid_name

FORMAT = 1
_DOMAIN_RE = re.compile(r"^~?(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+$|^~\.?$")
_BOOL = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """What a connection changes on the host while it is up."""

    name: str
    routes: tuple[str, ...] = ()
    default_route: bool = False
    kill_switch: bool = False
    dns: bool = False
    dns_domains: tuple[str, ...] = ()
    save_server_route: bool = False
    script: str | None = None

    def __post_init__(self) -> None:
        if not valid_name(self.name):
            raise ConfigError(f"{self.name!r} cannot name a connection (letters, digits, _.-)")
        for r in self.routes:
            parse_route(r)
        for d in self.dns_domains:
            parse_domain(d)
        if self.kill_switch and not self.default_route:
            raise ConfigError("--kill-switch needs --default-route")

    def merged(self, other: Connection) -> Connection:
        """These settings with ``other``'s added (the command line over the file)."""
        return Connection(
            name=self.name,
            routes=_unique(self.routes + other.routes),
            default_route=self.default_route or other.default_route,
            kill_switch=self.kill_switch or other.kill_switch,
            dns=self.dns or other.dns,
            dns_domains=_unique(self.dns_domains + other.dns_domains),
            save_server_route=self.save_server_route or other.save_server_route,
            script=other.script or self.script,
        )


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def parse_route(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """``CIDR`` (host bits must be zero; a bare address is a host route)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ConfigError(f"--route {text!r}: not an IPv4 or IPv6 network ({exc})") from None


def parse_domain(text: str) -> str:
    if not _DOMAIN_RE.match(text) or len(text) > 254:
        raise ConfigError(f"--dns-domain {text!r} is not a domain name (~name: routing only)")
    return text


def format_connection(conn: Connection) -> str:
    yn = {True: "yes", False: "no"}
    lines = [f"# sstp-pppd connection settings (format {FORMAT}): see sstp-helper(8)"]
    lines += [f"route {r}" for r in conn.routes]
    lines += [
        f"default-route {yn[conn.default_route]}",
        f"kill-switch {yn[conn.kill_switch]}",
        f"dns {yn[conn.dns]}",
    ]
    lines += [f"dns-domain {d}" for d in conn.dns_domains]
    lines.append(f"save-server-route {yn[conn.save_server_route]}")
    if conn.script:
        lines.append(f"script {conn.script}")
    return "\n".join(lines) + "\n"


def parse_connection(name: str, text: str, origin: str = "settings") -> Connection:
    routes: list[str] = []
    domains: list[str] = []
    flags: dict[str, bool] = {}
    script = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        value = value.strip()
        where = f"{origin} line {n}"
        if key == "route":
            routes.append(str(parse_route(value)))
        elif key == "dns-domain":
            domains.append(parse_domain(value))
        elif key in ("default-route", "kill-switch", "dns", "save-server-route"):
            if value.lower() not in _BOOL:
                raise ConfigError(f"{where}: {key} takes yes or no, not {value!r}")
            flags[key.replace("-", "_")] = _BOOL[value.lower()]
        elif key == "script":
            if not os.path.isabs(value):
                raise ConfigError(f"{where}: script needs an absolute path")
            script = value
        else:
            raise ConfigError(f"{where}: unknown setting {key!r}")
    return Connection(
        name=name,
        routes=_unique(routes),
        dns_domains=_unique(domains),
        script=script,
        **flags,
    )


def load_connection(name: str, paths: Paths | None = None) -> Connection | None:
    """The settings in ``/etc/sstp-pppd/NAME.conf``, or None when there is no such file."""
    paths = paths or Paths.from_env()
    if not valid_name(name):
        raise ConfigError(f"{name!r} cannot name a connection (letters, digits, _.-)")
    path = paths.conf_file(name)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return parse_connection(name, text, path)


def save_connection(conn: Connection, paths: Paths | None = None) -> str:
    """Write ``/etc/sstp-pppd/NAME.conf`` atomically (0644: it holds no secret); its path."""
    paths = paths or Paths.from_env()
    os.makedirs(paths.etc_dir, mode=0o755, exist_ok=True)
    path = paths.conf_file(conn.name)
    write_atomic(path, format_connection(conn), mode=0o644)
    return path


def remove_connection(name: str, paths: Paths | None = None) -> bool:
    """Delete the settings file (not the scripts directory: it is the user's). True if gone."""
    paths = paths or Paths.from_env()
    try:
        os.unlink(paths.conf_file(name))
    except FileNotFoundError:
        return False
    return True


#: The command-line options (dests) that ask for host changes.
HOST_OPTIONS = ("route", "default_route", "kill_switch", "dns_domain", "save_server_route")


def _list(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    if isinstance(value, str):
        return (value,)
    return ()


def session_connection(
    name: str | None, values: Mapping[str, object], paths: Paths | None = None
) -> Connection | None:
    """The host settings of this run: ``/etc/sstp-pppd/NAME.conf`` plus the command line.

    None when there is nothing to do (no settings file, no route option), so a plain run
    changes nothing on the host and writes no file. Here, not in :mod:`.apply`: every run
    with ``--ipparam`` asks, and only those with settings need apply's imports.
    """
    given = any(values.get(k) for k in HOST_OPTIONS)
    if not name:
        if given:
            raise ConfigError(
                "--route, --default-route, --kill-switch, --dns-domain and "
                "--save-server-route need --ipparam NAME (the connection's name)"
            )
        return None
    if not valid_name(name):
        if given:
            raise ConfigError(f"--ipparam {name!r} cannot name a connection (letters, digits, _.-)")
        return None  # an ipparam of another kind: no settings can exist for it
    paths = paths or Paths.from_env()
    stored = load_connection(name, paths)
    if stored is None and not given:
        return None
    cli = Connection(
        name=name,
        routes=_list(values.get("route")),
        default_route=bool(values.get("default_route")),
        kill_switch=bool(values.get("kill_switch")),
        dns_domains=_list(values.get("dns_domain")),
        save_server_route=bool(values.get("save_server_route")),
    )
    return (stored or Connection(name=name)).merged(cli)
