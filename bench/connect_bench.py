"""Connect time of sstp-pppd and sstpc in User-Mode Linux, and frames lost during set-up.

    .venv/bin/python bench/connect_bench.py [--connects N] [--servers silent,lcp-first]
                                            [--modes pty,launch] [--json FILE]

One guest boot (tests/e2e's Lab), behind the bed's 2 ms delay on the server's veth (without
it sstpc stalls after a TLS handshake that never waited: tests/e2e/bed.py, Lab.link_delay).
For every server and mode, N connects per client, alternating (ABAB...), each against a
fresh sstpd (sstp-server 0.7.2 serves one session per process):

- servers: ``silent`` is the bed's sstpd, whose pppd runs ``silent`` (it waits for the
  client's first LCP frame); ``lcp-first`` is the same sstpd with ``silent`` left out of its
  pppd's options, so that pppd sends its LCP Configure-Request as soon as sstpd starts it,
  which sstpd does on CALL_CONNECT_REQUEST, right after CALL_CONNECT_ACK (as accel-ppp
  does; the pppd logs show it: the server's first line is ``sent [LCP ConfReq``);
- modes: ``launch`` (the client starts pppd: ``sstpc ... -- OPTIONS`` and
  ``sstp-pppd ... -- OPTIONS``), and ``pty`` (``pppd call NAME`` with a peers file
  ``pty "CLIENT --nolaunchpppd ..."``; sstpc with its ``sstp-pppd-plugin.so`` and
  ``sstp-sock`` for the binding keys, as sstp-client documents, sstp-pppd reading them from
  chap-secrets as pppd does). Both clients verify the server with ``--ca-cert``.

Connect time is host wall clock from spawning the client (launch) or pppd (pty) to ppp0 in
netns cli having a peer address (0.1 s polling in the guest). Both pppds log with ``debug``:
every LCP/IPCP/CHAP set-up packet one side's pppd logged as sent must appear in the other
side's log as received, or it counts as lost (and one received that the other side never
sent, e.g. a frame echoed back by a pty, counts as extra). Nothing is asserted: medians and
ratios sstp-pppd / sstpc, the losses with the log lines as evidence.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import json
import os
import re
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# The lab lives in the tests tree: importable once the repo root is on the path.
from tests.e2e.bed import (  # noqa: E402
    PASSWORD,
    SERVER_PPPD_OPTIONS,
    SSTP_PPPD,
    USERNAME,
    Lab,
)
from tests.e2e.certs import SERVER_NAME  # noqa: E402
from tests.e2e.pppdlog import PACKET, packets  # noqa: E402
from tests.e2e.uml import GuestError, GuestProcess  # noqa: E402

OURS, SSTPC = "sstp-pppd", "sstpc"
CLIENTS = (OURS, SSTPC)
SERVERS = {
    "silent": SERVER_PPPD_OPTIONS,
    "lcp-first": tuple(o for o in SERVER_PPPD_OPTIONS if o != "silent"),
}
MODES = ("pty", "launch")
#: The same pppd options for both clients: MS-CHAPv2 only, no routes, no compression.
CLIENT_PPPD = ("noauth", "refuse-eap", "refuse-pap", "refuse-chap", "refuse-mschap",
               "nodefaultroute", "noccp", "debug")  # fmt: skip
#: sstpd -v 5: "DEBUG: [...] sstp => pppd (24 bytes)." then "VERBOSE: [...] ff03c021...".
SSTPD_FRAME = re.compile(
    r"^(\S+ \S+) DEBUG: .*?(sstp => pppd|pppd => sstp) \(\d+ bytes\)\.?\n"
    r"\S+ \S+ VERBOSE: \[[^\]]*\] ([0-9a-f]+)$",
    re.MULTILINE,
)
PROTOCOLS = {0xC021: "LCP", 0x8021: "IPCP", 0x8057: "IPV6CP", 0xC223: "CHAP"}
CODES = {"CHAP": ("Challenge", "Response", "Success", "Failure")}
CONF_CODES = ("ConfReq", "ConfAck", "ConfNak", "ConfRej")
T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {text}", flush=True)


@dataclasses.dataclass(slots=True, kw_only=True)
class Connect:
    client: str
    server: str
    mode: str
    index: int
    case: str
    attempts: int = 0
    connect_s: float | None = None
    failures: list[str] = dataclasses.field(default_factory=list)
    #: Set-up packets one pppd logged as sent and the other never logged as received.
    lost_to_client: list[str] = dataclasses.field(default_factory=list)
    lost_to_server: list[str] = dataclasses.field(default_factory=list)
    #: Packets a pppd received that the other side never sent (an echo, a duplicate).
    extra_at_client: list[str] = dataclasses.field(default_factory=list)
    extra_at_server: list[str] = dataclasses.field(default_factory=list)
    #: How many LCP Configure-Requests each side sent (more than one: a 3 s retry).
    server_lcp_requests: int = 0
    client_lcp_requests: int = 0
    #: The first set-up packet in the server pppd's log ("sent [LCP ConfReq ..." if first).
    server_first: str = ""
    #: --verbose: where each lost frame went missing (:func:`locate`), and when sstpd's
    #: pppd process had started (its "Resume producing").
    where_lost: list[str] = dataclasses.field(default_factory=list)


def key(packet: str) -> str:
    """ "LCP ConfReq id=0x1" of a pppd debug line's packet."""
    return " ".join(packet.split()[:3])


def frame_key(frame: bytes) -> str | None:
    """The :func:`key` of a PPP frame as sstpd logs it (FF 03 optional), None if not set-up."""
    if frame[:2] == b"\xff\x03":
        frame = frame[2:]
    if len(frame) < 4:
        return None
    proto = PROTOCOLS.get(int.from_bytes(frame[:2], "big"))
    codes = CODES.get(proto or "", CONF_CODES)
    if proto is None or not 1 <= frame[2] <= len(codes):
        return None
    return f"{proto} {codes[frame[2] - 1]} id=0x{frame[3]:x}"


def sstpd_frames(log: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(from the client, from its pppd): (time, key) of the set-up frames sstpd relayed."""
    to_pppd: list[tuple[str, str]] = []
    from_pppd: list[tuple[str, str]] = []
    for m in SSTPD_FRAME.finditer(log):
        k = frame_key(bytes.fromhex(m.group(3)))
        if k is not None:
            (to_pppd if m.group(2) == "sstp => pppd" else from_pppd).append((m.group(1), k))
    return to_pppd, from_pppd


def locate(
    sent: list[str], relayed: list[tuple[str, str]], rcvd: list[str], ends: tuple[str, str]
) -> list[str]:
    """Where the frames of one direction went missing, sstpd being the witness between.

    A pppd retransmits a request with the same id, so counts per key: of ``n`` sent,
    ``r`` relayed by sstpd and ``m`` received, ``n - r`` were lost on the sender's side
    (its client, or sstpd's pppd before sstpd read it) and ``r - m`` on the receiver's."""
    n, m = collections.Counter(map(key, sent)), collections.Counter(map(key, rcvd))
    r = collections.Counter(k for _, k in relayed)
    out = []
    for k in n:
        if n[k] <= m[k]:
            continue
        times = ", ".join(t[11:] for t, kk in relayed if kk == k) or "never"
        out.append(
            f"{k}: {ends[0]} pppd sent {n[k]}, sstpd relayed {r[k]} ({times}), "
            f"{ends[1]} pppd received {m[k]}: lost {max(n[k] - r[k], 0)} on the {ends[0]}'s "
            f"side, {max(r[k] - m[k], 0)} on the {ends[1]}'s"
        )
    return out


def unmatched(sent: list[str], rcvd: list[str]) -> tuple[list[str], list[str]]:
    """(sent but never received, received but never sent), as multisets."""
    s, r = collections.Counter(sent), collections.Counter(rcvd)
    return list((s - r).elements()), list((r - s).elements())


class Bench:
    def __init__(self, lab: Lab, args: argparse.Namespace) -> None:
        self.lab = lab
        self.args = args
        ca = lab.certs.ca.cert
        # The client's /etc/ppp is private to this boot (the bed's tmp tree).
        lab.write_client_file("chap-secrets", f'"{USERNAME}" * "{PASSWORD}" *\n', 0o600)
        #: --verbose: sstp-pppd logs every frame, sstpc its packets (their stderr goes to
        #: pppd's log in pty mode), sstpd its packets.
        self.verbose = {OURS: ["--log-level", "5"], SSTPC: ["--log-level", "4"]}
        if not args.verbose:
            self.verbose = {OURS: [], SSTPC: []}
        v = {k: " ".join(a) for k, a in self.verbose.items()}
        ptys = {
            OURS: f"{SSTP_PPPD} --nolaunchpppd --ipparam cb-ours --ca-cert {ca} {v[OURS]} "
            f"{SERVER_NAME}",
            SSTPC: f"sstpc --nolaunchpppd --ipparam cb-sstpc --ca-cert {ca} --log-stderr "
            f"{v[SSTPC]} {SERVER_NAME}",
        }
        plugin = {
            OURS: "",
            SSTPC: "plugin sstp-pppd-plugin.so\nsstp-sock /var/run/sstpc/sstpc-cb-sstpc\n",
        }
        for client, ipparam in ((OURS, "cb-ours"), (SSTPC, "cb-sstpc")):
            lab.write_client_file(
                f"peers/{ipparam}",
                f'pty "{ptys[client]}"\n{plugin[client]}'
                f"name {USERNAME}\nremotename sstpd\nipparam {ipparam}\n"
                + "".join(f"{o}\n" for o in CLIENT_PPPD)
                + "nodetach\n",
            )

    def spawn(self, c: Connect, d: Path) -> GuestProcess:
        log = ["logfile", str(d / "client-pppd.log")]
        if c.mode == "pty":
            name = "cb-ours" if c.client == OURS else "cb-sstpc"
            return self.lab.pppd_call(name, *log, log_dir=d)
        ca = str(self.lab.certs.ca.cert)
        if c.client == SSTPC:
            argv = ["sstpc", "--ca-cert", ca, "--user", USERNAME, "--password", PASSWORD,
                    "--log-stderr", *self.verbose[SSTPC], SERVER_NAME, "--", *CLIENT_PPPD,
                    *log]  # fmt: skip
        else:
            pw = d / "password"
            pw.write_text(PASSWORD + "\n")
            pw.chmod(0o600)
            argv = [str(SSTP_PPPD), "--ca-cert", ca, "--user", USERNAME, "--password-file",
                    str(pw), *self.verbose[OURS], SERVER_NAME, "--", *CLIENT_PPPD,
                    *log]  # fmt: skip
        return self.lab.guest.spawn(argv, ns="cli", log_dir=d, name=c.client)

    def connect(self, c: Connect) -> None:
        """A fresh sstpd, the client until ppp0 is up, then both logs compared; one retry."""
        case = self.lab.new_case(f"{c.server}-{c.mode}-{c.client}-{c.index}")
        c.case = str(case)
        for attempt in (1, 2):
            c.attempts = attempt
            d = case if attempt == 1 else case / f"attempt{attempt}"
            try:
                self.lab.server.start(
                    d,
                    pppd_options=SERVERS[c.server],
                    extra_args=["-v", "5"] if self.args.verbose else [],
                )
            except GuestError as e:
                c.failures.append(f"sstpd did not start: {e}")
                self.lab.guest.kill_all(grace=2.0)
                continue
            t0 = time.monotonic()
            proc = self.spawn(c, d)
            try:
                self.lab.wait_for_ppp(timeout=30, proc=proc)
            except GuestError as e:
                err = proc.stderr.strip().splitlines()
                c.failures.append(f"{e}; last line: {err[-1] if err else '(none)'}")
                say(f"  {c.client} {c.mode} {c.server}: attempt {attempt} failed: {c.failures[-1]}")
                self.end(proc)
                continue
            c.connect_s = time.monotonic() - t0
            # Both pppds have logged their side of the set-up by now: ppp0 has a peer.
            self.compare_logs(c, d)
            self.end(proc)
            return

    def compare_logs(self, c: Connect, d: Path) -> None:
        client_log = (d / "client-pppd.log").read_text(errors="replace")
        server_log = self.lab.server.pppd_log_text
        c_sent, c_rcvd = packets(client_log)
        s_sent, s_rcvd = packets(server_log)
        c.lost_to_client, c.extra_at_client = unmatched(s_sent, c_rcvd)
        c.lost_to_server, c.extra_at_server = unmatched(c_sent, s_rcvd)
        c.server_lcp_requests = sum(p.startswith("LCP ConfReq") for p in s_sent)
        c.client_lcp_requests = sum(p.startswith("LCP ConfReq") for p in c_sent)
        first = PACKET.search(server_log)
        c.server_first = first.group(0) if first else ""
        if self.args.verbose and (c.lost_to_client or c.lost_to_server):
            log = self.lab.server.log
            to_pppd, from_pppd = sstpd_frames(log)
            c.where_lost = locate(c_sent, to_pppd, s_rcvd, ("client", "server"))
            c.where_lost += locate(s_sent, from_pppd, c_rcvd, ("server", "client"))
            up = re.search(r"^\S+ (\S+) DEBUG: .*Resume producing", log, re.MULTILINE)
            c.where_lost.append(f"sstpd's pppd process started {up.group(1) if up else '?'}")

    def end(self, proc: GuestProcess) -> None:
        """Stop the client (or its pppd), then sstpd and its pppd, then what is left."""
        if proc.poll() is None:
            proc.stop(20)
        self.lab.wait_for_no_ppp()
        self.lab.server.stop(grace=1.0)
        self.lab.guest.kill_all(grace=2.0)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summary(results: list[Connect]) -> list[dict[str, Any]]:
    """One row per (server, mode): medians per client and the ratio."""
    rows = []
    for server in dict.fromkeys(c.server for c in results):
        for mode in dict.fromkeys(c.mode for c in results if c.server == server):
            row: dict[str, Any] = {"server": server, "mode": mode}
            for client in CLIENTS:
                cs = [c for c in results if (c.server, c.mode, c.client) == (server, mode, client)]
                times = [c.connect_s for c in cs if c.connect_s is not None]
                row[client] = {
                    "median_s": median(times),
                    "min_s": min(times, default=None),
                    "max_s": max(times, default=None),
                    "connects": len(times),
                    "failed": len(cs) - len(times),
                    "retried": sum(c.attempts > 1 for c in cs),
                    "with_loss": sum(bool(c.lost_to_client or c.lost_to_server) for c in cs),
                    "with_extra": sum(bool(c.extra_at_client or c.extra_at_server) for c in cs),
                    "lcp_retry": sum(
                        c.server_lcp_requests > 1 or c.client_lcp_requests > 1 for c in cs
                    ),
                }
            ours, ref = row[OURS]["median_s"], row[SSTPC]["median_s"]
            row["ratio"] = ours / ref if ours is not None and ref else None
            rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    lines = [
        "| server | mode | sstpc s | sstp-pppd s | ratio | sstpc lost/extra/LCP retry "
        "| sstp-pppd lost/extra/LCP retry | connects |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, b = r[SSTPC], r[OURS]
        n = f"{a['connects']}/{b['connects']}"
        lines.append(
            f"| {r['server']} | {r['mode']} | {f(a['median_s'])} | {f(b['median_s'])} "
            f"| **{f(r['ratio'])}** | {a['with_loss']}/{a['with_extra']}/{a['lcp_retry']} "
            f"| {b['with_loss']}/{b['with_extra']}/{b['lcp_retry']} | {n} |"
        )
    return "\n".join(lines)


def losses(results: list[Connect]) -> list[str]:
    out = []
    for c in results:
        for what, frames in (
            ("lost server -> client", c.lost_to_client),
            ("lost client -> server", c.lost_to_server),
            ("extra at client", c.extra_at_client),
            ("extra at server", c.extra_at_server),
        ):
            for frame in frames:
                out.append(
                    f"{c.client} {c.mode} {c.server} #{c.index}: {what}: [{frame}] ({c.case})"
                )
        out += [f"    {where}" for where in c.where_lost]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connects", type=int, default=20, help="connects per client and case (20)")
    ap.add_argument("--servers", default=",".join(SERVERS), help="silent,lcp-first")
    ap.add_argument("--modes", default=",".join(MODES), help="pty,launch")
    ap.add_argument("--clients", default=",".join(CLIENTS), help="sstp-pppd,sstpc")
    ap.add_argument(
        "--verbose",
        action="store_true",
        help="clients and sstpd log every packet (for evidence, not for timing)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    servers = args.servers.split(",")
    modes = args.modes.split(",")
    for s in servers:
        if s not in SERVERS:
            ap.error(f"unknown server {s!r}")
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r}")
    started = datetime.datetime.now().astimezone()
    load0 = os.getloadavg()
    say(f"{started:%Y-%m-%d %H:%M %Z}, {os.cpu_count()} CPUs, load average "
        + " ".join(f"{x:.2f}" for x in load0) + "; booting User-Mode Linux...")  # fmt: skip
    results: list[Connect] = []
    with Lab() as lab, lab.link_delay(2):
        say(f"guest up; logs in {lab.run_dir}")
        bench = Bench(lab, args)
        for server in servers:
            for mode in modes:
                for i in range(1, args.connects + 1):
                    for client in args.clients.split(","):
                        c = Connect(client=client, server=server, mode=mode, index=i, case="")
                        bench.connect(c)
                        results.append(c)
                        lost = len(c.lost_to_client) + len(c.lost_to_server)
                        say(f"{server:9} {mode:6} {client:9} #{i}: "
                            + (f"{c.connect_s:.2f} s" if c.connect_s else "failed")
                            + f", LCP ConfReq sent srv {c.server_lcp_requests} "
                            f"cli {c.client_lcp_requests}, lost {lost}"
                            + (f", attempts {c.attempts}" if c.attempts > 1 else ""))  # fmt: skip
        run_dir = lab.run_dir
    rows = summary(results)
    load1 = os.getloadavg()
    print(f"\nconnect s, start -> address on ppp0, medians ({args.connects} connects each)")
    print(table(rows))
    print(
        "lost/extra/LCP retry: connects with a set-up frame lost / received but never sent"
        " / more than one LCP Configure-Request from either side"
    )
    for line in losses(results):
        print("  " + line)
    firsts = collections.Counter((c.server, c.server_first.split(" id=")[0]) for c in results)
    for (server, first), n in sorted(firsts.items()):
        print(f"server {server}: first set-up line of its pppd {first!r} in {n} connects")
    for c in results:
        for f in c.failures:
            print(f"  {c.client} {c.mode} {c.server} #{c.index}: {f}")
    wall = time.monotonic() - T0
    print(f"load average at the start {load0[0]:.2f}, at the end "
          + " ".join(f"{x:.2f}" for x in load1) + f"; wall {wall:.0f} s")  # fmt: skip
    data = {
        "date": started.isoformat(), "loadavg_start": load0, "loadavg_end": load1,
        "args": {k: str(v) for k, v in vars(args).items()}, "summary": rows,
        "connects": [dataclasses.asdict(c) for c in results],
    }  # fmt: skip
    out = run_dir / "connect_bench.json"
    out.write_text(json.dumps(data, indent=1))
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    print(f"raw figures: {out}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # so the Lab powers off
    sys.exit(main())
