"""Faults survived, nothing left behind (issue 9): real pppd, real sstp-server 0.7.2, in UML.

- kill -9 of the transport in pty mode (``pppd call NAME``, ``pty "sstp-pppd ..."``) and of
  pppd in launch mode: no process, key socket, ppp interface, route or file of ours is left,
  and what kill -9 cannot avoid leaving (the transport's key socket, pppd's pid file) is
  cleaned by the next start, which is proven by starting again;
- the link cut mid-session: the keepalive notices within two hello periods, exit 9;
- the server restarted mid-session: a clear exit code, then a fresh connect works;
- 20 reconnect cycles with pppd's ``persist``/``holdoff 1`` in pty mode, the way sstpc's
  documentation sets it up: the client's fds, processes and RSS stay flat.

test_routes.py covers kill -9 of the transport (and of both) in launch mode with routes and
DNS, test_helper.py kill -9 of pppd and the transport under sstp-helper: not repeated here.
Every connection name starts with ``faults-`` (peers files, ipparam, linkname), so what is
ours is recognised by name.

pppd 2.4.9 (Debian 12) fails every tenth MS-CHAPv2 login of a process: its response cache
(chap_ms.c) stores the tenth response in entry 9 but searches only entries 0-8 from then on,
so the server's Success is "MS-CHAPv2 mutual authentication failed." once per ten
reconnects of a ``persist`` pppd. The transport ends that call cleanly (pppd terminated the
link) and pppd's next attempt succeeds; the cycles below go through it twice.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from .bed import PASSWORD, SSTP_PPPD, USERNAME, Lab, SstpServer
from .certs import SERVER_NAME
from .test_transport import CLIENT_PPPD, launch, leftovers, one_error_line
from .uml import GuestProc, GuestProcess

pytestmark = pytest.mark.e2e

EXIT_OK, EXIT_PPPD, EXIT_KEEPALIVE, EXIT_LOST = 0, 8, 9, 10
KEY_DIR = "/run/sstpc"  # sstpc's /var/run/sstpc; /var/run is /run on Debian
#: pppd's exit statuses when its line hangs up, or a signal stopped it (pppd(8)).
PPPD_HANGUP, PPPD_SIGNAL = 16, 5


@pytest.fixture(scope="module", autouse=True)
def _settled(lab: Lab) -> None:
    """The "before" snapshots need veth-cli's link-local route (Lab.wait_for_dad)."""
    lab.wait_for_dad()


def key_socket(name: str) -> str:
    return f"{KEY_DIR}/sstpc-{name}"


def peers_file(lab: Lab, name: str, *extra: str, log_level: int = 3) -> None:
    """``peers/NAME`` as sstpc documents it: the transport in pppd's ``pty`` line."""
    lab.write_client_file(
        f"peers/{name}",
        f'pty "{SSTP_PPPD} --nolaunchpppd --ipparam {name} --ca-cert {lab.certs.ca.cert} '
        f'--log-stderr --log-level {log_level} {SERVER_NAME}"\n'
        f"name {USERNAME}\nremotename {name}\nipparam {name}\nlinkname {name}\n"
        + "".join(f"{o}\n" for o in (*CLIENT_PPPD, *extra))
        + "nodetach\ndebug\n",
    )
    lab.write_client_file("chap-secrets", f'"{USERNAME}" * "{PASSWORD}" *\n', 0o600)


def ours(lab: Lab, name: str) -> list[GuestProc]:
    """Our processes: anything naming the connection (pppd, the transport), and strays."""
    stray = set(leftovers(lab))
    return [
        p for p in lab.guest.processes() if name in " ".join(p.argv) or " ".join(p.argv) in stray
    ]


def snapshot(lab: Lab, name: str) -> dict[str, str]:
    """What a client run could leave in cli: ppp links, routes, our files under /run."""
    script = (
        "echo '## links'; ip -o link show | grep -o ' ppp[0-9]*:' ; "
        "echo '## routes'; ip route show table all; ip -6 route show table all | grep -v ' ppp'; "
        f"echo '## files'; ls -A {KEY_DIR} /run/sstp-pppd 2>/dev/null; "
        f"ls /run/ppp-{name}.pid 2>/dev/null; true"
    )
    out = lab.guest.sh(script, ns="cli").stdout
    parts: dict[str, str] = {}
    for chunk in out.split("## ")[1:]:
        head, _, body = chunk.partition("\n")
        parts[head.strip()] = body
    return parts


def socket_state(lab: Lab, path: str) -> str:
    """ "none", "stale" (a socket nobody accepts on) or "live", plus its inode."""
    probe = (
        "import os, socket, sys\n"
        "p = sys.argv[1]\n"
        "if not os.path.exists(p): print('none'); sys.exit()\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try: s.connect(p)\n"
        "except ConnectionRefusedError: print('stale', os.stat(p).st_ino); sys.exit()\n"
        "print('live', os.stat(p).st_ino)\n"
    )
    res = lab.guest.run(["/usr/bin/python3", "-I", "-S", "-c", probe, path], ns="cli")
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def exit_time(lab: Lab, proc: GuestProcess) -> float:
    """The guest's monotonic clock when the agent reaped ``proc``."""
    proc.wait(30)
    t: float = json.loads((lab.guest.results / f"{proc.seq}.exit.json").read_text())["t"]
    return t


def transport_of(lab: Lab, pppd: GuestProcess) -> list[GuestProc]:
    return [p for p in lab.guest.descendants(pppd.pid) if any("sstp-pppd" in a for a in p.argv[:2])]


# ----- 1. kill -9 ------------------------------------------------------------------------


def test_kill_9_of_the_transport_in_pty_mode_then_the_next_start(
    lab: Lab, case_dir: Path, sstp_server: SstpServer
) -> None:
    """pppd sees its line hang up and ends; the key socket is the one leftover kill -9
    cannot avoid, and the next start replaces it and removes it at its end."""
    name = "faults-pty"
    peers_file(lab, name)
    before = snapshot(lab, name)
    pppd = lab.pppd_call(name, "logfile", str(case_dir / "client-pppd.log"), log_dir=case_dir)
    lab.wait_for_ppp(timeout=60, proc=pppd)
    sstp_server.wait_for_log("Crypto Binding is valid.", 15)
    live = socket_state(lab, key_socket(name))
    assert live.startswith("live "), live
    (transport,) = transport_of(lab, pppd)
    lab.guest.kill(transport.pid, signal.SIGKILL)
    res = pppd.wait(30)
    assert res.returncode == PPPD_HANGUP, res.returncode
    assert lab.wait_for_no_ppp()
    assert ours(lab, name) == []
    after = snapshot(lab, name)
    assert after["links"] == before["links"] == ""
    assert after["routes"] == before["routes"]
    # kill -9 runs no cleanup: the socket file stays, but nobody accepts on it.
    # ls sorts: compare as sets (another module's sstpc may have left sstpc-lab there).
    was, now = set(before["files"].splitlines()), set(after["files"].splitlines())
    assert now - was == {f"sstpc-{name}"} and was <= now, (before["files"], after["files"])
    stale = socket_state(lab, key_socket(name))
    assert stale == "stale " + live.split()[1], stale

    lab.server.stop()  # one session per sstpd
    lab.server.start(case_dir / "again")
    again = lab.pppd_call(
        name, "logfile", str(case_dir / "client-pppd-again.log"), log_dir=case_dir / "again"
    )
    lab.wait_for_ppp(timeout=60, proc=again)
    lab.server.wait_for_log("Crypto Binding is valid.", 15)
    replaced = socket_state(lab, key_socket(name))
    assert replaced.startswith("live ") and replaced != live, (live, replaced)
    res = again.stop(20)
    assert res.returncode in (PPPD_SIGNAL, PPPD_HANGUP), res.returncode
    assert lab.wait_for_no_ppp()
    log = (case_dir / "client-pppd-again.log").read_text(errors="replace")
    assert "replaced the stale key socket" in log + again.stderr
    assert ours(lab, name) == []
    assert snapshot(lab, name) == before


def test_kill_9_of_pppd_in_launch_mode_then_the_next_start(
    lab: Lab, case_dir: Path, sstp_server: SstpServer
) -> None:
    """The transport sees pppd die, says goodbye to the server, removes its key socket and
    exits 8; pppd's pid file is the one leftover, which the next pppd replaces."""
    name = "faults-launch"
    pppd_opts = (*CLIENT_PPPD, "linkname", name)
    before = snapshot(lab, name)
    client = launch(lab, case_dir, "--ipparam", name, "--ca-cert", str(lab.certs.ca.cert),
                    pppd=pppd_opts)  # fmt: skip
    lab.wait_for_ppp(timeout=60, proc=client)
    sstp_server.wait_for_log("Crypto Binding is valid.", 15)
    assert socket_state(lab, key_socket(name)).startswith("live ")
    (pppd,) = [p for p in lab.guest.descendants(client.pid) if p.argv[0].endswith("pppd")]
    lab.guest.kill(pppd.pid, signal.SIGKILL)
    res = client.wait(30)
    assert res.returncode == EXIT_PPPD, res.stderr
    assert "pppd was killed by signal 9" in one_error_line(res.stderr)
    sstp_server.wait_for_log("Received call disconnect request.", 10)
    assert lab.wait_for_no_ppp()
    assert ours(lab, name) == []
    after = snapshot(lab, name)
    assert (after["links"], after["routes"]) == (before["links"], before["routes"])
    assert after["files"] == before["files"] + f"/run/ppp-{name}.pid\n"  # pppd's own

    lab.server.stop()
    lab.server.start(case_dir / "again")
    again_dir = case_dir / "again"
    client = launch(lab, again_dir, "--ipparam", name, "--ca-cert", str(lab.certs.ca.cert),
                    pppd=pppd_opts)  # fmt: skip
    lab.wait_for_ppp(timeout=60, proc=client)
    lab.server.wait_for_log("Crypto Binding is valid.", 15)
    res = client.stop(20)
    assert res.returncode == EXIT_OK, res.stderr
    assert lab.wait_for_no_ppp()
    assert ours(lab, name) == []
    assert snapshot(lab, name) == before


# ----- 2. the link cut ---------------------------------------------------------------------

#: The hello interval of the cut case.
HELLO = 2.0
#: What the client is given instead, to see the bound catch a client that notices too late:
#: SSTP_FAULTS_CLIENT_HELLO=30 makes the case fail on the bound.
CLIENT_HELLO = os.environ.get("SSTP_FAULTS_CLIENT_HELLO", f"{HELLO:g}")
#: The client receives nothing from the cut on, so its last packet came before it and the
#: keepalive gives up at most two hello periods after the cut. Then it hangs up pppd's line
#: (pppd exits at once on the hang-up, and the client reaps it), drops TLS without a close
#: exchange, and the interpreter exits: measured up to 1.0 s in the guest (its one slow CPU
#: shared with the agent and sstpd). 2 s still catches the 2 s wait for a TLS close the dead
#: link cannot complete, which this case found (6.97 s cut to exit, before the fix).
CUT_MARGIN = 2.0
BOUND = 2 * HELLO + CUT_MARGIN


def test_link_cut_keepalive_ends_within_two_hello_periods(
    lab: Lab, case_dir: Path, sstp_server: SstpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "faults-cut"
    before = snapshot(lab, name)
    client = launch(lab, case_dir, "--ipparam", name, "--hello-interval", CLIENT_HELLO,
                    "--ca-cert", str(lab.certs.ca.cert))  # fmt: skip
    link = lab.wait_for_ppp(timeout=60, proc=client)
    sstp_server.wait_for_log("Crypto Binding is valid.", 15)
    assert lab.ping(link.peer, count=1).returncode == 0
    loss = ["root", "netem", "loss", "100%"]
    try:
        # srv's side first: from then on the client receives nothing. The cut counts from
        # the moment tc returned (the agent's reap time, on the guest's clock).
        cut = lab.guest.spawn(["tc", "qdisc", "add", "dev", "veth-srv", *loss], ns="srv")
        t_cut = exit_time(lab, cut)
        assert cut.wait(1).returncode == 0, cut.stderr
        lab.guest.run(["tc", "qdisc", "add", "dev", "veth-cli", *loss], ns="cli", check=True)
        try:
            res = client.wait(BOUND + 10)
        except TimeoutError:
            client.kill(signal.SIGKILL)
            pytest.fail(f"the client did not notice the cut within {BOUND + 10:g} s")
        elapsed = exit_time(lab, client) - t_cut
    finally:
        for ns, dev in (("srv", "veth-srv"), ("cli", "veth-cli")):
            lab.guest.run(["tc", "qdisc", "del", "dev", dev, "root"], ns=ns)
    figure = f"keepalive: hello {CLIENT_HELLO} s, cut to exit {elapsed:.3f} s (bound {BOUND:g} s)"
    (case_dir / "keepalive.txt").write_text(figure + "\n")
    with capsys.disabled():
        print(f"\n{figure}")
    assert res.returncode == EXIT_KEEPALIVE, res.stderr
    assert "stopped answering" in one_error_line(res.stderr)
    assert elapsed <= BOUND, figure
    assert lab.wait_for_no_ppp()
    assert ours(lab, name) == []
    assert snapshot(lab, name) == before
    for ns in ("srv", "cli"):  # restored: no netem left for the modules after this one
        qd = lab.guest.run(["tc", "qdisc", "show"], ns=ns).stdout
        assert "netem" not in qd, qd


# ----- 3. the server restarted ---------------------------------------------------------------


def test_server_restarted_mid_session(lab: Lab, case_dir: Path, sstp_server: SstpServer) -> None:
    """Exit 10, "the server closed the connection": sstpd ends on SIGTERM without an SSTP
    CALL_DISCONNECT, and its exit closes the TCP connection, which the client sees at once.
    Not 9: the keepalive is for a server that goes silent (the cut above), and it would
    take two hello periods; the client is gone well before the first one ends."""
    hello = 5.0
    name = "faults-restart"
    before = snapshot(lab, name)
    client = launch(lab, case_dir, "--ipparam", name, "--hello-interval", f"{hello:g}",
                    "--ca-cert", str(lab.certs.ca.cert))  # fmt: skip
    lab.wait_for_ppp(timeout=60, proc=client)
    sstp_server.wait_for_log("Crypto Binding is valid.", 15)
    sstpd = sstp_server.proc
    assert sstpd is not None
    lab.server.stop()  # SIGTERM to sstpd and its pppd, by PID, as a service restart does
    lab.server.start(case_dir / "restarted")
    res = client.wait(30)
    after = exit_time(lab, client) - exit_time(lab, sstpd)
    assert res.returncode == EXIT_LOST, res.stderr
    assert one_error_line(res.stderr).endswith(": the server closed the connection"), res.stderr
    assert after < hello, f"the client exited {after:.2f} s after sstpd"
    assert lab.wait_for_no_ppp()
    assert ours(lab, name) == []
    assert snapshot(lab, name) == before
    fresh = launch(lab, case_dir / "restarted", "--ipparam", name,
                   "--ca-cert", str(lab.certs.ca.cert))  # fmt: skip
    link = lab.wait_for_ppp(timeout=60, proc=fresh)
    lab.server.wait_for_log("Crypto Binding is valid.", 15)
    assert lab.ping(link.peer, count=1).returncode == 0
    res = fresh.stop(20)
    assert res.returncode == EXIT_OK, res.stderr
    assert lab.wait_for_no_ppp()
    assert ours(lab, name) == []
    assert snapshot(lab, name) == before


# ----- 4. persist: 20 reconnect cycles ---------------------------------------------------------

CYCLES = 20
#: RSS the transport may vary by between cycles: each cycle's transport is a fresh process
#: doing the same work, so only allocator noise differs (measured: 12 KiB); 256 KiB still
#: catches a per-cycle leak of anything the size of a buffer or a module.
RSS_SPREAD_KIB = 256


def figures(lab: Lab, pids: list[int]) -> dict[int, tuple[int, int]]:
    """pid -> (open fds, VmRSS in KiB), from /proc in the guest."""
    script = "; ".join(
        f"echo {p} $(ls /proc/{p}/fd | wc -l) $(awk '/^VmRSS/ {{print $2}}' /proc/{p}/status)"
        for p in pids
    )
    out = lab.guest.sh(script, ns="cli").stdout.split()
    return {int(out[i]): (int(out[i + 1]), int(out[i + 2])) for i in range(0, len(out), 3)}


def next_link_up(lab: Lab, pppd: GuestProcess, log: Path, ups: int, case: Path) -> tuple[int, int]:
    """Wait for pppd's next "remote IP address" (its log, read on the host; ``ups`` were
    there before) with the binding valid at the server; returns the new count and how many
    times sstpd had to be restarted on the way.

    sstp-server 0.7.2 serves one session per process: when pppd comes back to the same
    sstpd after a call that failed (pppd 2.4.9's MS-CHAPv2 bug, see the module's notes),
    that sstpd is restarted, as the bed requires, instead of waiting out a second failure."""
    restarts = 0
    deadline = time.monotonic() + 90
    while True:
        text = log.read_text(errors="replace") if log.exists() else ""
        now = text.count("remote IP address")
        if now > ups and lab.server.crypto_binding_valid:
            return now, restarts
        if lab.server.log.count("(CALL_CONNECT_REQUEST) received") > 1:
            restarts += 1
            lab.server.stop()
            lab.server.start(case.with_name(f"{case.name}-retry{restarts}"))
        assert pppd.poll() is None, pppd.stderr
        assert time.monotonic() < deadline, "no link within 90 s"
        time.sleep(0.1)


def test_persist_reconnects_with_flat_resources(
    lab: Lab, case_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pppd's ``persist`` brings the link back after each server restart, running a new
    transport each time: the long-lived pppd and each transport hold the same fds, the
    same processes run, and the transport's RSS does not grow."""
    name = "faults-persist"
    # maxfail 0: a restarting server refuses a connect or two, which must not end pppd.
    peers_file(lab, name, "persist", "holdoff", "1", "maxfail", "0", log_level=2)
    before = snapshot(lab, name)
    log = case_dir / "client-pppd.log"
    lab.server.start(case_dir / "cycle-01")
    pppd = lab.pppd_call(name, "logfile", str(log), log_dir=case_dir)
    rows: list[tuple[int, int, int, int, int, int, float, int, str]] = []
    try:
        t0 = time.monotonic()
        ups = 0
        for cycle in range(1, CYCLES + 1):
            ups, restarts = next_link_up(lab, pppd, log, ups, case_dir / f"cycle-{cycle:02d}")
            up = time.monotonic() - t0
            lab.wait_for_ppp(timeout=10, proc=pppd)
            procs = ours(lab, name)
            transports = [p.pid for p in procs if any("sstp-pppd" in a for a in p.argv[:2])]
            assert len(transports) == 1, procs  # one at a time: none left from before
            got = figures(lab, [pppd.pid, *transports])
            kinds = ",".join(sorted(Path(p.argv[0]).name for p in procs))
            rows.append((cycle, got[pppd.pid][0], got[pppd.pid][1], len(procs),
                         got[transports[0]][0], got[transports[0]][1], up, restarts,
                         kinds))  # fmt: skip
            lab.server.stop()  # sstpd and its pppd, by PID: the session ends at the server
            t0 = time.monotonic()
            assert lab.wait_for_no_ppp(timeout=30)
            if cycle < CYCLES:
                lab.server.start(case_dir / f"cycle-{cycle + 1:02d}")
        res = pppd.stop(20)
    finally:
        table = ["cycle  pppd-fds  pppd-RSS-KiB  procs  transport-fds  transport-RSS-KiB"
                 "  down-to-up-s  sstpd-restarts"]  # fmt: skip
        table += [f"{c:5d}  {pf:8d}  {pr:12d}  {n:5d}  {tf:13d}  {tr:17d}  {up:12.1f}  {r:14d}"
                  for c, pf, pr, n, tf, tr, up, r, _ in rows]  # fmt: skip
        if rows:
            table.append(f"processes: {rows[0][8]}")
        (case_dir / "cycles.txt").write_text("\n".join(table) + "\n")
        with capsys.disabled():
            print("\n" + "\n".join(table))
    assert res.returncode in (PPPD_SIGNAL, PPPD_HANGUP, EXIT_OK), res.returncode
    assert len(rows) == CYCLES
    steady = rows[1:]
    for column, what in ((1, "pppd's fds"), (3, "the process count"), (4, "the transport's fds")):
        assert len({r[column] for r in steady}) == 1, f"{what} changed: {[r[column] for r in rows]}"
    rss = [r[5] for r in steady]
    assert max(rss) - min(rss) <= RSS_SPREAD_KIB, rss
    assert lab.wait_for_no_ppp()
    assert ours(lab, name) == []
    assert snapshot(lab, name) == before
