"""The lab on top of a :class:`~.uml.Guest`: certificates, the SSTP server, tunnel checks.

    lab = Lab()                         # RUN_DIR = .e2e/runs/<timestamp>
    lab.start()                         # certificates (verified) + guest boot
    case = lab.new_case("sstpc")        # RUN_DIR/cases/NN-sstpc/ for this case's logs
    lab.server.start(case)              # sstp-server 0.7.2 in netns srv, one session
    client = lab.guest.spawn([...], ns="cli", log_dir=case)
    link = lab.wait_for_ppp()           # ppp0 in cli: PppLink(local=..., peer="10.66.0.1")
    lab.ping(link.peer)                 # Result, returncode 0 if all replies came
    xfer = lab.transfer(4 << 20)        # Transfer: xfer.ok, xfer.mbit_s
    client.stop()
    lab.server.stop()                   # sstpd and its pppd, by PID
    lab.close()                         # powers off; linux.uml reaped

The client's /etc/ppp is ``lab.guest.cli_etc_ppp`` (write with
:meth:`Lab.write_client_file`, e.g. ``peers/NAME`` for ``pppd call NAME``);
its /etc/hosts maps vpn.lab.test to 192.0.2.1, vpn6.lab.test to 2001:db8::1
and wrong.lab.test to 192.0.2.1.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .certs import (
    SERVER_NAME,
    SERVER_NAME6,
    SERVER_V4,
    SERVER_V6,
    WRONG_NAME,
    Certs,
    KeyPair,
    make_certs,
)
from .uml import CORE_MODULES, REPO, Guest, GuestError, GuestProcess, Result, tail, write_atomic

SSTPD = REPO / ".e2e" / "sstpd-venv" / "bin" / "sstpd"
# The interpreter running the tests has sstp_pppd installed, and the guest
# sees the same filesystem: run our client in the guest with these.
HOST_PYTHON = Path(sys.executable)
SSTP_PPPD = HOST_PYTHON.with_name("sstp-pppd")
XFER = Path(__file__).with_name("xfer.py")
CLIENT_V4 = "192.0.2.2"
CLIENT_V6 = "2001:db8::2"
TUNNEL_LOCAL = "10.66.0.1"  # the server's end of ppp0
TUNNEL_POOL = "10.66.0.0/24"  # clients get addresses from here (10.66.0.2 first)
USERNAME = "labuser"
PASSWORD = "labpass"
CHAP_SECRETS = f'"{USERNAME}" * "{PASSWORD}" *\n'
SERVER_PPPD_OPTIONS = (
    "name sstpd",
    "require-mschap-v2",
    # The peer's pty may echo early frames: without "silent" the server's
    # pppd reads its own LCP request back and rejects it.
    "silent",
    "nodefaultroute",
    "noccp",
    "debug",
)
CLIENT_HOSTS = (
    "127.0.0.1 localhost\n::1 localhost\n"
    f"{SERVER_V4} {SERVER_NAME}\n{SERVER_V6} {SERVER_NAME6}\n{SERVER_V4} {WRONG_NAME}\n"
)


def new_run_dir(base: Path | None = None, keep: int | None = None) -> Path:
    """A fresh ``.e2e/runs/<timestamp>`` directory.

    Older runs beyond the ``keep`` newest (default ``$SSTP_E2E_KEEP_RUNS`` or
    20) are deleted, but only once untouched for an hour: another session
    may be using one.
    """
    base = base or REPO / ".e2e" / "runs"
    keep = keep if keep is not None else int(os.environ.get("SSTP_E2E_KEEP_RUNS", "20"))
    if base.is_dir():
        runs = sorted((d for d in base.iterdir() if d.is_dir()), key=_last_used)
        for old in runs[: max(0, len(runs) - keep)]:
            if time.time() - _last_used(old) > 3600:
                shutil.rmtree(old, ignore_errors=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        d = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            d.mkdir(parents=True)
        except FileExistsError:
            continue
        return d
    raise RuntimeError(f"cannot make a run directory in {base}")


def _last_used(run: Path) -> float:
    # A running guest appends to its agent log with every job.
    paths = (run, run / "console.log", run / "guest" / "agent.log")
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PppLink:
    """An IPv4 PPP interface that is up, as ``ip addr`` shows it."""

    ifname: str
    local: str
    peer: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Transfer:
    """The outcome of :meth:`Lab.transfer`."""

    nbytes: int
    seconds: float
    sent_sha256: str
    received_sha256: str | None
    received_bytes: int | None

    @property
    def ok(self) -> bool:
        return self.received_bytes == self.nbytes and self.received_sha256 == self.sent_sha256

    @property
    def mbit_s(self) -> float:
        return self.nbytes * 8 / self.seconds / 1e6


class SstpServer:
    """sstp-server 0.7.2 (``sstpd``) in netns srv: one process per session.

    0.7.2 serves only one session per process, so start it for every case
    and stop it after. :meth:`start` fails loudly if pppd's plugin dry run
    fails, because sstpd then silently skips the crypto binding check.
    """

    def __init__(self, guest: Guest, certs: Certs) -> None:
        self.guest = guest
        self.certs = certs
        self.proc: GuestProcess | None = None
        self.log_dir: Path | None = None
        self.pppd_log: Path | None = None
        self.plugin_checked = False

    def start(
        self,
        log_dir: Path,
        *,
        keypair: KeyPair | None = None,
        listen: str = SERVER_V4,
        port: int = 443,
        pppd_options: Sequence[str] = SERVER_PPPD_OPTIONS,
        chap_secrets: str = CHAP_SECRETS,
        extra_args: Sequence[str] = (),
        check_plugin: bool | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Write the server's /etc/ppp, check the plugin dry run, start sstpd.

        ``keypair`` defaults to ``certs.server``; its files are sstpd's
        ``-c``/``-k``. Returns once sstpd listens. The plugin dry run
        (which reads only /etc/ppp/options, always empty here) is checked on
        the first start of the boot, or whenever ``check_plugin`` is True. sstpd's log is
        ``log_dir/sstpd.err``; its pppd's is ``log_dir/server-pppd.log``.
        """
        if self.proc is not None:
            raise RuntimeError("sstpd is already running: stop() it first")
        if not SSTPD.exists():
            raise GuestError(f"{SSTPD} missing: run scripts/setup-e2e.sh")
        kp = keypair or self.certs.server
        self.log_dir = log_dir
        self.pppd_log = log_dir / "server-pppd.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        options = [*pppd_options, f"logfile {self.pppd_log}"]
        self.guest.write_file("/etc/ppp/options", "")
        self.guest.write_file("/etc/ppp/options.sstpd", "\n".join(options) + "\n")
        self.guest.write_file("/etc/ppp/chap-secrets", chap_secrets, 0o600)
        if check_plugin or (check_plugin is None and not self.plugin_checked):
            self.verify_plugin(log_dir, timeout)
        argv = [
            str(SSTPD), "-l", listen, "-p", str(port), "-c", str(kp.cert), "-k", str(kp.key),
            "--local", TUNNEL_LOCAL, "--remote", TUNNEL_POOL,
            "--pppd-config", "/etc/ppp/options.sstpd", *extra_args,
        ]  # fmt: skip
        self.proc = self.guest.spawn(argv, ns="srv", log_dir=log_dir, name="sstpd")
        try:
            self.wait_for_log("Listening on", timeout)
        except BaseException:
            self.stop()
            raise

    def verify_plugin(self, log_dir: Path, timeout: float = 30.0) -> None:
        """Fail unless sstpd's own probe, ``pppd plugin sstp-pppd-plugin.so notty
        dryrun``, exits 0: otherwise sstpd silently skips the Compound MAC check."""
        dry = self.guest.run(
            ["pppd", "plugin", "sstp-pppd-plugin.so", "notty", "dryrun"],
            ns="srv", timeout=timeout, log_dir=log_dir, name="plugin-dryrun",
        )  # fmt: skip
        if dry.returncode != 0:
            raise GuestError(
                "pppd plugin sstp-pppd-plugin.so notty dryrun exited "
                f"{dry.returncode}: sstpd would not verify the crypto binding\n"
                f"{dry.stdout}{dry.stderr}"
            )
        self.plugin_checked = True

    @property
    def log(self) -> str:
        """sstpd's own log so far (its stderr)."""
        return self.proc.stderr if self.proc else ""

    @property
    def pppd_log_text(self) -> str:
        """The server pppd's logfile so far."""
        return self.pppd_log.read_text(errors="replace") if self.pppd_log else ""

    @property
    def crypto_binding_valid(self) -> bool:
        """True once sstpd has verified the client's Compound MAC and cert hash."""
        return "Crypto Binding is valid." in self.log

    def wait_for_log(self, text: str, timeout: float) -> str:
        """The first log line containing ``text``; GuestError if sstpd exits or time runs out."""
        if self.proc is None:
            raise RuntimeError("sstpd is not running")
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log.splitlines():
                if text in line:
                    return line
            if self.proc.poll() is not None:
                raise GuestError(
                    f"sstpd exited {self.proc.poll()} before logging {text!r}:\n{tail(self.log)}"
                )
            if time.monotonic() > deadline:
                raise GuestError(f"sstpd did not log {text!r} in {timeout}s:\n{tail(self.log)}")
            time.sleep(0.05)

    def stop(self, grace: float = 3.0) -> Result | None:
        """SIGTERM sstpd and its pppd by PID, SIGKILL what is left after ``grace``."""
        proc, self.proc = self.proc, None
        if proc is None or not self.guest.alive:
            return None
        # Look up pppd before sstpd dies: then it is reparented and lingers ~7 s.
        children = [p.pid for p in self.guest.descendants(proc.pid)]
        proc.kill(signal.SIGTERM)
        for pid in children:
            self.guest.kill(pid, signal.SIGTERM)
        _wait_gone(self.guest, [proc.pid, *children], grace)
        for pid in [proc.pid, *children]:
            self.guest.kill(pid, signal.SIGKILL)
        _wait_gone(self.guest, [proc.pid, *children], 5.0)
        return proc.wait(5.0)


def _wait_gone(guest: Guest, pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        alive = {p.pid for p in guest.processes()} & set(pids)
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


class Lab:
    """The whole test bed; see the module docstring."""

    def __init__(
        self,
        run_dir: Path | None = None,
        *,
        modules: Sequence[str] = CORE_MODULES,
        mem: str = "1G",
    ) -> None:
        self.run_dir = run_dir or new_run_dir()
        self.guest = Guest(self.run_dir, modules=modules, mem=mem)
        self._certs: Certs | None = None
        self._server: SstpServer | None = None
        self._cases = 0
        self.timings: dict[str, float] = {}

    @property
    def certs(self) -> Certs:
        if self._certs is None:
            raise RuntimeError("the lab is not started")
        return self._certs

    @property
    def server(self) -> SstpServer:
        if self._server is None:
            raise RuntimeError("the lab is not started")
        return self._server

    def start(self) -> None:
        """Make and verify the certificates while the guest boots."""
        t0 = time.monotonic()
        made: list[Certs | BaseException] = []

        def certs_job() -> None:
            try:
                made.append(make_certs(self.run_dir / "certs"))
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                made.append(e)

        worker = threading.Thread(target=certs_job, name="make-certs")
        worker.start()
        try:
            self.write_client_file("hosts", CLIENT_HOSTS)
            self.guest.start()
        finally:
            worker.join()
        if isinstance(made[0], BaseException):
            self.guest.close()
            raise made[0]
        self._certs = made[0]
        self._server = SstpServer(self.guest, self._certs)
        self.timings["start"] = time.monotonic() - t0

    def close(self) -> None:
        """Stop the server and power the guest off (idempotent)."""
        try:
            if self._server is not None and self.guest.alive:
                self._server.stop()
        finally:
            self.guest.close()

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def new_case(self, name: str) -> Path:
        """A fresh ``RUN_DIR/cases/NN-name`` directory for one case's logs."""
        self._cases += 1
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]
        d = self.run_dir / "cases" / f"{self._cases:02d}-{safe}"
        d.mkdir(parents=True)
        return d

    @contextmanager
    def link_delay(self, ms: float) -> Iterator[None]:
        """Delay every packet srv sends on veth-srv by ``ms`` (netem), undone on exit.

        sstpc 1.0.18 stalls when its TLS handshake never has to wait: if the
        ServerHello is already in the socket at its first read, SSL_connect
        finishes in one call, sstpc sends its HTTP request and then never arms
        the read for the reply, and libevent, with nothing left to wait for,
        ends: "The event loop terminated unsuccessfully", exit 255. On the
        guest's zero-latency veth that is a race sstpc loses about half the
        time on a fast host. A real network always has the latency that hides
        it, so sstpc's cases run behind a 2 ms one."""
        dev = ["dev", "veth-srv", "root"]
        self.guest.run(["tc", "qdisc", "replace", *dev, "netem", "delay", f"{ms}ms"],
                       ns="srv", check=True)  # fmt: skip
        try:
            yield
        finally:
            if self.guest.alive:
                self.guest.run(["tc", "qdisc", "del", *dev], ns="srv", check=True)

    # -- the client's side ------------------------------------------------------------

    def write_client_file(self, relpath: str, text: str, mode: int = 0o644) -> Path:
        """Write into the client's private files: "hosts" is its /etc/hosts, anything
        else is relative to its /etc/ppp (e.g. "peers/NAME", "chap-secrets").

        The file is replaced by rename (:func:`~.uml.write_atomic`). The guest
        sees the change only once no guest process holds the old file open;
        for "hosts", bound into every cli command, once no cli command runs."""
        if relpath == "hosts":
            path = self.guest.cli_hosts
        else:
            path = self.guest.cli_etc_ppp / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text, mode)
        return path

    def pppd_call(
        self, name: str, *args: str, log_dir: Path | None = None, env: dict[str, str] | None = None
    ) -> GuestProcess:
        """Start ``pppd call NAME ARGS...`` in cli (write ``peers/NAME`` first; add
        ``nodetach`` to keep pppd in the foreground, so that its PID is the one returned)."""
        return self.guest.spawn(
            ["pppd", "call", name, *args], ns="cli", log_dir=log_dir, env=env, name="pppd"
        )

    def wait_for_ppp(
        self,
        *,
        ns: str = "cli",
        ifname: str = "ppp0",
        timeout: float = 30.0,
        proc: GuestProcess | None = None,
    ) -> PppLink:
        """Wait until ``ifname`` in ``ns`` has an IPv4 peer address.

        GuestError on timeout, or at once if ``proc`` (the client) exits first.
        """
        # bash: $SECONDS bounds the loop in time even when the guest is slow,
        # and the /sys test is a builtin, so idle rounds cost only the sleep.
        script = (
            f"while [ $SECONDS -lt {int(timeout) + 1} ]; do "
            f"[ -e /sys/class/net/{ifname} ] && "
            f"ip -o -4 addr show dev {ifname} | grep ' peer ' && exit 0; "
            "sleep 0.1; done; exit 1"
        )
        res = self._watch(["bash", "-c", script], ns, timeout, proc)
        m = re.search(r"inet (\S+) peer ([0-9.]+)", res.stdout if res else "")
        if res is None or res.returncode != 0 or m is None:
            why = f"{proc.argv[0]} exited {proc.poll()}" if res is None and proc else "timeout"
            raise GuestError(f"{ifname} in {ns} did not come up within {timeout}s ({why})")
        return PppLink(ifname=ifname, local=m.group(1), peer=m.group(2))

    def wait_for_dad(self, ns: str = "cli", ifname: str = "veth-cli") -> None:
        """Wait until ``ifname``'s link-local address is past duplicate address detection.

        Its address and its route appear a moment after boot: a "before" snapshot of the
        routes taken earlier would miss them and see them as left behind later."""
        self.guest.sh(
            "i=0; while [ $i -lt 100 ]; do "
            f"ip -6 route show table local | grep -q '^local fe80::.* dev {ifname} ' && "
            '[ -z "$(ip -6 -o addr show tentative)" ] && exit 0; '
            "sleep 0.1; i=$((i+1)); done; exit 1",
            ns=ns,
        )

    def wait_for_no_ppp(
        self, *, ns: str = "cli", ifname: str = "ppp0", timeout: float = 15.0
    ) -> bool:
        """Wait until ``ifname`` is gone from ``ns``; False on timeout."""
        script = (
            f"while [ $SECONDS -lt {int(timeout) + 1} ]; do "
            f"[ -e /sys/class/net/{ifname} ] || exit 0; sleep 0.1; done; exit 1"
        )
        res = self._watch(["bash", "-c", script], ns, timeout, None)
        return res is not None and res.returncode == 0

    def _watch(
        self, argv: list[str], ns: str, timeout: float, proc: GuestProcess | None
    ) -> Result | None:
        """Run a bounded guest loop; None if ``proc`` exits first (the loop is killed)."""
        job = self.guest.spawn(argv, ns=ns, name="wait")
        deadline = time.monotonic() + timeout + 30  # the loop bounds itself; this is a guard
        try:
            while (res := job.poll()) is None:
                if proc is not None and proc.poll() is not None:
                    return None
                if time.monotonic() > deadline:
                    raise GuestError(f"{argv} did not end in {timeout + 30}s")
                time.sleep(0.05)
            return res
        finally:
            if job.poll() is None:
                job.kill(signal.SIGKILL)

    def check_link(
        self,
        link: PppLink,
        *,
        nbytes: int = 4 << 20,
        log_dir: Path | None = None,
        timings: Timings | None = None,
    ) -> Transfer:
        """Ping across ``link`` (cli's PPP link) both ways, then send ``nbytes``
        cli -> srv with a checksum; AssertionError if anything fails."""
        t = timings or Timings()
        with t.step("ping both ways"):
            for dst, ns in ((link.peer, "cli"), (link.local, "srv")):
                res = self.ping(dst, ns=ns, log_dir=log_dir)
                assert res.returncode == 0, f"ping {dst} from {ns}:\n{res.stdout}{res.stderr}"
        with t.step(f"transfer {nbytes / (1 << 20):g} MiB"):
            xfer = self.transfer(nbytes, log_dir=log_dir)
        assert xfer.ok, xfer
        t.steps["Mbit/s"] = round(xfer.mbit_s, 1)
        return xfer

    def ping(
        self, dst: str, *, ns: str = "cli", count: int = 3, log_dir: Path | None = None
    ) -> Result:
        """``ping -c COUNT`` (0.2 s apart); returncode 0 if every reply came back."""
        argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "3", dst]
        return self.guest.run(argv, ns=ns, timeout=count + 30, log_dir=log_dir)

    def transfer(
        self,
        nbytes: int,
        *,
        address: str = TUNNEL_LOCAL,
        port: int = 5001,
        src_ns: str = "cli",
        dst_ns: str = "srv",
        timeout: float = 120.0,
        log_dir: Path | None = None,
    ) -> Transfer:
        """Send ``nbytes`` from ``src_ns`` to a sink on ``address`` in ``dst_ns``
        and compare SHA-256 at both ends."""
        py = ["/usr/bin/python3", "-I", "-S", str(XFER)]
        sink = self.guest.spawn(
            [*py, "sink", address, str(port)], ns=dst_ns, log_dir=log_dir, name="xfer-sink"
        )
        try:
            deadline = time.monotonic() + 30
            while "listening" not in sink.stdout:
                if sink.poll() is not None or time.monotonic() > deadline:
                    raise GuestError(f"transfer sink did not start:\n{sink.stderr}")
                time.sleep(0.05)
            src = self.guest.run(
                [*py, "source", address, str(port), str(nbytes)],
                ns=src_ns, timeout=timeout, log_dir=log_dir, name="xfer-source",
            )  # fmt: skip
            src.check()
            sink.wait(10)
        finally:
            if sink.poll() is None:
                sink.kill(signal.SIGKILL)
        out = json.loads(src.stdout.strip().splitlines()[-1])
        return Transfer(
            nbytes=nbytes,
            seconds=out["seconds"],
            sent_sha256=out["sha256"],
            received_sha256=out["peer_sha256"],
            received_bytes=out["peer_bytes"],
        )

    def iperf3(
        self, seconds: int = 3, *, address: str = TUNNEL_LOCAL, log_dir: Path | None = None
    ) -> float:
        """TCP throughput cli -> srv through ``address`` in bit/s, measured by iperf3."""
        server = self.guest.spawn(
            ["iperf3", "-s", "-1", "-B", address], ns="srv", log_dir=log_dir, name="iperf3-s"
        )
        try:
            time.sleep(0.5)
            res = self.guest.run(
                ["iperf3", "-J", "-c", address, "-t", str(seconds)],
                ns="cli", timeout=seconds + 60, log_dir=log_dir, name="iperf3-c",
            ).check()  # fmt: skip
        finally:
            if server.poll() is None:
                server.stop(5.0)
        bps: float = json.loads(res.stdout)["end"]["sum_received"]["bits_per_second"]
        return bps


class Timings:
    """Named wall-clock steps of one test: ``with timings.step("connect"): ...``."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    def step(self, name: str) -> _Step:
        return _Step(self, name)


class _Step:
    def __init__(self, owner: Timings, name: str) -> None:
        self.owner, self.name = owner, name

    def __enter__(self) -> None:
        self.t0 = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.owner.steps[self.name] = time.monotonic() - self.t0
