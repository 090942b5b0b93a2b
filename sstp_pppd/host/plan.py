"""What to change on the host for a connection: pure decisions, no I/O.

Given a connection's settings and what the kernel and pppd told us (the route to the
server, the tunnel's interface and addresses, the server's DNS), the functions here return
an ordered list of operations. :mod:`.routes` and :mod:`.dns` execute them; :mod:`.record`
writes each down before it is made, and undoes them in the reverse order.

Rules (tested in tests/host/test_plan.py):

1. **Server route.** Pinned (a /32 or /128 through the gateway and interface the kernel
   answers for the server, or the proxy when there is one) when ``save-server-route`` or
   ``default-route`` is set, or when a split route would capture the server's address. A
   host route to the server that already exists is left alone, and an answer through a
   PPP interface is not pinned (it would pin the tunnel into itself).
2. **Full tunnel** as OpenVPN's ``def1``: two routes ``0.0.0.0/1`` and ``128.0.0.0/1``
   (``::/1`` and ``8000::/1`` for IPv6) through ``pppN``. They are more specific than any
   default route, so the old default route is never touched: nothing has to be restored,
   a DHCP client renewing the old default cannot take the traffic back, and when ``pppN``
   disappears the kernel removes the two routes with it. A lower-metric default route
   would instead compete with whatever else manages metrics.
3. **Kill switch**: the same four /1 prefixes as ``unreachable`` routes at metric
   :data:`KILL_METRIC`, below the tunnel's (higher number, lower priority). While the link
   is up they are shadowed; when it drops they remain, so traffic meant for the tunnel
   gets "network unreachable" instead of leaving in the clear. The server's host route and
   the local networks (more specific than /1) still work. They live until ``down``
   (scope CONNECTION).
4. **Split routes** go through ``pppN`` for their own family only (IPv4 at ip-up, IPv6 at
   ipv6-up); ``0.0.0.0/0`` or ``::/0`` given as a split route means the full tunnel of
   that family; the peer's own /32, which pppd already routes, is skipped.
5. **DNS** is applied at ip-up when pppd got servers (``usepeerdns``) or domains are set;
   ``~domain`` is routing-only (split DNS), other domains are search domains.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from collections.abc import Iterable, Sequence

from .connconf import Connection

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Metric of the kill switch's unreachable routes: far above anything a system sets
#: (IPv6's default is 1024), so any real route of the same prefix wins over them.
KILL_METRIC = 999_999
#: Metric of the tunnel's routes (0 for IPv4; the kernel stores IPv6's 0 as 1024).
TUNNEL_METRIC = 0
MAIN_TABLE = 254

V4_HALVES = ("0.0.0.0/1", "128.0.0.0/1")
V6_HALVES = ("::/1", "8000::/1")


@enum.unique
class Scope(enum.Enum):
    """How long a change lives, i.e. who undoes it."""

    #: The transport's run: undone when sstp-pppd exits (the server route).
    SESSION = "session"
    #: The PPP link: undone by ip-down (routes through pppN, DNS).
    LINK = "link"
    #: The connection: undone only by ``down`` or ``undo`` (the kill switch).
    CONNECTION = "connection"


@enum.unique
class RouteType(enum.Enum):
    UNICAST = "unicast"
    UNREACHABLE = "unreachable"


@enum.unique
class Purpose(enum.Enum):
    SERVER = "server"
    SPLIT = "split"
    DEFAULT = "default"
    KILL_SWITCH = "kill-switch"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RouteOp:
    """Add one route to the main table (its inverse: delete exactly that route)."""

    dst: str
    purpose: Purpose
    scope: Scope
    type: RouteType = RouteType.UNICAST
    ifname: str | None = None
    gateway: str | None = None
    metric: int = TUNNEL_METRIC

    @property
    def family(self) -> int:
        return ipaddress.ip_network(self.dst).version

    def to_dict(self) -> dict[str, object]:
        return {
            "dst": self.dst,
            "purpose": self.purpose.value,
            "scope": self.scope.value,
            "type": self.type.value,
            "ifname": self.ifname,
            "gateway": self.gateway,
            "metric": self.metric,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> RouteOp:
        return cls(
            dst=str(d["dst"]),
            purpose=Purpose(d["purpose"]),
            scope=Scope(d["scope"]),
            type=RouteType(d["type"]),
            ifname=str(d["ifname"]) if d.get("ifname") else None,
            gateway=str(d["gateway"]) if d.get("gateway") else None,
            metric=int(str(d.get("metric", TUNNEL_METRIC))),
        )

    def describe(self) -> str:
        what = "unreachable " + self.dst if self.type is RouteType.UNREACHABLE else self.dst
        via = f" via {self.gateway}" if self.gateway else ""
        dev = f" dev {self.ifname}" if self.ifname else ""
        return f"{what}{via}{dev} metric {self.metric} ({self.purpose.value})"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DnsOp:
    """Use ``servers`` and ``domains`` for ``ifname`` (its inverse: the backend's revert)."""

    ifname: str
    servers: tuple[str, ...]
    search: tuple[str, ...]
    routing: tuple[str, ...]
    scope: Scope = Scope.LINK


Op = RouteOp | DnsOp


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RouteAnswer:
    """The kernel's answer to RTM_GETROUTE for one server address."""

    address: str
    ifname: str | None
    gateway: str | None
    #: A host route (/32, /128) for this address is already in the main table.
    host_route_exists: bool = False
    #: No route (unreachable, or the lookup failed).
    unreachable: bool = False


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LinkInfo:
    """The PPP link, as pppd tells its ip-up/ipv6-up scripts."""

    ifname: str
    family: int
    local: str
    peer: str
    dns: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    ops: tuple[Op, ...]
    warnings: tuple[str, ...] = ()


def _nets(routes: Iterable[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(r) for r in routes]


def needs_server_route(conn: Connection, servers: Sequence[str]) -> bool:
    """Rule 1: whether the server's route must be pinned before the tunnel exists."""
    if conn.save_server_route or conn.default_route or conn.kill_switch:
        return True
    addrs = [ipaddress.ip_address(s) for s in servers]
    return any(a in n for n in _nets(conn.routes) for a in addrs if a.version == n.version)


def plan_server_routes(conn: Connection, answers: Sequence[RouteAnswer]) -> Plan:
    """Rule 1: the host routes to pin, one per server (or proxy) address."""
    if not needs_server_route(conn, [a.address for a in answers]):
        return Plan(())
    scope = Scope.CONNECTION if conn.kill_switch else Scope.SESSION
    ops: list[Op] = []
    warnings = []
    for a in answers:
        addr = ipaddress.ip_address(a.address)
        if a.host_route_exists:
            continue
        if a.unreachable or a.ifname is None:
            warnings.append(f"no route to {a.address}: its route is not pinned")
            continue
        if a.ifname.startswith("ppp"):
            warnings.append(f"{a.address} is reached through {a.ifname}: its route is not pinned")
            continue
        ops.append(
            RouteOp(
                dst=f"{addr}/{addr.max_prefixlen}",
                purpose=Purpose.SERVER,
                scope=scope,
                ifname=a.ifname,
                gateway=a.gateway,
            )
        )
    return Plan(tuple(ops), tuple(warnings))


def kill_switch_ops() -> list[RouteOp]:
    """Rule 3: the four unreachable /1 routes."""
    return [
        RouteOp(
            dst=dst,
            purpose=Purpose.KILL_SWITCH,
            scope=Scope.CONNECTION,
            type=RouteType.UNREACHABLE,
            metric=KILL_METRIC,
        )
        for dst in V4_HALVES + V6_HALVES
    ]


def plan_link_up(conn: Connection, link: LinkInfo, *, use_peer_dns: bool = True) -> Plan:
    """Rules 2-5: the operations for a link that just came up (ip-up or ipv6-up)."""
    ops: list[Op] = []
    warnings: list[str] = []
    default = conn.default_route
    split: list[IPNetwork] = []
    for net in _nets(conn.routes):
        if net.version != link.family:
            continue
        if net.prefixlen == 0:
            default = True  # rule 4: a /0 split route is the full tunnel
            continue
        if link.family == 4 and net == ipaddress.ip_network(f"{link.peer}/32"):
            continue  # pppd routes the peer itself
        if net not in split:
            split.append(net)
    if conn.kill_switch and link.family == 4:
        ops += kill_switch_ops()
    if default:
        for dst in V4_HALVES if link.family == 4 else V6_HALVES:
            ops.append(
                RouteOp(dst=dst, purpose=Purpose.DEFAULT, scope=Scope.LINK, ifname=link.ifname)
            )
    for net in split:
        ops.append(
            RouteOp(dst=str(net), purpose=Purpose.SPLIT, scope=Scope.LINK, ifname=link.ifname)
        )
    if link.family == 4:
        servers = link.dns if use_peer_dns else ()
        search = tuple(d.rstrip(".") for d in conn.dns_domains if not d.startswith("~"))
        routing = tuple(d[1:].rstrip(".") or "." for d in conn.dns_domains if d.startswith("~"))
        if conn.dns and not servers:
            warnings.append("the server gave no DNS servers (is usepeerdns in the pppd options?)")
        if servers or search or routing:
            ops.append(DnsOp(ifname=link.ifname, servers=servers, search=search, routing=routing))
    return Plan(tuple(ops), tuple(warnings))


def dns_servers(env: dict[str, str]) -> tuple[str, ...]:
    """pppd's DNS1/DNS2 (set with ``usepeerdns``), valid addresses only, in order."""
    out: list[str] = []
    for key in ("DNS1", "DNS2"):
        value = env.get(key, "").strip()
        try:
            addr = str(ipaddress.ip_address(value))
        except ValueError:
            continue
        if addr not in out and not ipaddress.ip_address(addr).is_unspecified:
            out.append(addr)
    return tuple(out)
