"""Routes through pyroute2 (never an ``ip`` subprocess): the executor of plan.RouteOp.

Only the synchronous ``IPRoute`` and names exported by ``pyroute2/__init__.py`` are used,
so Debian 12's pyroute2 0.7.2 serves as well as 0.9; it is imported lazily (start-up time
matters for the hooks, and the relay never needs it). Under asyncio the caller runs these
functions in a thread (``asyncio.to_thread``): the sync API cannot run inside a loop.

The routing policy (def1 halves for the full tunnel, unreachable halves for the kill
switch, the server's host route) is decided and justified in :mod:`.plan`; here a route is
added only after it is written in the record, is left alone when it already exists, and
is deleted with exactly the attributes it was added with.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from .plan import MAIN_TABLE, RouteAnswer, RouteOp, RouteType

if TYPE_CHECKING:
    from .record import Record

log = logging.getLogger(__name__)

RTN_UNICAST = 1
RTN_UNREACHABLE = 7
RTPROT_STATIC = 4
RT_SCOPE_LINK = 253
#: Errors that mean "the route is not there": already deleted, or its interface is gone.
GONE = {errno.ESRCH, errno.ENOENT, errno.ENODEV, errno.ENXIO}
_TYPES = {RouteType.UNICAST: RTN_UNICAST, RouteType.UNREACHABLE: RTN_UNREACHABLE}


def _ipr() -> Any:
    from pyroute2 import IPRoute  # noqa: PLC0415

    return IPRoute()


def _netlink_code(exc: BaseException) -> int | None:
    from pyroute2 import NetlinkError  # noqa: PLC0415

    return exc.code if isinstance(exc, NetlinkError) else None


def _ifindex(ipr: Any, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


def _ifname(ipr: Any, index: int) -> str | None:
    links = ipr.get_links(index)
    return str(links[0].get_attr("IFLA_IFNAME")) if links else None


def link_exists(ifname: str) -> bool:
    """The interface exists in this network namespace (sysfs may show another one's)."""
    with _ipr() as ipr:
        return _ifindex(ipr, ifname) is not None


def lookup(address: str) -> RouteAnswer:
    """How the kernel reaches ``address`` now (RTM_GETROUTE), and if a host route exists."""
    addr = ipaddress.ip_address(address)
    family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
    with _ipr() as ipr:
        try:
            answer = ipr.route("get", dst=str(addr), family=family)[0]
        except Exception as exc:
            if _netlink_code(exc) is None:
                raise
            return RouteAnswer(address=str(addr), ifname=None, gateway=None, unreachable=True)
        oif = answer.get_attr("RTA_OIF")
        gateway = answer.get_attr("RTA_GATEWAY")
        exists = any(
            r.get_attr("RTA_DST") == str(addr) and r["dst_len"] == addr.max_prefixlen
            for r in ipr.get_routes(family=family, table=MAIN_TABLE)
        )
        return RouteAnswer(
            address=str(addr),
            ifname=_ifname(ipr, oif) if oif else None,
            gateway=str(gateway) if gateway else None,
            host_route_exists=exists,
            unreachable=answer["type"] != RTN_UNICAST,
        )


def _metric(op: RouteOp) -> int:
    # The kernel stores an IPv6 route's metric 0 as 1024 (IP6_RT_PRIO_USER).
    return 1024 if op.family == 6 and op.metric == 0 else op.metric


def exists(ipr: Any, op: RouteOp) -> bool:
    """A route with this destination, type and metric is already in the main table."""
    net = ipaddress.ip_network(op.dst)
    family = socket.AF_INET if net.version == 4 else socket.AF_INET6
    for r in ipr.get_routes(family=family, table=MAIN_TABLE):
        dst = r.get_attr("RTA_DST")
        if dst is None:  # a default route carries no RTA_DST
            dst = str(ipaddress.IPv4Address(0) if net.version == 4 else ipaddress.IPv6Address(0))
        if (
            ipaddress.ip_network(f"{dst}/{r['dst_len']}") == net
            and r["type"] == _TYPES[op.type]
            and int(r.get_attr("RTA_PRIORITY") or 0) == _metric(op)
        ):
            return True
    return False


def _spec(ipr: Any, op: RouteOp) -> dict[str, Any] | None:
    net = ipaddress.ip_network(op.dst)
    spec: dict[str, Any] = {
        "dst": str(net.network_address),
        "dst_len": net.prefixlen,
        "family": socket.AF_INET if net.version == 4 else socket.AF_INET6,
        "table": MAIN_TABLE,
        "type": _TYPES[op.type],
        "priority": op.metric,
        "proto": RTPROT_STATIC,
    }
    if op.ifname:
        index = _ifindex(ipr, op.ifname)
        if index is None:
            return None
        spec["oif"] = index
    if op.gateway:
        spec["gateway"] = op.gateway
    elif op.ifname and net.version == 4:
        spec["scope"] = RT_SCOPE_LINK  # on-link, as ip(8) makes a route without a gateway
    return spec


def apply_route(record: Record, op: RouteOp) -> bool:
    """Add ``op``'s route, recorded first; False if it already existed (then left alone)."""
    with _ipr() as ipr:
        if exists(ipr, op):
            log.info("route %s already exists: left alone", op.describe())
            return False
        spec = _spec(ipr, op)
        if spec is None:
            raise OSError(errno.ENODEV, f"no interface {op.ifname} for route {op.dst}")
        entry = record.add("route", op.scope, op.to_dict())
        try:
            ipr.route("add", **spec)
        except Exception as exc:
            code = _netlink_code(exc)
            if code is None:
                raise
            record.drop(entry)
            if code == errno.EEXIST:
                log.info("route %s appeared meanwhile: left alone", op.describe())
                return False
            raise OSError(code, f"cannot add route {op.describe()}: {os.strerror(code)}") from exc
    log.info("added route %s", op.describe())
    return True


def undo_route(data: dict[str, Any]) -> None:
    """Delete a recorded route; a route already gone (or its interface) counts as done."""
    op = RouteOp.from_dict(data)
    with _ipr() as ipr:
        spec = _spec(ipr, op)
        if spec is None:
            log.info("route %s went with its interface", op.describe())
            return
        try:
            ipr.route("del", **spec)
        except Exception as exc:
            code = _netlink_code(exc)
            if code is None:
                raise
            if code in GONE:
                log.info("route %s was already gone", op.describe())
                return
            reason = os.strerror(code)
            raise OSError(code, f"cannot delete route {op.describe()}: {reason}") from exc
    log.info("deleted route %s", op.describe())
