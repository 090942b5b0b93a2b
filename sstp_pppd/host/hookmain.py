"""What the pppd hooks run: ``python -m sstp_pppd.host.hookmain EVENT ARGS...``.

``EVENT`` is ``ip-up``, ``ip-down``, ``ipv6-up`` or ``ipv6-down``, followed by pppd's
script arguments ``IFACE TTY SPEED LOCAL REMOTE IPPARAM``; the environment is pppd's
(``USEPEERDNS``, ``DNS1``, ``DNS2``, ``PPPD_PID``...). ``undo NAME`` undoes everything
connection NAME recorded (what ``sstp-helper down`` calls after pppd ended, and the
cure after a ``kill -9``); it is also ``python -m sstp_pppd.host undo NAME``.

On ip-up the plan's routes and DNS are applied (IPv4 split routes, the full tunnel, the
kill switch, DNS), on ipv6-up the IPv6 routes; ip-down undoes what the link changed (its
routes and DNS), and leaves the kill switch and a server route held by it until ``down``.
The log goes to ``/run/sstp-pppd/NAME/hooks.log`` and to syslog. Exit status: 0, or 1
when something could not be applied or undone (pppd ignores it; the log says what).
"""

from __future__ import annotations

import ipaddress
import logging
import logging.handlers
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from ..errors import ConfigError
from . import dns, hooks, linkstate, routes
from .connconf import Connection, load_connection, parse_connection
from .paths import Paths, valid_name
from .plan import DnsOp, LinkInfo, RouteOp, Scope, dns_servers, plan_link_up
from .record import Entry, Record, default_undoers, undo_all
from .status import read_status, update_status

log = logging.getLogger("sstp_pppd.host")

EVENTS = ("ip-up", "ip-down", "ipv6-up", "ipv6-down")
SETTINGS = "settings.conf"


def session_settings_path(name: str, paths: Paths) -> str:
    return os.path.join(paths.state_dir(name), SETTINGS)


def connection_settings(name: str, paths: Paths) -> Connection | None:
    """The settings a running transport left (CLI and file merged), else the file's."""
    try:
        with open(session_settings_path(name, paths), encoding="utf-8") as f:
            return parse_connection(name, f.read(), SETTINGS)
    except FileNotFoundError:
        return load_connection(name, paths)


def _setup_logging(name: str, paths: Paths) -> None:
    log.setLevel(logging.INFO)
    log.propagate = False
    fmt = logging.Formatter(f"%(asctime)s hook[{os.getpid()}] %(levelname)s %(message)s")
    path = os.path.join(paths.state_dir(name), "hooks.log")
    try:
        os.makedirs(paths.state_dir(name), mode=0o700, exist_ok=True)
        fh = logging.FileHandler(path)
        os.chmod(path, 0o600)
    except OSError:
        pass
    else:
        fh.setFormatter(fmt)
        log.addHandler(fh)
    if os.path.exists("/dev/log"):
        try:
            sh = logging.handlers.SysLogHandler("/dev/log")
        except OSError:
            return
        sh.setFormatter(logging.Formatter(f"sstp-pppd-hook[{name}]: %(message)s"))
        log.addHandler(sh)


def _fields(
    conn: Connection, link: LinkInfo, status: Mapping[str, object], env: Mapping[str, str]
) -> dict[str, str]:
    routes_of_family = [r for r in conn.routes if ipaddress.ip_network(r).version == link.family]
    return {
        "CONNECTION": conn.name,
        "FAMILY": str(link.family),
        "IFNAME": link.ifname,
        "LOCAL_ADDRESS": link.local,
        "PEER_ADDRESS": link.peer,
        "DNS": " ".join(link.dns),
        "DNS_DOMAINS": " ".join(conn.dns_domains),
        "ROUTES": " ".join(routes_of_family),
        "DEFAULT_ROUTE": "1" if conn.default_route else "0",
        "KILL_SWITCH": "1" if conn.kill_switch else "0",
        "SERVER": str(status.get("server", "")),
        "SERVER_ADDRESS": str(status.get("server_address", "")),
        "PPPD_PID": env.get("PPPD_PID", ""),
    }


def link_up(conn: Connection, link: LinkInfo, paths: Paths, env: Mapping[str, str]) -> int:
    status = read_status(conn.name, paths) or {}
    script_env = _fields(conn, link, status, env)
    hooks.run_scripts(conn.name, "pre-up", hooks.script_env("pre-up", script_env), paths)
    failures = 0
    applied: list[str] = []
    backend = None
    if conn.script:
        if not hooks.run_script(conn.script, "up", hooks.script_env("up", script_env)):
            failures += 1
    else:
        rec = Record(conn.name, paths)
        plan = plan_link_up(conn, link, use_peer_dns=bool(env.get("USEPEERDNS")))
        for warning in plan.warnings:
            log.warning("%s", warning)
        for op in plan.ops:
            try:
                if isinstance(op, RouteOp):
                    routes.apply_route(rec, op)
                    if op.ifname:
                        applied.append(op.dst)
                elif isinstance(op, DnsOp):
                    backend = dns.apply_dns(rec, op, paths, env, full_tunnel=conn.default_route)
            except OSError as exc:
                failures += 1
                log.error("%s: %s", op, exc)
    if not conn.script and not routes.link_exists(link.ifname):
        # The link went while this hook started (pppd does not wait for it): its ip-down
        # may already have run, so undo here what was just applied for it.
        log.warning("%s is gone: undoing what was applied for it", link.ifname)
        for e in Record(conn.name, paths).undo(
            default_undoers(paths), scopes={Scope.LINK}, match=_ours(link.ifname, link.family)
        ):
            log.error("%s", e)
        return 1
    suffix = "6" if link.family == 6 else ""
    fields: dict[str, object] = {
        "state": "up",
        "stage": "up",
        "interface": link.ifname,
        f"local{suffix}": link.local,
        f"peer{suffix}": link.peer,
        "kill_switch": conn.kill_switch,
        "scripts_dir": paths.scripts_dir(conn.name),
    }
    if link.family == 4:
        fields.update(dns=list(link.dns), dns_domains=list(conn.dns_domains), dns_backend=backend)

    def add_routes(data: dict[str, object]) -> None:
        earlier = data.get("routes")
        data["routes"] = sorted({*(earlier if isinstance(earlier, list) else []), *applied})
        linkstate.mark(data, link.family, up=True)

    update_status(conn.name, paths, transform=add_routes, **fields)
    hooks.run_scripts(conn.name, "up", hooks.script_env("up", script_env), paths)
    log.info("%s up on %s: %d change(s) failed", conn.name, link.ifname, failures)
    return 1 if failures else 0


def _ours(ifname: str, family: int) -> Callable[[Entry], bool]:
    def match(e: Entry) -> bool:
        if e.data.get("ifname") != ifname:
            return False
        if family == 6:  # ipv6-down: only the IPv6 routes; DNS goes with ip-down
            return e.kind == "route" and ipaddress.ip_network(e.data["dst"]).version == 6
        return True

    return match


def link_down(conn: Connection, link: LinkInfo, paths: Paths, env: Mapping[str, str]) -> int:
    """The end of one family of the link; the caller holds :func:`.linkstate.link_lock`."""
    status = read_status(conn.name, paths) or {}
    if link.family not in linkstate.links_up(status):
        # Done already, by the transport's exit (pppd stopped waiting for this hook), or
        # its ip-up never finished: only what may still be recorded for it is undone.
        log.info("%s: the end of this link was done already", conn.name)
        errors = Record(conn.name, paths).undo(
            default_undoers(paths), scopes={Scope.LINK}, match=_ours(link.ifname, link.family)
        )
        for e in errors:
            log.error("%s", e)
        return 1 if errors else 0
    script_env = _fields(conn, link, status, env)
    hooks.run_scripts(conn.name, "down", hooks.script_env("down", script_env), paths)
    failures = 0
    if conn.script:
        if not hooks.run_script(conn.script, "down", hooks.script_env("down", script_env)):
            failures += 1
    errors = Record(conn.name, paths).undo(
        default_undoers(paths),
        scopes={Scope.LINK},
        match=_ours(link.ifname, link.family),
    )
    for e in errors:
        log.error("%s", e)
    if link.family == 4:
        update_status(
            conn.name, paths, state="down", stage="link-down", routes=[], dns=None,
            dns_backend=None, transform=lambda data: linkstate.mark(data, 4, up=False),
        )  # fmt: skip
    else:

        def drop_ipv6(data: dict[str, object]) -> None:
            routes = data.get("routes")
            if isinstance(routes, list):
                data["routes"] = [r for r in routes if ":" not in str(r)]
            linkstate.mark(data, 6, up=False)

        update_status(conn.name, paths, transform=drop_ipv6)
    hooks.run_scripts(conn.name, "post-down", hooks.script_env("post-down", script_env), paths)
    return 1 if failures or errors else 0


def links_down(conn: Connection, paths: Paths) -> None:
    """The end of each family still up, as its ip-down hook would have done it.

    For the transport's exit and ``undo``: the hook may never come (pppd SIGTERMed it, or
    was killed with -9) or come too late, and the scripts are owed their down and
    post-down. The caller holds :func:`.linkstate.link_lock`."""
    status = read_status(conn.name, paths) or {}
    ifname = status.get("interface")
    for family in linkstate.links_up(status):
        if not isinstance(ifname, str):
            break
        suffix = "6" if family == 6 else ""
        dns = status.get("dns") if family == 4 else None
        link = LinkInfo(
            ifname=ifname,
            family=family,
            local=str(status.get(f"local{suffix}", "")),
            peer=str(status.get(f"peer{suffix}", "")),
            dns=tuple(str(d) for d in dns) if isinstance(dns, list) else (),
        )
        log.info("%s: no ip-down for IPv%d of %s yet: its end is done here", conn.name, family,
                 ifname)  # fmt: skip
        try:
            link_down(conn, link, paths, {})
        except Exception:  # the caller's undo of the record must still run
            log.exception("the end of IPv%d of %s failed", family, ifname)


def undo(name: str, paths: Paths) -> int:
    """Undo everything of ``name``; remove its record and session settings once empty."""
    try:
        if os.path.isdir(paths.state_dir(name)):
            with linkstate.link_lock(name, paths):
                try:
                    conn = connection_settings(name, paths)
                except ConfigError as exc:  # the record is undone all the same
                    sys.stderr.write(f"sstp-pppd: {name}: {exc}\n")
                    conn = None
                if conn is not None:
                    links_down(conn, paths)
        errors = undo_all(name, paths)
    except OSError as exc:  # an unreadable record, or no permission
        sys.stderr.write(f"sstp-pppd: {name}: {exc.strerror or exc}\n")
        return 1
    for e in errors:
        sys.stderr.write(f"sstp-pppd: {name}: cannot undo {e}\n")
    if os.path.isdir(paths.state_dir(name)):
        if not errors:
            Record(name, paths).forget()
            # The lock file stays: deleting it could let two processes hold "the" lock.
            try:
                os.unlink(session_settings_path(name, paths))
            except FileNotFoundError:
                pass
        if read_status(name, paths) is not None:
            update_status(
                name, paths, state="down", stage="stopped", routes=[], dns=None,
                dns_backend=None, kill_switch=False, pid=None,
            )  # fmt: skip
    return 1 if errors else 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if environ is None else environ)
    paths = Paths.from_env(env)
    if len(args) == 2 and args[0] == "undo":
        if not valid_name(args[1]):
            sys.stderr.write(f"sstp-pppd: {args[1]!r} cannot name a connection\n")
            return 2
        return undo(args[1], paths)
    if len(args) < 7 or args[0] not in EVENTS:
        sys.stderr.write(
            "usage: python -m sstp_pppd.host.hookmain "
            "{ip-up|ip-down|ipv6-up|ipv6-down} IFACE TTY SPEED LOCAL REMOTE IPPARAM\n"
            "       python -m sstp_pppd.host.hookmain undo NAME\n"
        )
        return 2
    event, iface, _tty, _speed, local, remote, name = args[:7]
    if not valid_name(name):
        return 0  # not one of ours
    try:
        conn = connection_settings(name, paths)
    except ConfigError as exc:
        sys.stderr.write(f"sstp-pppd hook: {exc}\n")
        return 1
    if conn is None:
        return 0  # not one of ours
    _setup_logging(name, paths)
    family = 6 if event.startswith("ipv6") else 4
    link = LinkInfo(
        ifname=iface,
        family=family,
        local=env.get("LLLOCAL", local) if family == 6 else local,
        peer=env.get("LLREMOTE", remote) if family == 6 else remote,
        dns=dns_servers(env) if family == 4 and env.get("USEPEERDNS") else (),
    )
    log.info("%s %s %s local %s peer %s", event, name, iface, link.local, link.peer)
    try:
        with linkstate.link_lock(name, paths):
            if event.endswith("-up"):
                return link_up(conn, link, paths, env)
            return link_down(conn, link, paths, env)
    except Exception:
        log.exception("%s %s failed", event, name)
        return 1


if __name__ == "__main__":
    sys.exit(main())
