"""``sstp-helper up`` and ``down``: start pppd for a connection, follow it, stop it.

``up`` runs ``pppd call NAME nodetach`` as its own child in a new session, with no
terminal and standard I/O on /dev/null: pppd is then detached from the user's terminal as
with pppd's own fork, but its exit status stays ours while we follow it, and that status
is the one certain sign of some failures (19: the server refused the password). pppd's own
``updetach`` would also report it, but after its fork the transport is no longer pppd's
child. The stages come from the status file (the transport and the hooks write it) and
from the interface (IFF_UP once IPCP is up); see :mod:`.state`.

pppd is setuid root and group dip on Debian, so members of dip can run ``up`` and ``down``
as they can run ``pon``/``poff``: both only start pppd and signal it by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import psutil

from ..errors import ConfigError, ExitCode, SstpPppdError
from ..transport.pppd import describe_exit, find_pppd
from . import hostapi
from .paths import NotRoot, Paths, validate_name
from .state import Probe, State, link_addresses, probe

#: The stages ``up`` shows, in order, and what each is called in the status file's
#: ``stage`` (host.status; "ppp" is authentication, "binding" the server's acceptance).
STAGES: tuple[tuple[str, str], ...] = (
    ("tcp", "TCP"),
    ("tls", "TLS"),
    ("sstp", "SSTP"),
    ("ppp", "PPP authentication"),
    ("binding", "binding accepted"),
    ("addresses", "addresses"),
    ("routes", "routes"),
    ("dns", "DNS"),
)
_STAGE_INDEX = {key: i for i, (key, _) in enumerate(STAGES)} | {"auth": 3}
#: The exit code of ``up`` when time runs out in a stage (man sstp-helper, EXIT STATUS).
TIMEOUT_CODES = {"tcp": ExitCode.NETWORK, "tls": ExitCode.TLS, "sstp": ExitCode.SSTP}
POLL = 0.1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = sub.add_parser(
        "up",
        help="start a connection and wait until it is up",
        description="Start connection NAME (pppd call NAME) and follow it until the link "
        "is up with its routes and DNS applied. Exit 0 when up (or already up), else the "
        "transport's exit code and its reason.",
    )
    up.add_argument("name", metavar="NAME")
    up.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="give up after S seconds (60)"
    )
    up.set_defaults(func=cmd_up)
    down = sub.add_parser(
        "down",
        help="disconnect gracefully and undo the routes and DNS",
        description="Stop connection NAME: SIGTERM to its pppd (which ends the SSTP call), "
        "wait, then undo anything its hooks left. Exit 0 also when it was not up.",
    )
    down.add_argument("name", metavar="NAME")
    down.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="kill pppd after S seconds (30)"
    )
    down.set_defaults(func=cmd_down)


class Progress:
    """One live line on a terminal (rewritten with \\r), plain lines elsewhere."""

    def __init__(self, name: str, stream: TextIO) -> None:
        self.name = name
        self.stream = stream
        self.tty = stream.isatty()
        self.last = ""

    def show(self, text: str) -> None:
        if text == self.last:
            return
        self.last = text
        if self.tty:
            self.stream.write(f"\r\x1b[K{self.name}: {text}")
        else:
            self.stream.write(f"{self.name}: {text}\n")
        self.stream.flush()

    def end(self, text: str) -> None:
        if self.tty:
            self.stream.write(f"\r\x1b[K{self.name}: {text}\n")
            self.stream.flush()
        else:
            self.show(text)


class Failure(SstpPppdError):
    """``up`` or ``down`` failed: the exit code (the transport's, when it told) and why."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        known = {int(c) for c in ExitCode}
        self.exit_code = ExitCode(code) if code in known else ExitCode.INTERNAL


def stage_text(stage: str | None) -> str:
    if stage in _STAGE_INDEX:
        i = _STAGE_INDEX[stage]
        return f"{STAGES[i][1]} ({i + 1}/{len(STAGES)})"
    return "starting pppd"


def pppd_failure(status: int | None, p: Probe, started_at: float) -> Failure:
    """Why the pppd we started ended: the transport's own error when it wrote one for this
    run (its exit code when it gave one), else what pppd's exit status says."""
    error = p.last_error if p.last_error and _fresh(p.last_error, started_at) else None
    reason = str(error["reason"]) if error and error.get("reason") else None
    if error and isinstance(error.get("exit_code"), int):
        return Failure(int(error["exit_code"]), reason or "failed")
    if status == 19:
        return Failure(
            ExitCode.AUTH, reason or f"PPP authentication failed ({describe_exit(status)})"
        )
    if status == 2:
        return Failure(ExitCode.USAGE, f"{describe_exit(status)}: check /etc/ppp/peers/{p.name}")
    return Failure(
        ExitCode.PPPD,
        reason or f"{describe_exit(status)} before the link was up (the transport logs to syslog)",
    )


def _fresh(error: dict[str, Any], started_at: float) -> bool:
    t = error.get("time")
    return not isinstance(t, int | float) or t >= started_at - 1.0


def settings(name: str, paths: Paths) -> Any:
    """The connection's route and DNS settings (host.connconf), None without any."""
    try:
        return hostapi.load_connection(name, paths.root)
    except hostapi.MissingPart:
        return None


def wants_hooks(conf: Any) -> bool:
    """Whether these settings have routes or DNS that only the hooks can apply."""
    if conf is None:
        return False
    return bool(
        getattr(conf, "routes", ())
        or getattr(conf, "default_route", False)
        or getattr(conf, "dns", False)
        or getattr(conf, "dns_domains", ())
    )


def hooks_installed(paths: Paths) -> bool:
    try:
        return hostapi.hooks_installed(paths.root)
    except hostapi.MissingPart:
        return False


def cmd_up(args: argparse.Namespace, paths: Paths) -> int:
    name = validate_name(args.name)
    if args.timeout <= 0:
        raise ConfigError("--timeout must be positive")
    if not paths.peers_file(name).exists():
        raise ConfigError(f"no connection {name}: add it first (sstp-helper add {name} ...)")
    progress = Progress(name, sys.stderr)
    conf = settings(name, paths)
    installed = hooks_installed(paths)
    if wants_hooks(conf) and not installed:
        raise ConfigError(
            f"{name} has routes or DNS settings but pppd's hooks are not installed: "
            "run sstp-helper install-hooks"
        )
    # The hooks act (and report "up") only for a connection with a settings file.
    hooks = installed and conf is not None
    current = probe(name, paths)
    if current.state is State.UP and (current.configured or not hooks):
        progress.end(f"already up ({describe_link(current, paths)})")
        return 0
    pppd: subprocess.Popen[bytes] | None = None
    if current.pppd_pid is None:
        # What a killed run left is the transport's to undo when it starts (all but a
        # kill switch, which must hold until down): only pppd's stale pid file is ours.
        remove_stale_pid_file(name, paths)
        pppd = start_pppd(name)
    try:
        return follow(
            name=name, paths=paths, pppd=pppd, timeout=args.timeout, progress=progress, hooks=hooks
        )
    except Failure as exc:
        progress.end(f"failed: {exc.reason}")
        return exc.code


def start_pppd(name: str) -> subprocess.Popen[bytes]:
    pppd = find_pppd(None)
    try:
        return subprocess.Popen(
            [pppd, "call", name, "nodetach"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise Failure(ExitCode.PPPD, f"cannot start {pppd}: {exc.strerror or exc}") from exc


def describe_link(p: Probe, paths: Paths) -> str:
    local, peer = link_addresses(p, paths)
    text = p.interface or "?"
    if local:
        text += f" {local}" + (f" peer {peer}" if peer else "")
    return text


def follow(
    *,
    name: str,
    paths: Paths,
    pppd: subprocess.Popen[bytes] | None,
    timeout: float,
    progress: Progress,
    hooks: bool,
) -> int:
    """Follow the connection until it is up, fails, or ``timeout`` runs out.

    The pppd we started is stopped on every way out but success, so a failed ``up``
    leaves nothing running; one that was already running (systemd's, another ``up``'s)
    is left alone.
    """
    started_at = time.time()
    grace = min(5.0, timeout / 4)
    deadline = time.monotonic() + timeout - grace
    stage: str | None = None
    # pppd's descendants (its pty command) as last seen: pppd may be gone and reaped
    # before them, and then only these still name them.
    below: list[psutil.Process] = []
    restore = _interrupt_on_term()
    try:
        while True:
            if pppd is not None:
                below = descendants(pppd.pid) or below
            p = probe(name, paths, pid=pppd.pid if pppd else None)
            status_stage = p.status.get("stage")
            if isinstance(status_stage, str) and status_stage in _STAGE_INDEX:
                stage = status_stage
            if pppd is not None and (rc := pppd.poll()) is not None:
                raise pppd_failure(rc, p, started_at)
            if pppd is None and p.pppd_pid is None:
                raise pppd_failure(None, p, started_at)
            if p.status.get("state") == "down" and p.last_error:
                # The transport has ended with its error: pppd is about to follow, and its
                # exit status (19: the password) is the code when the error has none.
                rc = None
                if pppd is not None and p.last_error.get("exit_code") is None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        rc = pppd.wait(max(0.1, min(10.0, deadline - time.monotonic())))
                raise pppd_failure(rc, p, started_at)
            if p.state is State.UP and (p.configured or not hooks):
                progress.end(f"up ({describe_link(p, paths)})")
                return 0
            if p.state is State.UP:
                stage = max(stage or "addresses", "addresses", key=lambda s: _STAGE_INDEX[s])
            progress.show(stage_text(stage))
            if time.monotonic() > deadline:
                code = TIMEOUT_CODES.get(stage or "tcp", ExitCode.PPPD)
                raise Failure(code, f"not up after {timeout:g} s (waiting for {stage_text(stage)})")
            time.sleep(POLL)
    except (Failure, KeyboardInterrupt) as exc:
        if pppd is not None:
            stop_tree(pppd.pid, grace, reap=pppd.wait, also=below)
        if isinstance(exc, KeyboardInterrupt):
            raise Failure(ExitCode.INTERRUPTED, "interrupted") from None
        raise
    finally:
        restore()


def _interrupt_on_term() -> Callable[[], None]:
    """SIGTERM and SIGHUP end ``up`` like Ctrl-C does: the pppd it started is stopped."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore


def wait_gone(procs: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until ``procs`` have ended (a zombie has); the ones still running.

    By polling: psutil.wait_procs waits through pidfd_open, which fails with EINVAL on
    some kernels (UML 6.1) for processes that are not our children.
    """
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in procs if _running(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def stop_tree(
    pid: int,
    timeout: float,
    reap: Callable[[], object] | None = None,
    also: Sequence[psutil.Process] = (),
) -> bool:
    """SIGTERM pppd ``pid`` (it ends the SSTP call and its pty command), wait ``timeout``,
    then SIGKILL it and its descendants, found before the signal, and ``also`` (descendants
    seen earlier). True if all ended in time."""
    procs = [p for p in also if p.is_running()]
    try:
        top = psutil.Process(pid)
        procs = [top, *top.children(recursive=True), *procs]
        top.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        # pppd is gone already: what it left gets the SIGTERM it would have sent.
        for p in procs:
            try:
                p.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
    except psutil.AccessDenied as exc:
        raise NotRoot(f"not allowed to stop pppd (PID {pid}): run as root") from exc
    alive = wait_gone(procs, timeout)
    for proc in alive:
        try:
            proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    wait_gone(alive, 5.0)
    if reap is not None:
        reap()
    return not alive


def take_down(name: str, paths: Paths, timeout: float) -> int:
    """Stop the connection's pppd gracefully; SIGKILL after ``timeout``. Always 0."""
    p = probe(name, paths)
    if p.pppd_pid is None:
        return 0
    progress = Progress(name, sys.stderr)
    progress.show("disconnecting")
    if not stop_tree(p.pppd_pid, timeout):
        progress.show(f"pppd did not end within {timeout:g} s: killed")
    return 0


def remove_stale_pid_file(name: str, paths: Paths) -> None:
    """pppd's pid file, if a kill -9 left it behind (its PID is no running pppd)."""
    pid_file = paths.pid_file(name)
    if (
        pid_file.exists()
        and probe(name, paths).pppd_pid is None
        and os.access(pid_file.parent, os.W_OK)
    ):
        pid_file.unlink(missing_ok=True)


def undo_leftovers(name: str, paths: Paths, *, keep_kill_switch: bool = False) -> None:
    """Undo what a run that could not clean up (kill -9) left: its undo record (through
    host, which also tidies the state directory) and pppd's stale pid file."""
    remove_stale_pid_file(name, paths)
    try:
        pending = hostapi.undo_pending(name, paths.root)
    except hostapi.MissingPart:
        return
    if not pending:
        return
    if paths.is_real_root and os.geteuid() != 0:
        raise NotRoot(
            f"{name} left routes or DNS settings behind (a killed run): "
            f"run 'sstp-helper down {name}' as root to undo them"
        )
    if hostapi.undo(name, paths.root, keep_kill_switch=keep_kill_switch) != 0:
        raise Failure(ExitCode.INTERNAL, f"some changes of {name} could not be undone (see above)")


def cmd_down(args: argparse.Namespace, paths: Paths) -> int:
    name = validate_name(args.name)
    if args.timeout <= 0:
        raise ConfigError("--timeout must be positive")
    was = probe(name, paths).pppd_pid is not None
    take_down(name, paths, args.timeout)
    undo_leftovers(name, paths)
    Progress(name, sys.stderr).end("down" if was else "not up")
    return 0


def cmd_cleanup(args: argparse.Namespace, paths: Paths) -> int:
    """The unit's ExecStopPost: pppd has ended; undo what its hooks could not.

    systemd sets ``$SERVICE_RESULT``: "success" for a stop that was asked for, anything
    else when pppd failed and a restart may follow. Then a kill switch stays, as it stays
    until ``down`` outside systemd: traffic must not go out in the clear between restarts.
    """
    name = validate_name(args.name)
    if probe(name, paths).pppd_pid is None:
        result = os.environ.get("SERVICE_RESULT")
        undo_leftovers(name, paths, keep_kill_switch=result not in (None, "success"))
    return 0
