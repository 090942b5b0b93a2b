"""sstp-pppd and sstpc side by side on this machine: relay speed, CPU per GB, memory, connect.

    .venv/bin/python bench/native_bench.py [--rounds N] [--mbytes M] [--mix 1500,imix]
                                           [--pace MB/s] [--connects K] [--plot FILE] [--json FILE]

Both clients run in pty mode (``--nolaunchpppd``), as pppd's ``pty`` option would run them,
with their stdin/stdout on the master of a pty whose slave is raw. This process's children
play the two other parties, cheaply enough that neither limits the client:

- a *pppd peer* on the pty slave: it writes a precomputed RFC 1662 byte stream (frames
  escaped with ACCM 0, as pppd does once LCP is up) in 1 MiB writes, or reads what the
  client writes and looks only for the end marker frame;
- a *TLS SSTP server* on 127.0.0.1 (a fresh process per session): it answers the HTTP
  request, sends CALL_CONNECT_ACK with a SHA-256 binding request, accepts everything after
  (CALL_CONNECTED is not required: sstpc without its plugin never sends it), and sinks data
  packets (counting PPP bytes) or sources them from a precomputed buffer in 1 MiB writes.

Each transfer starts when the relay is live: the peer sends an IPCP Configure-Request
(which also ends sstp-pppd's authentication watch, so it sends CALL_CONNECTED as after a
real no-auth PPP start) until the server sees it. Figures per session and direction:

- MB/s: PPP frame bytes (what SSTP data packets carry: FF 03, protocol, payload) per
  second, from the first to the last byte at the receiving end;
- CPU s/GB: utime + stime of the client process only (``/proc/PID/stat``), read when the
  relay is live and when the last byte arrived, per 10**9 PPP bytes;
- peak RSS: VmHWM of the client at the end of the session.

``--pace R`` has the sending side (the peer up, the server down) send R MB/s, one frame
per write (pppd's line discipline writes each frame as it goes; servers send each in
its own TLS record), instead of 1 MiB writes as fast as the client takes them: a link
slower than the machine, as most are. The client then wakes for a frame or a few, so
its cost per wakeup counts, where flat out it counts less the more data waits between
wakeups (and how much waits depends on the machine's load): CPU s/GB at a set rate is
the steadier figure.

Frame mixes: ``1500`` (1500-byte frames) and ``imix`` (64, 576, 1500 bytes weighted
7:4:1, in a shuffled but fixed order). Sessions alternate sstpc and sstp-pppd (ABAB...),
N rounds. ``--connects K`` adds K connects per client against a server that sends its LCP
Configure-Request right after CALL_CONNECT_ACK and repeats it every 3 s until acknowledged,
as pppd does: connect time is from spawning the client to the peer's IPCP being
acknowledged. Nothing is asserted: the table prints medians and the ratios
sstp-pppd / sstpc from this run; the plot shows every session.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import multiprocessing.connection
import os
import pstats
import random
import select
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from sstp_pppd.core import hdlc  # noqa: E402

SSTP_PPPD = str(REPO / ".venv" / "bin" / "sstp-pppd")
SSTPC = "/usr/sbin/sstpc"
CHUNK = 1 << 20
IMIX = ((64, 7), (576, 4), (1500, 1))
#: PPP protocol of the bulk frames: IPv4, after FF 03.
_IP_HEADER = b"\xff\x03\x00\x21"
_MARKER = _IP_HEADER + b"END-OF-BENCH-TRANSFER" * 4
_IPCP_REQUEST = b"\xff\x03\x80\x21\x01\x01\x00\x0a\x03\x06\x0a\x00\x00\x01"
_CALL_CONNECT_ACK = bytes.fromhex("1001 0030 0002 0001 0004 0028 000000 02") + bytes(32)
_ECHO_RESPONSE = bytes.fromhex("1001 0008 0009 0000")
_HTTP_OK = (
    b"HTTP/1.1 200\r\nContent-Length: 18446744073709551615\r\nServer: Microsoft-HTTPAPI/2.0\r\n\r\n"
)


# ----- frames ------------------------------------------------------------------------


def frame_sizes(mix: str, total: int) -> list[int]:
    """PPP frame sizes (FF 03 and protocol included) adding up to about ``total`` bytes."""
    rng = random.Random(1)
    if mix == "1500":
        return [1500] * (total // 1500)
    pool = [size for size, weight in IMIX for _ in range(weight)]
    sizes: list[int] = []
    count = 0
    while count < total:
        size = rng.choice(pool)
        sizes.append(size)
        count += size
    return sizes


def make_frames(sizes: list[int]) -> list[bytes]:
    rng = random.Random(2)
    body = rng.randbytes(2048)
    return [_IP_HEADER + body[i % 500 : i % 500 + size - 4] for i, size in enumerate(sizes)]


def chunks(data: bytes, cut: list[int]) -> list[bytes]:
    """``data`` cut at frame boundaries into pieces of about CHUNK bytes."""
    out, start = [], 0
    for pos in cut:
        if pos - start >= CHUNK:
            out.append(data[start:pos])
            start = pos
    out.append(data[start:])
    return [c for c in out if c]


def hdlc_stream(frames: list[bytes]) -> list[bytes]:
    parts = [hdlc.encode(f, accm=0) for f in frames]
    ends, pos = [], 0
    for p in parts:
        pos += len(p)
        ends.append(pos)
    return chunks(b"".join(parts), ends)


def sstp_stream(frames: list[bytes]) -> list[bytes]:
    parts = [struct.pack("!BBH", 0x10, 0, 4 + len(f)) + f for f in frames]
    ends, pos = [], 0
    for p in parts:
        pos += len(p)
        ends.append(pos)
    return chunks(b"".join(parts), ends)


def hdlc_frames(frames: list[bytes]) -> list[bytes]:
    """One write per frame, as pppd's line discipline writes them (paced runs)."""
    return [hdlc.encode(f, accm=0) for f in frames]


def sstp_frames(frames: list[bytes]) -> list[bytes]:
    """One data packet (so one TLS record) per frame, as servers send them (paced runs)."""
    return [struct.pack("!BBH", 0x10, 0, 4 + len(f)) + f for f in frames]


def send_stream(write: Any, pieces: list[bytes], rate: float) -> None:
    """Write every piece whole (``write`` may take part and say how much): as fast as the
    reader takes them, or at ``rate`` bytes per second, sleeping (not spinning, which
    would take a core from the client) until the next piece is due."""
    start = time.monotonic()
    sent = 0
    for piece in pieces:
        if rate:
            ahead = start + sent / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            sent += len(piece)
        view = memoryview(piece)
        while view:
            view = view[write(view) :]


# ----- the server --------------------------------------------------------------------


def _lcp(code: int, ident: int, options: bytes = b"") -> bytes:
    return b"\xff\x03\xc0\x21" + struct.pack("!BBH", code, ident, 4 + len(options)) + options


def _data_packet(frame: bytes) -> bytes:
    return struct.pack("!BBH", 0x10, 0, 4 + len(frame)) + frame


_FILLER = _data_packet(_IP_HEADER + bytes(60))
_SERVER_LCP_REQUEST = _lcp(1, 1, b"\x05\x06\x12\x34\x56\x78")  # magic number only


def serve(
    listener: socket.socket,
    ctx: ssl.SSLContext,
    mode: str,
    report: multiprocessing.connection.Connection,
    payload: list[bytes],
    expected: int,
    rate: float = 0.0,
) -> None:
    """One session: HTTP, ACK, then ``sink``, ``source`` or ``lcp`` (connect test)."""
    raw, _ = listener.accept()
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = ctx.wrap_socket(raw, server_side=True)
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return
        buf += data
    buf = buf.split(b"\r\n\r\n", 1)[1]
    conn.sendall(_HTTP_OK)
    acked = False
    live = False
    lcp_acked = False
    next_lcp = 0.0
    got = 0
    first = 0.0
    while True:
        if mode == "lcp" and acked and not lcp_acked and time.monotonic() >= next_lcp:
            conn.sendall(_data_packet(_SERVER_LCP_REQUEST))
            next_lcp = time.monotonic() + 3.0
        if mode == "lcp":
            conn.settimeout(max(0.01, next_lcp - time.monotonic()) if not lcp_acked else None)
        if mode == "source" and live and not conn.pending():
            # sstpc leaves the last packets of a burst in OpenSSL's buffer until more
            # bytes come: keep the stream moving until the client goes.
            if not select.select([conn], [], [], 0.005)[0]:
                conn.sendall(_FILLER)
                continue
        try:
            data = conn.recv(CHUNK)
        except TimeoutError:
            continue
        if not data:
            return
        now = time.monotonic()
        buf = buf + data if buf else data
        pos, end = 0, len(buf)
        out: list[bytes] = []
        while end - pos >= 4:
            length = ((buf[pos + 2] & 0x0F) << 8) | buf[pos + 3]
            if end - pos < length or length < 4:
                break
            if buf[pos + 1] & 1:
                kind = buf[pos + 5]
                if kind == 1 and not acked:  # CALL_CONNECT_REQUEST
                    out.append(_CALL_CONNECT_ACK)
                    acked = True
                elif kind == 8:  # ECHO_REQUEST
                    out.append(_ECHO_RESPONSE)
            elif live and mode == "sink":
                if length == 4 + len(_IPCP_REQUEST):
                    pos += length  # a repeat of the peer's start signal
                    continue
                if not got:
                    first = now
                got += length - 4
            else:
                frame = buf[pos + 4 : pos + length]
                if mode == "lcp":
                    out.extend(_lcp_answer(frame))
                    if frame[2:4] == b"\xc0\x21" and frame[4] == 2:
                        lcp_acked = True
                elif frame == _IPCP_REQUEST and not live:
                    live = True
                    report.send(("live", now))
                    if mode == "source":
                        send_stream(conn.send, payload, rate)
            pos += length
        buf = buf[pos:]
        if out:
            conn.sendall(b"".join(out))
        if mode == "sink" and live and got >= expected:
            report.send(("done", first, now, got))
            conn.recv(1)  # until the client goes
            return


def _lcp_answer(frame: bytes) -> list[bytes]:
    """Acknowledge the peer's LCP and IPCP Configure-Requests as they are."""
    if len(frame) >= 8 and frame[2:4] in (b"\xc0\x21", b"\x80\x21") and frame[4] == 1:
        return [_data_packet(frame[:4] + b"\x02" + frame[5:])]
    return []


# ----- the pppd peer -----------------------------------------------------------------


def peer_up(
    master: int, stream: list[bytes], go: multiprocessing.connection.Connection, rate: float = 0.0
) -> None:
    """Send IPCP until the server says live, then the whole stream, then the marker."""
    ipcp = hdlc.encode(_IPCP_REQUEST, accm=0)
    while True:
        os.write(master, ipcp)
        if go.poll(0.5):
            break
    go.recv()
    send_stream(lambda piece: os.write(master, piece), stream, rate)
    go.recv()  # hold the line open until the session is over


def peer_down(master: int, report: multiprocessing.connection.Connection) -> None:
    """Send IPCP until data flows back, then read until the marker's encoding shows up."""
    ipcp = hdlc.encode(_IPCP_REQUEST, accm=hdlc.ACCM_ALL)
    marker = hdlc.encode(_MARKER)[1:-1]
    os.set_blocking(master, False)

    got = 0
    first = 0.0
    tail = b""
    last_ipcp = 0.0
    while True:
        now = time.monotonic()
        if not got and now - last_ipcp > 0.5:
            os.write(master, ipcp)
            last_ipcp = now
        select.select([master], [], [], 0.5)
        try:
            data = os.read(master, CHUNK)
        except BlockingIOError:
            continue
        now = time.monotonic()
        if not data:
            continue
        if not got:
            first = now
        got += len(data)
        if marker in tail + data[: len(marker)] or marker in data:
            report.send(("done", first, now, got))
            break
        tail = data[-len(marker) :]
    report.recv()


def peer_connect(master: int, report: multiprocessing.connection.Connection) -> None:
    """A tiny pppd: LCP request (every 3 s until acked), ack the server's, then IPCP."""

    decoder = hdlc.Decoder()
    my_lcp = _lcp(1, 7, b"\x05\x06\x01\x02\x03\x04")
    sent_at = 0.0
    lcp_acked = peer_acked = ipcp_sent = False
    while True:
        now = time.monotonic()
        if not lcp_acked and now - sent_at >= 3.0:
            os.write(master, hdlc.encode(my_lcp))
            sent_at = now
        if lcp_acked and peer_acked and not ipcp_sent:
            os.write(master, hdlc.encode(_IPCP_REQUEST))
            ipcp_sent = True
        ready, _, _ = select.select([master], [], [], 0.05)
        if not ready:
            continue
        for frame in decoder.feed(os.read(master, 65536)):
            if frame[2:4] == b"\xc0\x21" and frame[4] == 1:
                os.write(master, hdlc.encode(frame[:4] + b"\x02" + frame[5:]))
                peer_acked = True
            elif frame[2:4] == b"\xc0\x21" and frame[4] == 2:
                lcp_acked = True
            elif frame[2:4] == b"\x80\x21" and frame[4] == 2:
                report.send(("connected", time.monotonic()))
                report.recv()
                return


# ----- the sessions ------------------------------------------------------------------


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def vm_mib(pid: int, field: str = "VmHWM") -> float:
    """A memory figure of ``/proc/PID/status`` in MiB: VmHWM (peak RSS) or VmRSS (now)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def vm_hwm_mib(pid: int) -> float:
    return vm_mib(pid, "VmHWM")


def compile_tree(tree: Path) -> None:
    """Byte-compile the package as an installation has it: with PYTHONDONTWRITEBYTECODE
    set (as on this machine), every start would otherwise compile all of it from source
    (about 50 ms of CPU and 1.3 MB more peak RSS per start)."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(tree / "sstp_pppd")],
        check=True,
        stdout=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )


class Bench:
    def __init__(self, workdir: Path, source: Path | None = None, wrap: str | None = None) -> None:
        self.workdir = workdir
        self.source = source
        #: "profile" (sstp-pppd under cProfile) or "strace" (both under strace -c -f).
        self.wrap = wrap
        self.outputs: list[tuple[str, str, Path]] = []
        self.client_on_slave = False
        #: --pace, in bytes per second (0: as fast as the client takes it).
        self.rate = 0.0
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert, key = make_cert(workdir)
        self.ctx.load_cert_chain(cert, key)
        self.mp = multiprocessing.get_context("fork")
        self.logs = workdir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.count = 0
        self.streams: dict[tuple[str, int], list[bytes]] = {}

    def cached(self, kind: str, frames: list[bytes], build: Any) -> list[bytes]:
        key = (kind, id(frames))
        if key not in self.streams:
            self.streams[key] = build([*frames, _MARKER])
        return self.streams[key]

    def command(self, client: str, port: int, mode: str) -> list[str]:
        server = f"127.0.0.1:{port}"
        common = ["--nolaunchpppd", "--cert-warn", "--log-stderr", "--user", "bench"]
        out = self.logs / f"{self.count:03d}-{client}-{mode}.{self.wrap}"
        if client == "sstpc":
            cmd = [SSTPC, *common, "--password", "bench", "--ipparam", f"b{os.getpid()}", server]
        else:
            # A key socket of its own (it has one by default, as sstpc has with --ipparam):
            # /var/run/sstpc/sstpc-uds-sock may be another run's on a shared machine.
            common += ["--key-socket", str(self.workdir / f"keys-{self.count}")]
            if self.wrap == "profile":
                self.outputs.append((client, mode, out))
                return [sys.executable, "-m", "cProfile", "-o", str(out),
                        "-m", "sstp_pppd.cli", *common, server]  # fmt: skip
            if self.source is not None:
                # Another tree of the package (e.g. an older commit), run by this venv.
                cmd = [sys.executable, "-m", "sstp_pppd.cli", *common, server]
            else:
                cmd = [SSTP_PPPD, *common, server]
        if self.wrap == "strace":
            self.outputs.append((client, mode, out))
            return ["strace", "-f", "-c", "-o", str(out), *cmd]
        if self.wrap == "perf":
            # cpu-clock samples (a software event: counters are missing on some VMs).
            self.outputs.append((client, mode, out))
            return ["perf", "record", "-q", "-e", "cpu-clock", "-o", str(out), "--", *cmd]
        return cmd

    def retried(
        self, client: str, mode: str, frames: list[bytes] | None = None
    ) -> dict[str, Any] | None:
        """A session, retried once if it fails (sstpc's connect fails now and then)."""
        for attempt in (1, 2):
            try:
                result: dict[str, Any] = dict(self.session(client, mode, frames))
            except RuntimeError as exc:
                print(f"attempt {attempt} failed: {exc}", flush=True)
                continue
            result["retried"] = attempt > 1
            return result
        return None

    def session(
        self, client: str, mode: str, frames: list[bytes] | None = None
    ) -> dict[str, float]:
        """One client session; ``mode``: ``up``, ``down`` or ``connect``."""
        self.count += 1
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        master, slave = os.openpty()
        tty.setraw(slave)
        # As pppd's pty option does: the client gets the master, pppd keeps the slave
        # (with its ppp_async line discipline there). --client-on-slave swaps them.
        client_fd, peer_fd = (slave, master) if self.client_on_slave else (master, slave)
        server_end, server_report = self.mp.Pipe()
        peer_end, peer_report = self.mp.Pipe()
        procs = []
        if mode == "up":
            assert frames is not None
            if self.rate:
                stream = self.cached("hdlc-frames", frames, hdlc_frames)
            else:
                stream = self.cached("hdlc", frames, hdlc_stream)
            expected = sum(map(len, frames)) + len(_MARKER)
            srv = self.mp.Process(
                target=serve,
                args=(listener, self.ctx, "sink", server_report, [], expected, self.rate),
            )
            peer = self.mp.Process(target=peer_up, args=(peer_fd, stream, peer_report, self.rate))
        elif mode == "down":
            assert frames is not None
            if self.rate:
                payload = self.cached("sstp-frames", frames, sstp_frames)
            else:
                payload = self.cached("sstp", frames, sstp_stream)
            srv = self.mp.Process(
                target=serve,
                args=(listener, self.ctx, "source", server_report, payload, 0, self.rate),
            )
            peer = self.mp.Process(target=peer_down, args=(peer_fd, peer_report))
        else:
            srv = self.mp.Process(
                target=serve, args=(listener, self.ctx, "lcp", server_report, [], 0)
            )
            peer = self.mp.Process(target=peer_connect, args=(peer_fd, peer_report))
        procs = [srv, peer]
        srv.start()
        log = open(self.logs / f"{self.count:03d}-{client}-{mode}.log", "wb")
        started = time.monotonic()
        env = dict(os.environ)
        if self.source is not None and client == "sstp-pppd":
            env["PYTHONPATH"] = str(self.source)
        proc = subprocess.Popen(
            self.command(client, port, mode),
            stdin=client_fd,
            stdout=client_fd,
            stderr=log,
            close_fds=True,
            env=env,
            cwd=self.source or REPO,  # python -m puts the working directory first
        )
        peer.start()
        os.close(client_fd)
        listener.close()
        result: dict[str, float] = {}
        try:
            if mode == "connect":
                if not peer_end.poll(30):
                    raise RuntimeError(f"{client}: no connect in 30 s (see {log.name})")
                result["connect_s"] = peer_end.recv()[1] - started
                peer_end.send("end")
            else:
                if not server_end.poll(30):
                    raise RuntimeError(f"{client}: relay not live in 30 s (see {log.name})")
                server_end.recv()
                user0, sys0 = cpu_times(proc.pid)
                result["rss_live_mib"] = vm_mib(proc.pid, "VmRSS")
                if mode == "up":
                    peer_end.send("go")
                done_end = server_end if mode == "up" else peer_end
                if not done_end.poll(300):
                    raise RuntimeError(f"{client}: transfer not done in 300 s (see {log.name})")
                _, first, last, got = done_end.recv()
                user1, sys1 = cpu_times(proc.pid)
                result["rss_peak_mib"] = vm_hwm_mib(proc.pid)
                result["rss_end_mib"] = vm_mib(proc.pid, "VmRSS")
                ppp_bytes = sum(map(len, frames or [])) + len(_MARKER)
                result["mb_s"] = ppp_bytes / (last - first) / 1e6
                result["cpu_s_gb"] = (user1 - user0 + sys1 - sys0) / ppp_bytes * 1e9
                # Where it goes: the interpreter and OpenSSL (user) or the kernel (system).
                result["sys_s_gb"] = (sys1 - sys0) / ppp_bytes * 1e9
                result["received"] = got
                peer_end.send("end")
            result.setdefault("rss_peak_mib", vm_hwm_mib(proc.pid))
            result["exited"] = proc.poll() is not None
        finally:
            if self.wrap in ("strace", "perf"):
                # Stop the traced client, not its tracer, which then writes its summary.
                with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                    for child in f.read().split():
                        os.kill(int(child), signal.SIGTERM)
            else:
                proc.send_signal(signal.SIGINT if self.wrap else signal.SIGTERM)
            try:
                proc.wait(20 if self.wrap else 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for p in procs:
                p.join(2)
                if p.is_alive():
                    p.kill()
                    p.join()
            os.close(peer_fd)
            log.close()
        return result


def make_cert(workdir: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.invalid")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / "cert.pem", workdir / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


# ----- report ------------------------------------------------------------------------

CLIENTS = ("sstpc", "sstp-pppd")


def table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| figure | sstpc | sstp-pppd | ratio |",
        "|---|---|---|---|",
    ]

    def med(client: str, key: str, **where: str) -> float | None:
        values = [
            r[key]
            for r in runs
            if r["client"] == client and key in r and all(r[k] == v for k, v in where.items())
        ]
        return statistics.median(values) if values else None

    rows: list[tuple[str, str, dict[str, str]]] = []
    for mix in sorted({r["mix"] for r in runs if r.get("mix")}):
        for direction, arrow in (("up", "pppd → server"), ("down", "server → pppd")):
            where = {"mix": mix, "direction": direction}
            rows.append((f"{mix}: {arrow}, MB/s", "mb_s", where))
            rows.append((f"{mix}: {arrow}, CPU s/GB", "cpu_s_gb", where))
    for direction, arrow in (("up", "pppd → server"), ("down", "server → pppd")):
        where = {"direction": direction}
        rows.append((f"RSS MiB connected, before {arrow}", "rss_live_mib", where))
        rows.append((f"RSS MiB after {arrow}", "rss_end_mib", where))
        rows.append((f"peak RSS MiB, {arrow}", "rss_peak_mib", where))
    if any("connect_s" in r for r in runs):
        rows.append(("connect s (median)", "connect_s", {}))
    for label, key, where in rows:
        a, b = med("sstpc", key, **where), med("sstp-pppd", key, **where)
        if not a or b is None:
            continue  # not measured (a tracer's own figures are zero)
        lines.append(f"| {label} | {a:.2f} | {b:.2f} | **{b / a:.2f}** |")
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], path: Path) -> bool:
    try:
        # Optional (the bench extra): the table does not need it.
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        print("matplotlib missing (pip install -e .[bench]): no plot", file=sys.stderr)
        return False
    series = sorted({(r["mix"], r["direction"]) for r in runs if r.get("mix")})
    fig, axes = plt.subplots(2, len(series), figsize=(3.2 * len(series), 5), squeeze=False)
    for col, (mix, direction) in enumerate(series):
        for row, (key, label) in enumerate((("mb_s", "MB/s"), ("cpu_s_gb", "CPU s/GB"))):
            ax = axes[row][col]
            for client, marker in zip(CLIENTS, "os", strict=True):
                ys = [
                    r[key]
                    for r in runs
                    if r["client"] == client and r.get("mix") == mix and r["direction"] == direction
                ]
                ax.plot(range(1, len(ys) + 1), ys, marker=marker, label=client)
            ax.set_ylim(bottom=0)
            ax.set_xticks(range(1, max(r["round"] for r in runs) + 1))
            ax.set_xlabel("round")
            ax.set_ylabel(label)
            if row == 0:
                ax.set_title(f"{mix}, {'pppd→server' if direction == 'up' else 'server→pppd'}")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mbytes", type=int, default=64, help="PPP MB per transfer")
    parser.add_argument("--mix", default="1500,imix")
    parser.add_argument("--connects", type=int, default=0, help="connects per client")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument(
        "--pace",
        type=float,
        default=0.0,
        help="MB/s the peer (up) or server (down) sends at, a frame per write (0: flat out)",
    )
    parser.add_argument("--plot", type=Path, default=REPO / "bench" / "native_bench.png")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--client-on-slave",
        action="store_true",
        help="give the clients the pty slave (the first runs did; pppd gives them the master)",
    )
    parser.add_argument(
        "--wrap",
        choices=("profile", "strace", "perf"),
        help="diagnosis, not figures: sstp-pppd under cProfile, or both under strace -c -f "
        "or perf record (where the CPU goes: the interpreter, OpenSSL, the kernel)",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help="run sstp-pppd from this tree instead (e.g. `git archive` of an old commit)",
    )
    args = parser.parse_args()
    clients = args.clients.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="native-bench-"))
    bench = Bench(workdir, args.source, args.wrap)
    if "sstp-pppd" in clients:
        compile_tree(args.source or REPO)
    bench.client_on_slave = args.client_on_slave
    bench.rate = args.pace * 1e6
    print(f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()}")
    print(f"# logs in {bench.logs}; sstp-pppd from {args.source or REPO}")
    if args.pace:
        print(f"# paced: {args.pace:g} MB/s, one write (one TLS record down) per frame")
    mixes = {m: make_frames(frame_sizes(m, args.mbytes * 10**6)) for m in args.mix.split(",")}
    runs: list[dict[str, Any]] = []
    for rnd in range(1, args.rounds + 1):
        for mix, frames in mixes.items():
            for direction in ("up", "down"):
                for client in clients:
                    r = bench.retried(client, direction, frames)
                    if r is None:
                        continue
                    r.update(client=client, mix=mix, direction=direction, round=rnd)
                    runs.append(r)
                    print(
                        f"round {rnd} {mix:>4} {direction:>4} {client:>9}: "
                        f"{r['mb_s']:6.1f} MB/s {r['cpu_s_gb']:6.1f} CPU s/GB "
                        f"({r['sys_s_gb']:4.1f} system) peak RSS {r['rss_peak_mib']:.1f} MiB",
                        flush=True,
                    )
    for i in range(args.connects):
        for client in clients:
            r = bench.retried(client, "connect")
            if r is None:
                continue
            r.update(client=client, mix="", direction="connect", round=i + 1)
            runs.append(r)
            print(f"connect {i + 1} {client:>9}: {r['connect_s']:.3f} s", flush=True)
    print()
    print(table(runs))
    for client, mode, out in bench.outputs:
        print(f"\n## {client} {mode}: {out}")
        if not out.exists():
            continue
        if bench.wrap == "profile":
            stats = pstats.Stats(str(out))
            stats.sort_stats("tottime").print_stats(18)
        elif bench.wrap == "perf":
            for sort in ("dso", "dso,sym"):
                report = subprocess.run(
                    ["perf", "report", "-i", str(out), "--stdio", "--sort", sort],
                    check=False,
                    capture_output=True,
                    text=True,
                ).stdout
                lines = [line for line in report.splitlines() if line and line[0] != "#"]
                print("\n".join(lines[: 8 if sort == "dso" else 25]))
        else:
            print("\n".join(out.read_text().splitlines()[:14]))
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    if any(r.get("mix") for r in runs) and plot(runs, args.plot):
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
