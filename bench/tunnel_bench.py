"""sstp-pppd side by side with sstpc through a real tunnel in User-Mode Linux.

    .venv/bin/python bench/tunnel_bench.py [--rounds N] [--seconds S] [--mbytes M]
                                           [--method iperf3|transfer] [--syscalls] [--profile]

One guest boot (tests/e2e's Lab). For every round, sstp-pppd and then sstpc (ABAB...) each
get a fresh sstpd (sstp-server 0.7.2 serves one session per process) and are measured for:

- connect: host wall clock from spawning the client to ppp0 in netns cli having a peer,
  and the client's CPU seconds by then (start-up, TLS, authentication);
- throughput client -> server and server -> client through ppp0: iperf3 for S seconds
  (``-R`` for the second), or a checked transfer of M MiB (``--method transfer``, or as a
  fallback when iperf3 fails);
- CPU seconds (utime + stime from /proc/PID/stat in the guest) of the client process alone,
  not its pppd nor the server, over each transfer, per GB (10**9 bytes) that went through;
- VmRSS of the client while connected, after the transfers.

Both clients run behind a 2 ms delay on the server's veth, without which sstpc stalls after
a TLS handshake that never waited (tests/e2e/bed.py, Lab.link_delay). A connect that fails
is retried once with a fresh sstpd and the retry is reported. The tables show medians over
rounds and the ratios sstp-pppd / sstpc from this same run. Nothing is asserted: the
figures depend on the machine and its load, which is printed with them.

``--syscalls`` adds one session per client under ``strace -c`` over a STRACE_MIB MiB checked
transfer each way and prints system calls per MiB (the guest's syscalls are costly, so
these explain much of the CPU figures). ``--profile`` adds one sstp-pppd session under
cProfile, switched on (SIGUSR1) just before the transfers and off (SIGUSR2) just after, so
start-up and handshake stay out of it; it prints the hot spots, the wait in epoll left out.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pstats
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The lab lives in the tests tree: importable once the repo root is on the path.
from tests.e2e.bed import (  # noqa: E402
    HOST_PYTHON,
    PASSWORD,
    SSTP_PPPD,
    TUNNEL_LOCAL,
    USERNAME,
    Lab,
    PppLink,
)
from tests.e2e.certs import SERVER_NAME  # noqa: E402
from tests.e2e.uml import GuestError, GuestProcess  # noqa: E402

#: The same pppd options for both clients: MS-CHAPv2 only, no routes, no compression.
CLIENT_PPPD = ("noauth", "refuse-eap", "refuse-pap", "refuse-chap", "refuse-mschap",
               "nodefaultroute", "noccp")  # fmt: skip
OURS, SSTPC = "sstp-pppd", "sstpc"
#: sstp-pppd's entry point with cProfile on between SIGUSR1 and SIGUSR2 (then dumped to
#: argv[1]): the imports, the handshake and the shutdown stay out of the profile.
PROFILE_WRAPPER = """\
import cProfile, signal, sys
from sstp_pppd.cli import main
out = sys.argv.pop(1)
prof = cProfile.Profile()
def stop(signum, frame):
    prof.disable()
    prof.dump_stats(out)
signal.signal(signal.SIGUSR1, lambda signum, frame: prof.enable())
signal.signal(signal.SIGUSR2, stop)
sys.exit(main())
"""
GB = 1e9
#: MiB each way under strace: enough for stable counts, short though tracing is slow.
STRACE_MIB = 2
T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {text}", flush=True)


@dataclasses.dataclass(slots=True, kw_only=True)
class Direction:
    """One transfer through the tunnel and the client's CPU over it."""

    method: str
    nbytes: int
    seconds: float
    user_s: float
    sys_s: float

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    @property
    def mbit_s(self) -> float:
        return self.nbytes * 8 / self.seconds / 1e6


@dataclasses.dataclass(slots=True, kw_only=True)
class Session:
    """One client session against one sstpd: what the tables are made of."""

    client: str
    round: int
    attempts: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)
    connect_s: float | None = None
    startup_cpu_s: float | None = None
    up: Direction | None = None
    down: Direction | None = None
    rss_kib: int | None = None
    hwm_kib: int | None = None
    #: System calls by name over the strace pass (mode "strace" only).
    syscalls: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def cpu_per_gb(self) -> float | None:
        if self.up is None or self.down is None:
            return None
        return (self.up.cpu_s + self.down.cpu_s) / ((self.up.nbytes + self.down.nbytes) / GB)


class Bench:
    """The measurements, on top of the Lab and its guest's run/spawn."""

    def __init__(self, lab: Lab, args: argparse.Namespace) -> None:
        self.lab = lab
        self.args = args
        self.clk_tck = int(lab.guest.run(["getconf", "CLK_TCK"]).check().stdout)

    # -- /proc of the client in the guest ------------------------------------------------

    def cpu_s(self, pid: int) -> tuple[float, float]:
        """(utime, stime) of ``pid`` so far, in seconds: all its threads, no children."""
        res = self.lab.guest.run(["cat", f"/proc/{pid}/stat"]).check()
        # The comm field may hold spaces and parentheses: split after its last ')'.
        fields = res.stdout.rsplit(")", 1)[1].split()
        return int(fields[11]) / self.clk_tck, int(fields[12]) / self.clk_tck

    def memory_kib(self, pid: int) -> tuple[int, int]:
        """(VmRSS, VmHWM) of ``pid`` in KiB."""
        status = self.lab.guest.run(["cat", f"/proc/{pid}/status"]).check().stdout
        values = {
            k: int(v.split()[0])
            for k, _, v in (line.partition(":") for line in status.splitlines())
            if k in ("VmRSS", "VmHWM")
        }
        return values["VmRSS"], values["VmHWM"]

    # -- the clients -----------------------------------------------------------------------

    def argv(self, client: str, d: Path, *, profile: Path | None = None) -> list[str]:
        ca = str(self.lab.certs.ca.cert)
        if client == SSTPC:
            return ["sstpc", "--ca-cert", ca, "--user", USERNAME, "--password", PASSWORD,
                    "--log-stderr", SERVER_NAME, "--", *CLIENT_PPPD]  # fmt: skip
        pw = d / "password"
        pw.write_text(PASSWORD + "\n")
        pw.chmod(0o600)
        prog = [str(SSTP_PPPD)]
        if profile is not None:
            wrapper = d / "profiled_client.py"
            wrapper.write_text(PROFILE_WRAPPER)
            prog = [str(HOST_PYTHON), str(wrapper), str(profile)]
        return [*prog, "--ca-cert", ca, "--user", USERNAME, "--password-file", str(pw),
                SERVER_NAME, "--", *CLIENT_PPPD]  # fmt: skip

    def connect(
        self, s: Session, argv_for: Callable[[Path], list[str]], case: Path
    ) -> tuple[GuestProcess, PppLink] | None:
        """A fresh sstpd and the client until ppp0 is up; one retry; None if both failed."""
        for attempt in (1, 2):
            s.attempts = attempt
            d = case if attempt == 1 else case / f"attempt{attempt}"
            try:
                self.lab.server.start(d)
            except GuestError as e:
                s.failures.append(f"sstpd did not start: {e}")
                self.lab.guest.kill_all(grace=2.0)
                continue
            t0 = time.monotonic()
            client = self.lab.guest.spawn(argv_for(d), ns="cli", log_dir=d, name=s.client)
            try:
                link = self.lab.wait_for_ppp(timeout=40, proc=client)
            except GuestError as e:
                err = client.stderr.strip().splitlines()
                s.failures.append(f"{e}; last line: {err[-1] if err else '(none)'}")
                say(f"  {s.client}: connect attempt {attempt} failed: {s.failures[-1]}")
                self.end_session(client)
                continue
            s.connect_s = time.monotonic() - t0
            return client, link
        return None

    def end_session(self, client: GuestProcess) -> None:
        """Stop the client, then sstpd and its pppd, then whatever is left in the guest."""
        if client.poll() is None:
            client.stop(20)
        self.lab.wait_for_no_ppp()
        self.lab.server.stop()
        self.lab.guest.kill_all(grace=2.0)

    # -- transfers -----------------------------------------------------------------------

    def iperf3(self, reverse: bool, d: Path) -> tuple[int, float]:
        """(bytes received, seconds) of one iperf3 run, cli -> srv or with ``reverse``
        srv -> cli."""
        g = self.lab.guest
        server = g.spawn(["iperf3", "-s", "-1", "--forceflush", "-B", TUNNEL_LOCAL],
                         ns="srv", log_dir=d, name="iperf3-s")  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while "listening" not in server.stdout:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise GuestError(f"iperf3 server did not start: {server.stderr}")
                time.sleep(0.05)
            argv = ["iperf3", "-J", "-c", TUNNEL_LOCAL, "-t", str(self.args.seconds)]
            res = g.run(
                [*argv, "-R"] if reverse else argv,
                ns="cli", timeout=self.args.seconds + 60, log_dir=d,
                name="iperf3-R" if reverse else "iperf3-c",
            ).check()  # fmt: skip
        finally:
            if server.poll() is None:
                server.stop(5.0)
        end = json.loads(res.stdout)["end"]["sum_received"]
        return int(end["bytes"]), float(end["seconds"])

    def transfer(
        self, reverse: bool, link: PppLink, d: Path, *, nbytes: int = 0
    ) -> tuple[int, float]:
        """(bytes, seconds) of one checked transfer of ``nbytes`` (default --mbytes MiB)."""
        nbytes = nbytes or self.args.mbytes << 20
        if reverse:
            x = self.lab.transfer(nbytes, address=link.local, src_ns="srv", dst_ns="cli", log_dir=d)
        else:
            x = self.lab.transfer(nbytes, log_dir=d)
        if not x.ok:
            raise GuestError(f"transfer arrived damaged: {x}")
        return x.nbytes, x.seconds

    def direction(self, pid: int, reverse: bool, link: PppLink, d: Path) -> Direction:
        """One direction, CPU of ``pid`` read just before and just after it."""
        method = self.args.method
        before = self.cpu_s(pid)
        try:
            if method == "iperf3":
                nbytes, seconds = self.iperf3(reverse, d)
            else:
                nbytes, seconds = self.transfer(reverse, link, d)
        except (GuestError, KeyError, ValueError) as e:
            if method != "iperf3":
                raise
            say(f"  iperf3 failed ({str(e)[:200]}); falling back to a transfer")
            method = "transfer"
            before = self.cpu_s(pid)
            nbytes, seconds = self.transfer(reverse, link, d)
        after = self.cpu_s(pid)
        return Direction(method=method, nbytes=nbytes, seconds=seconds,
                         user_s=after[0] - before[0], sys_s=after[1] - before[1])  # fmt: skip

    # -- one session ---------------------------------------------------------------------

    def session(self, client: str, rnd: int, *, mode: str = "") -> Session:
        """Connect, measure both directions, read the memory, disconnect.

        ``mode`` "profile" runs sstp-pppd under cProfile for the transfers; "strace" counts
        the client's system calls over a STRACE_MIB MiB transfer each way instead."""
        s = Session(client=client, round=rnd)
        case = self.lab.new_case(f"{client}-round{rnd}-{mode}".rstrip("-"))
        profile = self.lab.run_dir / "sstp-pppd.prof" if mode == "profile" else None
        got = self.connect(s, lambda d: self.argv(client, d, profile=profile), case)
        if got is None:
            say(f"{client} round {rnd}: no connection after {s.attempts} attempts")
            return s
        proc, link = got
        try:
            s.startup_cpu_s = sum(self.cpu_s(proc.pid))
            self.lab.server.wait_for_log("Crypto Binding is valid.", 15)
            if mode == "strace":
                s.syscalls = self.count_syscalls(proc.pid, link, case)
            else:
                if profile is not None:
                    self.lab.guest.kill(proc.pid, signal.SIGUSR1)
                s.up = self.direction(proc.pid, False, link, case)
                s.down = self.direction(proc.pid, True, link, case)
                if profile is not None:
                    self.lab.guest.kill(proc.pid, signal.SIGUSR2)
                    deadline = time.monotonic() + 30
                    while not profile.exists() and time.monotonic() < deadline:
                        time.sleep(0.2)
            s.rss_kib, s.hwm_kib = self.memory_kib(proc.pid)
        except (GuestError, TimeoutError, ValueError, KeyError) as e:
            # One broken session is reported in the table; the run goes on.
            s.failures.append(f"measurement: {type(e).__name__}: {e}")
            say(f"  {client}: {s.failures[-1]}")
        finally:
            self.end_session(proc)
        say(f"{client} {f'round {rnd}' if rnd else mode}: {describe(s)}")
        return s

    def count_syscalls(self, pid: int, link: PppLink, d: Path) -> dict[str, int]:
        """System calls of ``pid`` (all its threads) over STRACE_MIB MiB each way."""
        out = d / "strace.txt"
        tracer = self.lab.guest.spawn(["strace", "-c", "-f", "-o", str(out), "-p", str(pid)],
                                      ns="cli", log_dir=d, name="strace")  # fmt: skip
        deadline = time.monotonic() + 20
        while "attached" not in tracer.stderr and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            for reverse in (False, True):
                self.transfer(reverse, link, d, nbytes=STRACE_MIB << 20)
        finally:
            tracer.kill(signal.SIGINT)
            tracer.wait(30)
        calls: dict[str, int] = {}
        for line in out.read_text().splitlines():
            cols = line.split()
            # "% time seconds usecs/call calls [errors] syscall"; the total row says "total".
            if len(cols) >= 5 and cols[-1] not in ("syscall", "total") and cols[3].isdigit():
                calls[cols[-1]] = int(cols[3])
        return calls


def describe(s: Session) -> str:
    parts = [f"attempts {s.attempts}"]
    if s.connect_s is not None:
        parts.append(f"connect {s.connect_s:.1f} s (client CPU {s.startup_cpu_s or 0:.2f} s)")
    for name, d in (("up", s.up), ("down", s.down)):
        if d is not None:
            parts.append(f"{name} {d.mbit_s:.1f} Mbit/s {d.nbytes / 2**20:.1f} MiB "
                         f"CPU {d.user_s:.2f} user + {d.sys_s:.2f} sys s [{d.method}]")  # fmt: skip
    if s.cpu_per_gb is not None:
        parts.append(f"{s.cpu_per_gb:.1f} CPU s/GB")
    if s.rss_kib is not None:
        parts.append(f"RSS {s.rss_kib / 1024:.1f} MiB")
    if s.syscalls:
        parts.append(f"{sum(s.syscalls.values())} system calls")
    return ", ".join(parts)


def median(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def per_gb(d: Direction | None) -> float | None:
    return d.cpu_s / (d.nbytes / GB) if d is not None and d.nbytes else None


def summary(sessions: list[Session]) -> dict[str, float | None]:
    """Medians over rounds of one client's sessions."""
    return {
        "connect s": median([s.connect_s for s in sessions]),
        "up Mbit/s": median([s.up.mbit_s if s.up else None for s in sessions]),
        "down Mbit/s": median([s.down.mbit_s if s.down else None for s in sessions]),
        "CPU s/GB up": median([per_gb(s.up) for s in sessions]),
        "CPU s/GB down": median([per_gb(s.down) for s in sessions]),
        "CPU s/GB": median([s.cpu_per_gb for s in sessions]),
        "startup CPU s": median([s.startup_cpu_s for s in sessions]),
        "RSS MiB": median([s.rss_kib / 1024 if s.rss_kib else None for s in sessions]),
        "peak RSS MiB": median([s.hwm_kib / 1024 if s.hwm_kib else None for s in sessions]),
    }


def fmt(v: float | None, width: int = 11) -> str:
    return f"{'-' if v is None else f'{v:.2f}':>{width}}"


def report(results: dict[str, list[Session]]) -> dict[str, dict[str, float | None]]:
    sums = {c: summary(ss) for c, ss in results.items()}
    counts = ", ".join(f"{c}: {len(ss)} sessions" for c, ss in results.items())
    print(f"\nmedians over rounds ({counts})")
    print(f"{'':16}" + "".join(f"{c:>12}" for c in results) + f"{'ratio':>12}")
    for key in sums[OURS]:
        ours, ref = sums[OURS][key], sums[SSTPC][key]
        ratio = ours / ref if ours is not None and ref else None
        print(f"{key:16}" + fmt(ours, 12) + fmt(ref, 12) + fmt(ratio, 12))
    for c, ss in results.items():
        retried = [s for s in ss if s.attempts > 1]
        failed = [s for s in ss if s.cpu_per_gb is None]
        methods = sorted({d.method for s in ss for d in (s.up, s.down) if d})
        print(f"{c}: {len(retried)} of {len(ss)} sessions needed a retry, {len(failed)} failed; "
              f"method {'/'.join(methods) or '-'}")  # fmt: skip
        for s in ss:
            for f in s.failures:
                print(f"  round {s.round}: {f}")
    print("ratio = sstp-pppd / sstpc: throughput above 1 is better, CPU/connect/RSS below 1")
    return sums


def area(file: str, func: str) -> str:
    """A coarse owner of a profiled function: our module, a stdlib package, or C code."""
    if file == "~":
        return "C: " + func.removeprefix("<method ").removeprefix("<built-in method ").split()[0]
    path = Path(file)
    if "sstp_pppd" in path.parts:
        return "/".join(path.parts[path.parts.index("sstp_pppd") :])
    if "site-packages" in path.parts:
        return "site-packages: " + path.parts[path.parts.index("site-packages") + 1]
    return "stdlib: " + (path.parent.name if path.parent.name == "asyncio" else path.name)


def show_profile(path: Path, top: int) -> None:
    """The hot spots of the profiled transfers, the wait in epoll left out."""
    if not path.exists():
        say(f"no profile written at {path}")
        return
    raw = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    rows = [
        (tt, ct, nc, f"{Path(file).name}:{line}({func})", area(file, func))
        for (file, line, func), (_cc, nc, tt, ct, _callers) in raw.items()
    ]
    idle = sum(r[0] for r in rows if "select.epoll" in r[3])
    busy = sum(r[0] for r in rows) - idle
    print(f"\ncProfile of the transfers: {busy:.2f} s busy (+ {idle:.2f} s waiting in epoll),")
    print("wall-clock timer; profiling inflates Python-level code against C calls")
    print(f"{'self s':>8} {'% busy':>7} {'cum s':>8} {'calls':>8}  function")
    busy_rows = sorted((r for r in rows if "select.epoll" not in r[3]), reverse=True)
    for tt, ct, nc, name, _ in busy_rows[:top]:
        print(f"{tt:8.3f} {100 * tt / busy:7.1f} {ct:8.3f} {nc:8d}  {name}")
    areas: dict[str, float] = {}
    for tt, _ct, _nc, name, owner in rows:
        if "select.epoll" not in name:
            areas[owner] = areas.get(owner, 0.0) + tt
    print("\nself time by owner")
    for owner, tt in sorted(areas.items(), key=lambda kv: kv[1], reverse=True)[:top]:
        print(f"{tt:8.3f} {100 * tt / busy:7.1f}  {owner}")


def show_syscalls(sessions: list[Session]) -> None:
    print(f"\nsystem calls of the client per MiB through the tunnel ({STRACE_MIB} MiB each way)")
    for s in sessions:
        total = sum(s.syscalls.values())
        if not total:
            print(f"{s.client}: no count ({'; '.join(s.failures) or 'strace printed nothing'})")
            continue
        top = sorted(s.syscalls.items(), key=lambda kv: kv[1], reverse=True)[:6]
        per = " ".join(f"{name} {n / (2 * STRACE_MIB):.0f}" for name, n in top)
        print(f"{s.client:10} {total / (2 * STRACE_MIB):7.0f} per MiB: {per}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2, help="sessions per client (default 2)")
    ap.add_argument("--seconds", type=int, default=6, help="iperf3 seconds per direction (6)")
    ap.add_argument("--mbytes", type=int, default=8, help="MiB per direction for transfer (8)")
    ap.add_argument("--method", choices=("iperf3", "transfer"), default="iperf3")
    ap.add_argument("--profile", action="store_true", help="add a cProfile'd sstp-pppd session")
    ap.add_argument("--top", type=int, default=25, help="profile rows to print (25)")
    ap.add_argument("--syscalls", action="store_true", help="add a session per client under strace")
    args = ap.parse_args()
    started = datetime.datetime.now().astimezone()
    load0 = os.getloadavg()
    say(f"{started:%Y-%m-%d %H:%M %Z}, {os.cpu_count()} CPUs, load average "
        + " ".join(f"{x:.2f}" for x in load0) + "; booting User-Mode Linux...")  # fmt: skip
    results: dict[str, list[Session]] = {OURS: [], SSTPC: []}
    extra: list[Session] = []
    with Lab() as lab, lab.link_delay(2):
        say(f"guest up; logs in {lab.run_dir}")
        bench = Bench(lab, args)
        for rnd in range(1, args.rounds + 1):
            for client in (OURS, SSTPC):
                results[client].append(bench.session(client, rnd))
        if args.syscalls:
            extra += [bench.session(client, 0, mode="strace") for client in (OURS, SSTPC)]
        if args.profile:
            extra.append(bench.session(OURS, 0, mode="profile"))
        run_dir = lab.run_dir
    sums = report(results)
    load1 = os.getloadavg()
    load_end = " ".join(f"{x:.2f}" for x in load1)
    wall = time.monotonic() - T0
    print(f"\nload average at the start {load0[0]:.2f}, at the end {load_end}; wall {wall:.0f} s")
    if args.syscalls:
        show_syscalls(extra[:2])
    if args.profile:
        print(f"\nprofiled session: {describe(extra[-1])}")
        show_profile(run_dir / "sstp-pppd.prof", args.top)
    out = run_dir / "tunnel_bench.json"
    out.write_text(json.dumps({
        "date": started.isoformat(), "loadavg_start": load0, "loadavg_end": load1,
        "args": vars(args), "medians": sums,
        "sessions": {c: [dataclasses.asdict(s) for s in ss] for c, ss in results.items()},
        "extra_sessions": [dataclasses.asdict(s) for s in extra],
    }, indent=1))  # fmt: skip
    print(f"raw figures: {out}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # so the Lab powers off
    sys.exit(main())
