"""What a connection is doing now, from the files pppd, the transport and the hooks keep.

- pppd's pid file (``linkname NAME``): /run/ppp-NAME.pid, the PID and, once the unit
  exists, the interface name. pppd removes it when it ends; a kill -9 leaves it behind,
  so a PID counts only if that process is alive and is a pppd.
- the status file /run/sstp-pppd/NAME/status.json (host.status): the state and stage
  reached, the addresses, routes and DNS applied and the last error. It describes the
  running pppd only if it changed after that pppd started; an older one still tells the
  last error.
- /sys/class/net/IFNAME: whether pppd has brought the interface up (IFF_UP is set once
  IPCP is up) and its byte counters.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import socket
import time
from typing import Any

import psutil

from . import hostapi
from .paths import Paths

IFF_UP = 0x1


@enum.unique
class State(enum.Enum):
    UP = "up"
    CONNECTING = "connecting"
    DOWN = "down"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """One look at a connection."""

    name: str
    state: State
    pppd_pid: int | None
    interface: str | None
    #: The status file if it describes the running pppd, else {}.
    status: dict[str, Any]
    #: The status file, whichever run wrote it.
    raw_status: dict[str, Any]
    #: The last error any run recorded, or None.
    last_error: dict[str, Any] | None
    #: IFF_UP on the interface: pppd has finished IPCP.
    link_up: bool
    #: The hooks reported that routes and DNS are applied (stage "up").
    configured: bool
    #: When pppd started (seconds since the epoch), for the uptime without hooks.
    pppd_started: float | None


def read_pid_file(paths: Paths, name: str) -> tuple[int | None, str | None]:
    try:
        lines = paths.pid_file(name).read_text().split()
    except OSError:
        return None, None
    try:
        pid = int(lines[0]) if lines else None
    except ValueError:
        pid = None
    return pid, (lines[1] if len(lines) > 1 else None)


def live_pppd(pid: int | None) -> tuple[int | None, float | None]:
    """``pid`` if it is a running pppd (not a zombie, not a reused PID), and its start time."""
    if pid is None or pid <= 0:
        return None, None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None, None
        argv0 = (proc.cmdline() or [proc.name()])[0]
        if not argv0.rsplit("/", 1)[-1].startswith("pppd"):
            return None, None
        return pid, started_at(proc)
    except psutil.NoSuchProcess:
        return None, None
    except psutil.AccessDenied:
        return pid, None


def started_at(proc: psutil.Process) -> float:
    """When ``proc`` started, in seconds since the epoch, to the clock tick.

    Not psutil's ``create_time()``: it adds the start to the boot time of /proc/stat,
    which is whole seconds, so it can be up to a second early; that is enough to take a
    status file left by a killed run for one written after a new pppd started.
    """
    try:
        with open(f"/proc/{proc.pid}/stat") as f:
            # Field 22, starttime: clock ticks after boot (after the ")" of the name).
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return float(proc.create_time())
    ago = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    return time.time() - ago


def below(child: object, parent: int) -> bool:
    """Whether process ``child`` runs below process ``parent``."""
    if not isinstance(child, int) or child <= 0:
        return False
    try:
        return any(p.pid == parent for p in psutil.Process(child).parents())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def iface_flags(paths: Paths, ifname: str) -> int | None:
    try:
        return int((paths.net_dir(ifname) / "flags").read_text().strip(), 16)
    except (OSError, ValueError):
        return None


def iface_counter(paths: Paths, ifname: str | None, counter: str) -> int | None:
    if not ifname:
        return None
    try:
        return int((paths.net_dir(ifname) / "statistics" / counter).read_text().strip())
    except (OSError, ValueError):
        return None


def last_error(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The last error of any run: its one-line reason, exit code and time, as known."""
    reason = raw.get("last_error")
    if not isinstance(reason, str) or not reason:
        return None
    code = raw.get("last_exit_code")
    since = raw.get("since")
    return {
        "reason": reason,
        "exit_code": code if isinstance(code, int) else None,
        "time": since if raw.get("state") == "down" and isinstance(since, int | float) else None,
    }


def probe(name: str, paths: Paths, pid: int | None = None) -> Probe:
    """Look at connection ``name``; ``pid``: the pppd we started (its pid file may be late)."""
    raw_pid, ifname = read_pid_file(paths, name)
    if pid is not None and raw_pid != pid:
        raw_pid, ifname = pid, None
    pid, started = live_pppd(raw_pid)
    raw = hostapi.read_status(name, paths.root)
    # The status file outlives its run: it describes the running pppd only if its state
    # changed after that pppd started (a kill -9 leaves "up" behind), or if the transport
    # that writes it runs below that pppd.
    since = raw.get("since")
    fresh = pid is not None and (
        started is None
        or (isinstance(since, int | float) and since >= started - 1.0)
        or below(raw.get("pid"), pid)
    )
    current = raw if fresh else {}
    if pid is None:
        ifname = None
    elif not ifname and isinstance(current.get("interface"), str):
        ifname = current["interface"]
    flags = iface_flags(paths, ifname) if ifname else None
    link_up = flags is not None and bool(flags & IFF_UP)
    if pid is None:
        st = State.DOWN
    elif link_up:
        st = State.UP
    else:
        st = State.CONNECTING
    return Probe(
        name=name,
        state=st,
        pppd_pid=pid,
        interface=ifname,
        status=current,
        raw_status=raw,
        last_error=last_error(raw),
        link_up=link_up,
        configured=link_up and current.get("state") == "up",
        pppd_started=started,
    )


def addresses(ifname: str) -> tuple[str | None, str | None]:
    """The interface's IPv4 local and peer address, asked from the kernel."""
    try:
        # Imported here: pyroute2 takes 0.2 s to import, and only this needs it.
        from pyroute2 import IPRoute  # noqa: PLC0415

        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname=ifname)
            if not index:
                return None, None
            for msg in ipr.get_addr(index=index[0], family=socket.AF_INET):
                local, peer = msg.get_attr("IFA_LOCAL"), msg.get_attr("IFA_ADDRESS")
                return local, (peer if peer != local else None)
    except Exception:  # noqa: BLE001 - the addresses are extra information only
        return None, None
    return None, None


def link_addresses(p: Probe, paths: Paths) -> tuple[str | None, str | None]:
    """Local and peer address: as the hooks reported them, else asked from the kernel."""
    local, peer = p.status.get("local"), p.status.get("peer")
    if isinstance(local, str) and local:
        return local, peer if isinstance(peer, str) and peer else None
    if p.state is State.UP and p.interface and paths.is_real_root:
        return addresses(p.interface)
    return None, None


def uptime(p: Probe, now: float | None = None) -> float | None:
    if p.state is not State.UP:
        return None
    since = p.status.get("since") if p.status.get("state") == "up" else None
    if not isinstance(since, int | float):
        since = p.pppd_started
    if since is None:
        return None
    return max(0.0, (time.time() if now is None else now) - since)
