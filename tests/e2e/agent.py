"""Command server inside the UML guest (run by scripts/uml-init.sh as PID 1's child).

It runs on the guest's Debian /usr/bin/python3 with the standard library only.
The host talks to it through files on the shared filesystem (hostfs), in
RUN_DIR/guest:

- ``jobs/NNNNNN.json``: written by the host (atomically, by rename), read here
  in order. Each holds ``{"op": ..., ...}``.
- ``results/NNNNNN.<kind>.json``: written here (atomically, by rename).
- ``ready.json``: written once the server is ready to take jobs.
- ``agent.log``: one line per job and per exit, with guest times.

Operations:

- ``spawn``: start ``argv`` (in network namespace ``ns``, optional), with
  ``env`` merged over a fixed base environment, stdin from ``stdin_data``, a
  file ``stdin_path`` or /dev/null, stdout and stderr to the given files.
  Result ``started`` (``pid`` or ``error``), and later ``exit``
  (``returncode``, negative for a signal, and ``duration`` in guest seconds).
  In a namespace, the command also gets its own mount namespace with that
  netns' /sys (as with ``ip netns exec``); in ``cli`` also its own /etc/ppp
  and /etc/hosts, bind-mounted from ``cli_etc_ppp`` and ``cli_hosts``.
- ``kill``: send ``signal`` to ``pid`` (or to its process group with
  ``group``). Result ``done``.
- ``ps``: list the guest's user processes. Result ``done`` with ``procs``.
- ``write``: write ``data`` to a guest path (e.g. /etc/ppp on tmpfs).
- ``kill_all``: end every process but PID 1 and this server (SIGTERM, then
  SIGKILL after ``grace`` seconds). Result ``done`` with ``killed`` and ``left``.
- ``shutdown``: ``kill_all``, then exit, after which init powers the guest off.

The server is a child subreaper, so daemons that detach are reaped here too.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "TMPDIR": "/run/tmp",
}
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SLAVE = 0x80000
MNT_DETACH = 2
LIBC = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def enter_netns(ns: str, binds: list[tuple[str, str]]) -> None:
    """What ``ip netns exec NS`` does, plus bind mounts, in the child before exec.

    Done here rather than by exec'ing ip, sh and mount, because every exec
    costs a good fraction of a second on the guest's slow CPU.
    """
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
    _check(LIBC.setns(fd, CLONE_NEWNET), f"setns {ns}")
    os.close(fd)
    # An own mount namespace, a slave of the root one: the binds below and
    # the netns' /sys stay private to this command and its children.
    _check(LIBC.unshare(CLONE_NEWNS), "unshare")
    _check(LIBC.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "make / slave")
    LIBC.umount2(b"/sys", MNT_DETACH)
    _check(LIBC.mount(ns.encode(), b"/sys", b"sysfs", 0, None), "mount /sys")
    for src, dst in binds:
        _check(LIBC.mount(src.encode(), dst.encode(), None, MS_BIND, None), f"bind {dst}")


class Agent:
    """The job loop: one instance per guest boot."""

    def __init__(self, run_dir: str) -> None:
        self.ctl = os.path.join(run_dir, "guest")
        self.jobs = os.path.join(self.ctl, "jobs")
        self.results = os.path.join(self.ctl, "results")
        self.done: set[str] = set()
        # pid -> (job seq, Popen, guest start time)
        self.procs: dict[int, tuple[str, subprocess.Popen[bytes], float]] = {}
        self.last_activity = time.monotonic()
        self.stopping = False

    def log(self, msg: str) -> None:
        print(f"{time.monotonic():.3f} {msg}", flush=True)

    def put(self, seq: str, kind: str, obj: dict[str, Any]) -> None:
        path = os.path.join(self.results, f"{seq}.{kind}.json")
        tmp = os.path.join(self.results, f".{seq}.{kind}.tmp")
        with open(tmp, "w") as f:
            json.dump(obj, f)
        os.rename(tmp, path)

    def run(self) -> None:
        if LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            self.log("prctl(PR_SET_CHILD_SUBREAPER) failed")
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd)
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        os.makedirs(self.results, exist_ok=True)
        tmp = os.path.join(self.ctl, ".ready.tmp")
        with open(tmp, "w") as f:
            json.dump({"pid": os.getpid(), "t": time.monotonic(), "uname": os.uname()[2]}, f)
        os.rename(tmp, os.path.join(self.ctl, "ready.json"))
        self.log("ready")
        while not self.stopping:
            for name in sorted(os.listdir(self.jobs)):
                if name.endswith(".json") and name not in self.done:
                    self.done.add(name)
                    self.last_activity = time.monotonic()
                    self.handle(name[: -len(".json")])
                    if self.stopping:
                        break
            self.reap()
            idle = time.monotonic() - self.last_activity
            # Poll fast while a test is talking to us; a slow poll when idle
            # keeps the one guest CPU for the programs under test.
            select.select([rfd], [], [], 0.02 if idle < 2.0 else 0.1)
            with contextlib.suppress(BlockingIOError):
                os.read(rfd, 512)
        self.log("exit")

    def _on_sigterm(self, _sig: int, _frame: object) -> None:
        self.stopping = True

    def handle(self, seq: str) -> None:
        try:
            with open(os.path.join(self.jobs, seq + ".json")) as f:
                job = json.load(f)
            op = job["op"]
            if op == "spawn":
                self.spawn(seq, job)
            elif op == "kill":
                self.kill(seq, job)
            elif op == "ps":
                self.put(seq, "done", {"procs": list_processes()})
            elif op == "write":
                fd = os.open(job["path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, job["mode"])
                with open(fd, "w") as f:
                    f.write(job["data"])
                os.chmod(job["path"], job["mode"])
                self.put(seq, "done", {"ok": True})
            elif op == "kill_all":
                self.kill_all(seq, float(job.get("grace", 3.0)))
            elif op == "shutdown":
                self.kill_all(seq, float(job.get("grace", 3.0)))
                self.stopping = True
            else:
                self.put(seq, "done", {"ok": False, "error": f"unknown op {op!r}"})
        except Exception as e:  # noqa: BLE001 - report every failure to the host
            self.log(f"job {seq} failed: {e!r}")
            self.put(seq, "done", {"ok": False, "error": repr(e)})
            self.put(seq, "started", {"error": repr(e)})

    def spawn(self, seq: str, job: dict[str, Any]) -> None:
        argv = list(job["argv"])
        ns = job.get("ns")
        binds = []
        if ns == "cli":
            binds = [(job["cli_etc_ppp"], "/etc/ppp"), (job["cli_hosts"], "/etc/hosts")]
        env = dict(BASE_ENV)
        for k, v in (job.get("env") or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        stdin: Any = subprocess.DEVNULL
        if job.get("stdin_path"):
            stdin = open(job["stdin_path"], "rb")
        elif job.get("stdin_data") is not None:
            stdin = subprocess.PIPE
        with open(job["stdout"], "wb") as out, open(job["stderr"], "wb") as err:
            t0 = time.monotonic()
            try:
                p = subprocess.Popen(
                    argv, env=env, cwd=job.get("cwd") or "/", stdin=stdin,
                    stdout=out, stderr=err, start_new_session=True,
                    # The agent has one thread, so preexec_fn is safe here.
                    preexec_fn=(lambda: enter_netns(ns, binds)) if ns else None,  # noqa: PLW1509
                )  # fmt: skip
            finally:
                if stdin not in (subprocess.DEVNULL, subprocess.PIPE):
                    stdin.close()
        if p.stdin is not None:
            # Small secrets only: a pipe holds 64 KiB, so this never blocks.
            with contextlib.suppress(BrokenPipeError):
                p.stdin.write(job["stdin_data"].encode())
            p.stdin.close()
        self.procs[p.pid] = (seq, p, t0)
        self.log(f"job {seq} pid {p.pid} ns {ns}: {argv}")
        self.put(seq, "started", {"pid": p.pid, "t": t0})

    def kill(self, seq: str, job: dict[str, Any]) -> None:
        pid, sig = int(job["pid"]), int(job["signal"])
        try:
            if job.get("group"):
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            self.put(seq, "done", {"ok": False, "error": "no such process"})
            return
        self.log(f"job {seq}: kill {pid} {sig}")
        self.put(seq, "done", {"ok": True})

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            t1 = time.monotonic()
            rc = os.waitstatus_to_exitcode(status)
            entry = self.procs.pop(pid, None)
            if entry is None:
                self.log(f"reaped orphan {pid}: {rc}")
                continue
            seq, p, t0 = entry
            # Tell Popen, so that it never waits for (or warns about) it.
            p.returncode = rc
            self.log(f"job {seq} pid {pid} exited {rc} after {t1 - t0:.3f}s")
            self.put(seq, "exit", {"returncode": rc, "t": t1, "duration": t1 - t0})
            self.last_activity = t1

    def kill_all(self, seq: str, grace: float) -> None:
        me = os.getpid()
        killed = [p for p in list_processes() if p["pid"] not in (1, me)]
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
            victims = [p["pid"] for p in list_processes() if p["pid"] not in (1, me)]
            if victims:
                self.log(f"job {seq}: signal {sig} to {victims}")
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self.reap()
                if not [p for p in list_processes() if p["pid"] not in (1, me)]:
                    break
                time.sleep(0.05)
        self.reap()
        left = [p for p in list_processes() if p["pid"] not in (1, me)]
        self.put(seq, "done", {"ok": not left, "killed": killed, "left": left})


def list_processes() -> list[dict[str, Any]]:
    """The guest's user processes (kernel threads have no cmdline)."""
    procs = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if not cmdline:
            continue
        # comm may hold spaces and parentheses: split after the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        procs.append(
            {
                "pid": int(name),
                "ppid": int(fields[1]),
                "pgid": int(fields[2]),
                "state": fields[0],
                "argv": [a.decode(errors="replace") for a in cmdline.split(b"\0")[:-1]],
            }
        )
    return procs


if __name__ == "__main__":
    Agent(sys.argv[1]).run()
