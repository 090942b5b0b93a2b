"""``sstp-helper add``, ``remove`` and ``list``: a connection's files, written and removed.

A connection NAME is three things: /etc/ppp/peers/NAME (how pppd starts the transport),
its chap-secrets line (the password, for pppd and for the crypto binding) and its route and
DNS settings (host.connconf). ``add`` writes all three, ``remove`` undoes all three plus the
per-connection state under /run.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from ..config import parse_pin
from ..errors import ConfigError
from ..options import parse_server
from ..secrets import Secret, read_password_file
from . import hostapi, state, updown
from .paths import Paths, require_root, validate_name
from .peers import (
    PeerSettings,
    check_text,
    is_ours,
    peers_option,
    peers_server,
    render_peers,
    secrets_line,
    update_secrets,
    write_atomic,
)

#: pppd options that sstp-helper sets itself (in the peers file, or when it runs pppd).
OWN_OPTIONS = frozenset(
    {"pty", "name", "user", "remotename", "ipparam", "linkname", "nodetach", "updetach",
     "up_sdnotify", "usepeerdns", "password"}
)  # fmt: skip


def transport_path() -> str:
    """The sstp-pppd beside this sstp-helper (same installation), else the one on PATH.

    pppd runs the pty command with a minimal environment, so it gets an absolute path.
    """
    here = Path(sys.argv[0]).resolve().with_name("sstp-pppd") if sys.argv[0] else None
    if here is not None and here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("sstp-pppd")
    return str(Path(found).resolve()) if found else "/usr/bin/sstp-pppd"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "add",
        usage="%(prog)s NAME --server HOST[:PORT] --user USER "
        "(--password-file FILE | --ask-password) [OPTIONS] [-- PPPD-OPTIONS...]",
        help="write a connection: peers file, chap-secrets line, route and DNS settings",
        description="Write /etc/ppp/peers/NAME, the chap-secrets line and the route and DNS "
        "settings of connection NAME (replacing them if NAME exists). Everything after "
        "'--' is pppd options, written instead of the defaults.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--server", required=True, metavar="HOST[:PORT]", help="the SSTP server")
    p.add_argument("--user", required=True, metavar="USER", help="the PPP user name")
    pw = p.add_mutually_exclusive_group(required=True)
    pw.add_argument("--password-file", metavar="FILE", help="read the password from FILE")
    pw.add_argument(
        "--ask-password",
        action="store_true",
        help="read the password from the terminal (no echo), or a line from standard input",
    )
    p.add_argument("--ca-cert", metavar="FILE", help="trust only this CA (PEM) for the server")
    p.add_argument(
        "--pin-sha256",
        action="append",
        default=[],
        metavar="PIN",
        help="accept only a server certificate with this pin (repeatable)",
    )
    p.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="CIDR",
        help="route this network into the tunnel (repeatable, IPv4 or IPv6)",
    )
    p.add_argument("--default-route", action="store_true", help="full tunnel: all traffic")
    p.add_argument(
        "--kill-switch",
        action="store_true",
        help="with --default-route: no traffic in the clear when the link drops until down",
    )
    p.add_argument("--dns", action="store_true", help="use the server's DNS servers while up")
    p.add_argument(
        "--dns-domain",
        action="append",
        default=[],
        metavar="DOMAIN",
        help="search (or ~routing-only) domain for the server's DNS (repeatable)",
    )
    p.set_defaults(func=cmd_add)

    r = sub.add_parser(
        "remove",
        help="remove a connection and everything add wrote",
        description="Remove connection NAME: its peers file, chap-secrets line, settings and "
        "state. Refused while it is up, unless --force (which takes it down first).",
    )
    r.add_argument("name", metavar="NAME")
    r.add_argument("--force", action="store_true", help="take the connection down first")
    r.set_defaults(func=cmd_remove)

    ls = sub.add_parser("list", help="list the connections", description="List the connections.")
    ls.set_defaults(func=cmd_list)


def read_password(args: argparse.Namespace) -> Secret:
    if args.password_file:
        return read_password_file(args.password_file)
    prompt = f"Password for {args.user} on {args.name}: "
    if sys.stdin.isatty():
        try:
            text = getpass.getpass(prompt)
        except EOFError:
            text = ""
    else:
        text = sys.stdin.readline().rstrip("\r\n")
    if not text:
        raise ConfigError("no password given")
    return Secret(text)


def check_args(args: argparse.Namespace) -> Any:
    """Validate everything before any file is touched; the route and DNS settings."""
    validate_name(args.name)
    check_text("the user name", args.user)
    if not args.user.strip():
        raise ConfigError("--user is empty")
    parse_server(args.server)
    for pin in args.pin_sha256:
        parse_pin(pin)
    if args.ca_cert and not Path(args.ca_cert).is_file():
        raise ConfigError(f"--ca-cert {args.ca_cert}: no such file")
    for opt in args.pppd_options:
        if opt in OWN_OPTIONS:
            raise ConfigError(f"pppd option {opt!r} is set by sstp-helper itself: leave it out")
        check_text("a pppd option", opt)
    # host.connconf checks the routes (CIDR, host bits zero), the domains and --kill-switch.
    return hostapi.connection(
        name=args.name,
        routes=args.route,
        default_route=args.default_route,
        kill_switch=args.kill_switch,
        dns=args.dns,
        dns_domains=args.dns_domain,
    )


def cmd_add(args: argparse.Namespace, paths: Paths) -> int:
    conn = check_args(args)
    require_root(paths, "add")
    password = read_password(args)
    peers = render_peers(
        PeerSettings(
            name=args.name,
            server=args.server,
            user=args.user,
            transport=transport_path(),
            ca_cert=str(Path(args.ca_cert).resolve()) if args.ca_cert else None,
            pins=tuple(args.pin_sha256),
            usepeerdns=args.dns,
            pppd_options=tuple(args.pppd_options),
        )
    )
    line = secrets_line(args.user, args.name, password)
    existing = paths.peers_file(args.name)
    if existing.exists() and not is_ours(existing.read_text(errors="replace")):
        raise ConfigError(f"{existing} exists and was not written by sstp-helper: not replaced")
    write_atomic(existing, peers, 0o644)
    update_secrets(paths.chap_secrets, args.name, line)
    hostapi.save_connection(conn, paths.root)
    scripts = hostapi.scripts_dir(args.name, paths.root)
    scripts.mkdir(mode=0o755, parents=True, exist_ok=True)
    print(f"connection {args.name}: {existing} and its line in {paths.chap_secrets}")
    print(f"route scripts for it go in {scripts}/")
    wants_hooks = args.route or args.default_route or args.dns or args.dns_domain
    if wants_hooks and not hostapi.hooks_installed(paths.root):
        print("its routes and DNS need pppd's hooks: run sstp-helper install-hooks once")
    print(f"start it with: sstp-helper up {args.name}")
    return 0


def cmd_remove(args: argparse.Namespace, paths: Paths) -> int:
    name = validate_name(args.name)
    require_root(paths, "remove")
    peers = paths.peers_file(name)
    if not peers.exists():
        raise ConfigError(f"no connection {name} ({peers} does not exist)")
    if not is_ours(peers.read_text(errors="replace")) and not args.force:
        raise ConfigError(f"{peers} was not written by sstp-helper: not removed (--force does)")
    if state.probe(name, paths).pppd_pid is not None:
        if not args.force:
            raise ConfigError(f"{name} is running: 'sstp-helper down {name}' first (or --force)")
        rc = updown.take_down(name, paths, timeout=30.0)
        if rc != 0:
            return rc
    updown.undo_leftovers(name, paths)
    peers.unlink()
    update_secrets(paths.chap_secrets, name, None)
    hostapi.remove_connection(name, paths.root)
    scripts = hostapi.scripts_dir(name, paths.root)
    shutil.rmtree(hostapi.state_dir(name, paths.root), ignore_errors=True)
    print(f"connection {name} removed")
    # The scripts are the user's: the directories go only if they are empty.
    for d in (scripts, scripts.parent):
        try:
            d.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            print(f"its route scripts stay in {d}/ (not empty)")
            break
    return 0


def connection_names(paths: Paths) -> list[str]:
    """The connections ``add`` wrote: peers files with its header line."""
    try:
        files = sorted(paths.peers_dir.iterdir())
    except (FileNotFoundError, PermissionError):
        return []
    names = []
    for f in files:
        try:
            if f.is_file() and is_ours(f.read_text(errors="replace")):
                names.append(f.name)
        except OSError:
            continue
    return names


def cmd_list(args: argparse.Namespace, paths: Paths) -> int:
    rows: list[tuple[str, str, str, str]] = []
    for name in connection_names(paths):
        text = paths.peers_file(name).read_text(errors="replace")
        st = state.probe(name, paths)
        rows.append(
            (name, st.state.value, peers_server(text) or "-", peers_option(text, "name") or "-")
        )
    if not rows:
        print("no connections (add one with: sstp-helper add NAME --server ... --user ...)")
        return 0
    header = ("NAME", "STATE", "SERVER", "USER")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0
