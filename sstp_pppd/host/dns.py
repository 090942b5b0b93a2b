"""DNS for the tunnel's lifetime: the executor of plan.DnsOp, with three backends.

The backend is chosen in one place, :func:`choose_backend`:

1. **systemd-resolved** when it runs (its varlink socket exists and ``resolvectl`` is
   there): per-link servers and domains on ``pppN`` (``resolvectl dns``/``domain``, and
   ``default-route`` for a full tunnel); undone by ``resolvectl revert pppN``.
2. **resolvconf/openresolv** when installed: ``resolvconf -a pppN.sstp-pppd`` with the
   servers and search domains on stdin; undone by ``resolvconf -d pppN.sstp-pppd``.
3. else **/etc/resolv.conf rewritten** (the symlink followed, the file replaced atomically):
   our servers replace the old ones and our search domains come first; the original is kept
   in the record and restored at ``down`` if the file is still what we wrote (if someone
   rewrote it since, theirs is newer than our original, and is left alone).

Routing-only domains (``~corp.example``) exist only for systemd-resolved; the other two
backends log that they are ignored.

**Debian's /etc/ppp/ip-up.d/0000usepeerdns.** With ``usepeerdns`` and neither resolvconf
nor systemd-resolved, that script (it runs before ours: run-parts sorts by name) merges
/etc/ppp/resolv.conf into /etc/resolv.conf and keeps the original as
``resolv.conf.pppd-backup.pppN``, which its ip-down twin puts back. It skips only
NetworkManager's ipparams, and pretending to be NetworkManager would be a lie to every
other script, so instead we let it do the servers and cooperate: when its backup exists,
the record notes it (so that after a ``kill -9``, when no ip-down runs, ``undo`` puts the
backup back as the ip-down script would have), and we only add our search domains on top.
At ip-down its script restores the original first, our undo then finds the file changed
and leaves it, so the two never fight. With resolvconf or resolved it exits at once.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .atomic import write_atomic
from .paths import Paths
from .plan import DnsOp

if TYPE_CHECKING:
    from .record import Record, Undoer

log = logging.getLogger(__name__)

RESOLVED_SOCKET = "/run/systemd/resolve/io.systemd.Resolve"
DEBIAN_USEPEERDNS = "/etc/ppp/ip-up.d/0000usepeerdns"
RESOLVCONF_SUFFIX = ".sstp-pppd"
COMMAND_TIMEOUT = 10.0


def choose_backend(paths: Paths) -> str:
    """``resolved``, ``resolvconf`` or ``file``: the one place the backend is decided."""
    if paths.resolv_conf != Paths().resolv_conf:
        return "file"  # a resolv.conf elsewhere (tests, a chroot): only the file backend
    if os.path.exists(RESOLVED_SOCKET) and shutil.which("resolvectl"):
        return "resolved"
    if shutil.which("resolvconf") or os.access("/sbin/resolvconf", os.X_OK):
        return "resolvconf"
    return "file"


def _run(argv: list[str], stdin: str | None = None) -> None:
    try:
        res = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OSError(f"{argv[0]}: {exc}") from exc
    if res.returncode != 0:
        msg = (res.stderr or res.stdout).strip().splitlines()
        raise OSError(f"{' '.join(argv[:3])}: {msg[-1] if msg else f'exit {res.returncode}'}")


def apply_dns(
    record: Record, op: DnsOp, paths: Paths, env: Mapping[str, str], *, full_tunnel: bool
) -> str:
    """Apply ``op`` with the chosen backend, recorded first; the backend's name."""
    backend = choose_backend(paths)
    if backend == "resolved":
        record.add("resolved", op.scope, {"ifname": op.ifname})
        if op.servers:
            _run(["resolvectl", "dns", op.ifname, *op.servers])
        domains = [*op.search, *(f"~{d}" for d in op.routing)]
        if full_tunnel:
            domains.append("~.")
        if domains:
            _run(["resolvectl", "domain", op.ifname, *domains])
        _run(["resolvectl", "default-route", op.ifname, "yes" if full_tunnel else "no"])
    elif backend == "resolvconf":
        key = op.ifname + RESOLVCONF_SUFFIX
        record.add("resolvconf", op.scope, {"key": key, "ifname": op.ifname})
        _warn_routing(op)
        _run(["resolvconf", "-a", key], stdin=_lines(op.servers, op.search))
    else:
        _warn_routing(op)
        _apply_file(record, op, paths, env)
    log.info("DNS for %s through %s: %s", op.ifname, backend, " ".join(op.servers) or "-")
    return backend


def _warn_routing(op: DnsOp) -> None:
    if op.routing:
        log.warning(
            "routing-only domains (%s) need systemd-resolved: ignored",
            " ".join("~" + d for d in op.routing),
        )


def _lines(servers: tuple[str, ...], search: tuple[str, ...]) -> str:
    out = [f"nameserver {s}" for s in servers]
    if search:
        out.append("search " + " ".join(search))
    return "".join(line + "\n" for line in out)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except FileNotFoundError:
        return None


def rewrite(original: str, servers: tuple[str, ...], search: tuple[str, ...], note: str) -> str:
    """The new resolv.conf: our servers instead of the old ones, our search domains first."""
    kept: list[str] = []
    old_search: list[str] = []
    for line in original.splitlines():
        words = line.split()
        if words and words[0] in ("search", "domain"):
            old_search += words[1:]
        elif not (servers and words and words[0] == "nameserver"):
            kept.append(line)
    domains = list(dict.fromkeys([*search, *old_search]))
    head = [f"# {note}"] + [f"nameserver {s}" for s in servers]
    if domains:
        head.append("search " + " ".join(domains))
    return "\n".join(head + kept) + "\n"


def _apply_file(record: Record, op: DnsOp, paths: Paths, env: Mapping[str, str]) -> None:
    real = os.path.realpath(paths.resolv_conf)
    servers = op.servers
    backup = f"{real}.pppd-backup.{op.ifname}"
    if env.get("USEPEERDNS") and os.access(DEBIAN_USEPEERDNS, os.X_OK) and os.path.exists(backup):
        # Debian's script has put the servers in already (see the module docstring).
        record.add(
            "debian-usepeerdns", op.scope, {"path": real, "backup": backup, "ifname": op.ifname}
        )
        servers = ()
        if not op.search:
            return
    original = _read(real)
    ours = rewrite(
        original or "",
        servers,
        op.search,
        f"sstp-pppd {record.name}: DNS of {op.ifname}; the previous file comes back at down",
    )
    record.add(
        "resolv.conf",
        op.scope,
        {"path": real, "original": original, "ours": ours, "ifname": op.ifname},
    )
    write_atomic(real, ours, mode=0o644)


def _undo_file(data: dict[str, Any]) -> None:
    path, original, ours = str(data["path"]), data.get("original"), str(data["ours"])
    current = _read(path)
    if current is not None and current != ours:
        log.info("%s changed since we wrote it: left as it is", path)
        return
    if original is None:
        if current is not None:
            os.unlink(path)
        return
    write_atomic(path, str(original), mode=0o644)
    log.info("%s restored", path)


def _undo_debian(data: dict[str, Any]) -> None:
    backup, path = str(data["backup"]), str(data["path"])
    if os.path.exists(backup):
        os.rename(backup, path)
        log.info("%s restored from %s", path, backup)


def _undo_resolved(data: dict[str, Any]) -> None:
    ifname = str(data["ifname"])
    if not os.path.exists(f"/sys/class/net/{ifname}"):
        return  # the link is gone, and resolved forgets its settings with it
    _run(["resolvectl", "revert", ifname])


def _undo_resolvconf(data: dict[str, Any]) -> None:
    _run(["resolvconf", "-d", str(data["key"])])


def undoers(paths: Paths) -> dict[str, Undoer]:
    del paths  # every entry carries its own paths
    return {
        "resolv.conf": _undo_file,
        "debian-usepeerdns": _undo_debian,
        "resolved": _undo_resolved,
        "resolvconf": _undo_resolvconf,
    }
