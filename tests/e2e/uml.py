"""Boot a User-Mode Linux guest once and run commands in it from the host.

The guest's root is this machine's filesystem (hostfs); its PID 1 is
``scripts/uml-init.sh``, which builds the fixed topology (network namespaces
``srv`` 192.0.2.1 / 2001:db8::1 and ``cli`` 192.0.2.2 / 2001:db8::2 joined by
a veth pair, PPP modules, a private tmpfs /etc/ppp for the server) and then
runs the command server ``tests/e2e/agent.py``. The host sends it jobs as
files in ``RUN_DIR/guest/jobs`` and reads the results back; programs' stdout
and stderr go straight to files in ``RUN_DIR/procs``.

Typical use::

    with Guest(run_dir) as guest:              # boots (about 2-3 s)
        r = guest.run(["ip", "-br", "addr"], ns="cli", timeout=10)
        p = guest.spawn(["my-client", "--flag"], ns="cli", stdin_data="secret\\n",
                        env={"X": "1"}, name="client")
        ...
        p.kill()                                 # SIGTERM, by PID
        res = p.wait(timeout=10)                 # Result: returncode, stderr, duration
    # leaving the block ends every guest process, powers off, reaps linux.uml

Commands in ``cli`` see the client's own /etc/ppp (``RUN_DIR/cli/etc-ppp``:
write ``peers/NAME``, ``chap-secrets``, ``options`` there from the host) and
/etc/hosts (``RUN_DIR/cli/hosts``), bind-mounted in their own mount namespace.
Files shared with the guest: while a guest process holds one open, the
guest keeps seeing its old content, whatever the host does to it; write new
content under a new name then. Otherwise host changes are seen at once.
Commands in ``srv`` or in the root namespace see the guest's tmpfs /etc/ppp
(change it with :meth:`Guest.write_file`).

Timing: ``Result.duration`` is measured in the guest, from spawn to reaping.
The guest has one slow CPU; compare throughput only within one boot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import xstate

REPO = Path(__file__).resolve().parents[2]
INIT = REPO / "scripts" / "uml-init.sh"
LINUX_UML = "linux.uml"
NAMESPACES = (None, "srv", "cli")
# insmod order matters (dependencies first). PPP over a pty needs these;
# ipv6 is a module in Debian's UML kernel.
CORE_MODULES = (
    "lib/crc-ccitt",
    "drivers/net/slip/slhc",
    "drivers/net/ppp/ppp_generic",
    "drivers/net/ppp/ppp_async",
    "drivers/net/veth",
    "net/ipv6/ipv6",
    "net/sched/sch_netem",  # Lab.link_delay
)
# Append these for MPPE, synchronous PPP or tun tests.
EXTRA_MODULES = (
    "drivers/net/ppp/ppp_synctty",
    "lib/crypto/libarc4",
    "drivers/net/ppp/ppp_mppe",
    "drivers/net/tun",
)


class GuestError(Exception):
    """The guest failed to boot, died, or did not answer in time."""


class _Output:
    """A guest command's stdout and stderr, read from their files on the host."""

    __slots__ = ()
    stdout_path: Path
    stderr_path: Path

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Result(_Output):
    """A finished guest command."""

    argv: tuple[str, ...]
    pid: int
    returncode: int  # negative: killed by that signal
    duration: float  # guest seconds from spawn to exit
    stdout_path: Path
    stderr_path: Path

    def check(self) -> Result:
        """Raise GuestError with the output tails unless the exit code is 0."""
        if self.returncode != 0:
            raise GuestError(
                f"{list(self.argv)} exited {self.returncode}\n"
                f"--- stdout:\n{tail(self.stdout)}\n--- stderr:\n{tail(self.stderr)}"
            )
        return self


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GuestProc:
    """One entry of :meth:`Guest.processes`."""

    pid: int
    ppid: int
    pgid: int
    state: str
    argv: tuple[str, ...]


class GuestProcess(_Output):
    """A command started with :meth:`Guest.spawn`; its ``pid`` is the program's own."""

    def __init__(self, guest: Guest, seq: str, argv: Sequence[str], out: Path, err: Path):
        self.guest = guest
        self.seq = seq
        self.argv = tuple(argv)
        self.stdout_path = out
        self.stderr_path = err
        started = guest._result(seq, "started", guest.answer_timeout)
        if "error" in started:
            raise GuestError(f"cannot start {list(argv)}: {started['error']}")
        self.pid: int = started["pid"]
        self.result: Result | None = None

    def poll(self) -> Result | None:
        """The result if the command has exited, else None."""
        if self.result is None:
            path = self.guest.results / f"{self.seq}.exit.json"
            if path.exists():
                self.result = self._make(json.loads(path.read_text()))
        return self.result

    def wait(self, timeout: float) -> Result:
        """Wait for the exit; raise TimeoutError (the process keeps running)."""
        if self.result is None:
            try:
                obj = self.guest._result(self.seq, "exit", timeout)
            except GuestError as e:
                raise TimeoutError(f"{list(self.argv)} still running after {timeout}s") from e
            self.result = self._make(obj)
        return self.result

    def kill(self, sig: int = signal.SIGTERM) -> bool:
        """Send ``sig`` to this PID; False if it had already exited."""
        return self.poll() is None and self.guest.kill(self.pid, sig)

    def stop(self, timeout: float = 10.0) -> Result:
        """SIGTERM, then SIGKILL if it has not exited after ``timeout``."""
        self.kill(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except TimeoutError:
            self.kill(signal.SIGKILL)
            return self.wait(5.0)

    def _make(self, obj: dict[str, Any]) -> Result:
        return Result(
            argv=self.argv,
            pid=self.pid,
            returncode=obj["returncode"],
            duration=obj["duration"],
            stdout_path=self.stdout_path,
            stderr_path=self.stderr_path,
        )


class Guest:
    """A running UML guest with the e2e topology; see the module docstring.

    ``run_dir`` must exist; everything of this boot goes below it. The guest
    is booted by :meth:`start` (or ``with``) and always powered off by
    :meth:`close`; linux.uml is killed by its process group id if it does not
    stop in time.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        mem: str = "1G",
        boot_timeout: float = 60.0,
        answer_timeout: float = 20.0,
        modules: Sequence[str] = CORE_MODULES,
    ) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.ctl = self.run_dir / "guest"
        self.jobs = self.ctl / "jobs"
        self.results = self.ctl / "results"
        self.procs_dir = self.run_dir / "procs"
        self.cli_etc_ppp = self.run_dir / "cli" / "etc-ppp"
        self.cli_hosts = self.run_dir / "cli" / "hosts"
        self.console_log = self.run_dir / "console.log"
        self.mem = mem
        self.modules = tuple(modules)
        self.boot_timeout = boot_timeout
        self.answer_timeout = answer_timeout
        self.boot_seconds: float | None = None
        self._uml: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._seq = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Boot the guest and wait until its command server answers."""
        uml = shutil.which(LINUX_UML)
        if uml is None:
            raise GuestError("linux.uml not found: run scripts/setup-e2e.sh")
        for d in (self.jobs, self.results, self.procs_dir, self.cli_etc_ppp / "peers"):
            d.mkdir(parents=True, exist_ok=True)
        if not (self.cli_etc_ppp / "options").exists():
            # pppd reads /etc/ppp/options first; Debian's says "auth", which a
            # client must not demand of a server.
            (self.cli_etc_ppp / "options").write_text("")
        if not self.cli_hosts.exists():
            self.cli_hosts.write_text("127.0.0.1 localhost\n::1 localhost\n")
        argv = [
            # If this thread dies without close(), the kernel kills linux.uml
            # (and the watchdog below its I/O helpers).
            "setpriv", "--pdeathsig", "KILL",
            uml, f"mem={self.mem}", "root=/dev/root", "rootfstype=hostfs", "rootflags=/",
            "rw", "init=/bin/bash", "con=null", "ssl=null", "con0=null,fd:1", "quiet",
            # after "--": init's arguments (bash runs the script, exec bit or not)
            "--", str(INIT), str(self.run_dir), *self.modules,
        ]  # fmt: skip
        # UML 6.1 on an AVX-512/AMX host needs this to boot (see xstate.py).
        shim = xstate.build(self.run_dir)
        env = {**os.environ, "LD_PRELOAD": str(shim)} if shim else None
        t0 = time.monotonic()
        with open(self.console_log, "wb") as console:
            # Own session: its helper processes share its process group, which
            # is how close() finds and kills every one of them.
            self._uml = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.run_dir, env=env,
            )  # fmt: skip
        self._watchdog = _start_watchdog(self._uml.pid)
        try:
            self._wait_ready(t0)
        except BaseException:
            self.close()
            raise
        self.boot_seconds = time.monotonic() - t0

    def _wait_ready(self, t0: float) -> None:
        assert self._uml is not None
        ready = self.ctl / "ready.json"
        failed = self.ctl / "init-failed"
        while not ready.exists():
            if failed.exists():
                raise GuestError(f"guest init failed: {failed.read_text().strip()}\n{self.tails()}")
            if self._uml.poll() is not None:
                raise GuestError(f"linux.uml exited {self._uml.returncode}\n{self.tails()}")
            if time.monotonic() - t0 > self.boot_timeout:
                raise GuestError(f"guest not ready after {self.boot_timeout}s\n{self.tails()}")
            time.sleep(0.02)

    def close(self, timeout: float = 30.0) -> None:
        """End every guest process, power off, and make sure linux.uml is gone."""
        uml, self._uml = self._uml, None
        if uml is None:
            return
        try:
            if uml.poll() is None:
                with contextlib.suppress(GuestError):
                    seq = self._submit({"op": "shutdown", "grace": 3.0})
                    self._result(seq, "done", timeout / 2, uml)
            try:
                uml.wait(timeout=timeout / 2)
            except subprocess.TimeoutExpired:
                pass
        finally:
            try:
                _kill_group(uml)
            finally:
                if self._watchdog is not None:
                    # By PID, before its stdin closes: the group is gone now.
                    self._watchdog.kill()
                    self._watchdog.wait()
                    if self._watchdog.stdin is not None:
                        self._watchdog.stdin.close()
                    self._watchdog = None

    def __enter__(self) -> Guest:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self._uml is not None and self._uml.poll() is None

    # -- jobs ------------------------------------------------------------------------

    def _submit(self, job: Mapping[str, Any], seq: str | None = None) -> str:
        seq = seq or f"{next(self._seq):06d}"
        tmp = self.jobs / f".{seq}.tmp"
        tmp.write_text(json.dumps(job))
        tmp.rename(self.jobs / f"{seq}.json")
        return seq

    def _result(
        self,
        seq: str,
        kind: str,
        timeout: float,
        uml: subprocess.Popen[bytes] | None = None,
    ) -> dict[str, Any]:
        uml = uml or self._uml
        path = self.results / f"{seq}.{kind}.json"
        deadline = time.monotonic() + timeout
        delay = 0.002
        while not path.exists():
            if uml is None or uml.poll() is not None:
                raise GuestError(f"the guest is not running (job {seq})\n{self.tails()}")
            if time.monotonic() > deadline:
                raise GuestError(f"no {kind} result for job {seq} after {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        obj: dict[str, Any] = json.loads(path.read_text())
        return obj

    def spawn(
        self,
        argv: Sequence[str],
        *,
        ns: str | None = None,
        env: Mapping[str, str | None] | None = None,
        cwd: str | Path | None = None,
        stdin_data: str | None = None,
        stdin_path: str | Path | None = None,
        name: str | None = None,
        log_dir: Path | None = None,
    ) -> GuestProcess:
        """Start ``argv`` in the guest (in netns ``ns``: None, "srv" or "cli").

        ``env`` is merged over PATH/HOME/LANG/TERM/TMPDIR (a None value removes
        a name). stdin is ``stdin_data`` (then closed), the file ``stdin_path``,
        or /dev/null. stdout and stderr go to ``log_dir/NAME.out`` and ``.err``
        (NAME defaults to the program's name; a sequence number is added if
        taken), or to ``RUN_DIR/procs/SEQ-NAME.out/.err`` without ``log_dir``.
        """
        if ns not in NAMESPACES:
            raise ValueError(f"unknown namespace {ns!r}")
        if self._uml is None:
            raise GuestError("the guest is not running")
        seq = f"{next(self._seq):06d}"
        label = name or Path(argv[0]).name
        if log_dir is None:
            out = self.procs_dir / f"{seq}-{label}.out"
            err = self.procs_dir / f"{seq}-{label}.err"
        else:
            log_dir.mkdir(parents=True, exist_ok=True)
            out, err = log_dir / f"{label}.out", log_dir / f"{label}.err"
            if out.exists() or err.exists():
                out, err = log_dir / f"{label}-{seq}.out", log_dir / f"{label}-{seq}.err"
        job = {
            "op": "spawn",
            "argv": [str(a) for a in argv],
            "ns": ns,
            "env": dict(env or {}),
            "cwd": str(cwd) if cwd else None,
            "stdin_data": stdin_data,
            "stdin_path": str(stdin_path) if stdin_path else None,
            "stdout": str(out),
            "stderr": str(err),
            "cli_etc_ppp": str(self.cli_etc_ppp),
            "cli_hosts": str(self.cli_hosts),
        }
        self._submit(job, seq)
        return GuestProcess(self, seq, argv, out, err)

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        check: bool = False,
        **kwargs: Any,
    ) -> Result:
        """:meth:`spawn` and wait; on timeout SIGKILL it and raise TimeoutError."""
        p = self.spawn(argv, **kwargs)
        try:
            res = p.wait(timeout)
        except TimeoutError:
            p.kill(signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                p.wait(5.0)
            raise
        return res.check() if check else res

    def sh(self, script: str, *, timeout: float = 30.0, check: bool = True, **kw: Any) -> Result:
        """Run a /bin/sh script; raises GuestError on a non-zero exit if ``check``."""
        return self.run(["/bin/sh", "-c", script], timeout=timeout, check=check, **kw)

    def kill(self, pid: int, sig: int = signal.SIGTERM, *, group: bool = False) -> bool:
        """Send ``sig`` to a guest PID (or process group); False if it is gone."""
        seq = self._submit({"op": "kill", "pid": pid, "signal": int(sig), "group": group})
        return bool(self._result(seq, "done", self.answer_timeout)["ok"])

    def kill_all(self, grace: float = 3.0) -> list[GuestProc]:
        """End every guest process but init and the command server (SIGTERM,
        SIGKILL after ``grace``); returns those that were running."""
        seq = self._submit({"op": "kill_all", "grace": grace})
        res = self._result(seq, "done", grace + self.answer_timeout)
        if not res["ok"]:
            raise GuestError(f"processes survived SIGKILL: {res['left']}")
        return [_proc(p) for p in res["killed"]]

    def processes(self) -> list[GuestProc]:
        """The guest's user processes (not kernel threads, not zombies)."""
        seq = self._submit({"op": "ps"})
        return [_proc(p) for p in self._result(seq, "done", self.answer_timeout)["procs"]]

    def descendants(self, pid: int) -> list[GuestProc]:
        """Every live process below ``pid``, nearest first."""
        procs = self.processes()
        found: list[GuestProc] = []
        parents = {pid}
        while True:
            more = [p for p in procs if p.ppid in parents and p not in found]
            if not more:
                return found
            found += more
            parents |= {p.pid for p in more}

    def write_file(self, path: str, data: str, mode: int = 0o644) -> None:
        """Write a file at a guest-private path, e.g. /etc/ppp/options.sstpd."""
        seq = self._submit({"op": "write", "path": path, "data": data, "mode": mode})
        res = self._result(seq, "done", self.answer_timeout)
        if not res["ok"]:
            raise GuestError(f"cannot write {path}: {res['error']}")

    def tails(self, lines: int = 30) -> str:
        """The ends of the console and command-server logs, for failure reports."""
        parts = []
        for p in (self.console_log, self.ctl / "agent.log"):
            if p.exists():
                parts.append(f"--- {p}:\n{tail(p.read_text(errors='replace'), lines)}")
        return "\n".join(parts)


def _proc(p: dict[str, Any]) -> GuestProc:
    return GuestProc(
        pid=p["pid"], ppid=p["ppid"], pgid=p["pgid"], state=p["state"], argv=tuple(p["argv"])
    )


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace ``path`` by a complete new file holding ``text`` (by rename), so
    that a guest reading it never sees it half written.

    A guest process that holds the old file open keeps the old content, and
    while one does, so do new opens in the guest (hostfs keeps that inode).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)


def tail(text: str, lines: int = 30) -> str:
    """The last ``lines`` lines of ``text``, without NUL bytes (sstpc writes them)."""
    return "\n".join(text.replace("\0", "").splitlines()[-lines:])


# Killing linux.uml does not end UML's I/O helper processes. This watchdog
# ends the whole group if the host process dies without close(): its stdin
# then reaches EOF. Its own session keeps it out of signals sent to ours.
_WATCHDOG = """
import os, signal, sys
sys.stdin.buffer.read()
try:
    os.killpg(int(sys.argv[1]), signal.SIGKILL)
except ProcessLookupError:
    pass
"""


def _start_watchdog(pgid: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(pgid)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def _kill_group(uml: subprocess.Popen[bytes]) -> None:
    # UML runs guest address spaces as host processes in linux.uml's process
    # group (its own session): end the whole group by that id, then reap.
    pgid = uml.pid
    if uml.poll() is None or _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        uml.wait(timeout=10)
    deadline = time.monotonic() + 5
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(pgid):
        raise GuestError(f"linux.uml processes of group {pgid} survived SIGKILL")


def _group_alive(pgid: int) -> bool:
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
