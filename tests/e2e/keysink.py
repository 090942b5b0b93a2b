"""A stand-in for the SSTP client's sstp-api socket, run in the guest by test_plugin.py.

    python3 -I -S keysink.py SOCKET_PATH RECORD_FILE [--no-ack]

Listens on SOCKET_PATH (AF_UNIX stream, mode 0600, parent made if missing),
prints "listening" once it does, and for each connection reads one sstp-api
message (8-byte header in host byte order: u32 magic, u16 payload length,
u16 type; then attributes u16 type, u16 length, data padded to 4 bytes),
appends it to RECORD_FILE as one JSON line and answers a bare ACK (type 3).
A malformed message is recorded with an "error" and gets no ACK; with
``--no-ack`` no message does (the connection is held open instead). SIGTERM
ends it; the socket is removed.

Standard library only and no site-packages: the guest starts it with ``-I -S``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time

MAGIC = 0x73737470
HEADER = struct.Struct("=IHH")  # host byte order, as sstp-api
ATTR = struct.Struct("=HH")
ACK = 3


def read_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def parse(raw_header: bytes, payload: bytes) -> dict[str, object]:
    magic, length, mtype = HEADER.unpack(raw_header)
    attrs = []
    off = 0
    while off < len(payload):
        if off + ATTR.size > len(payload):
            raise ValueError(f"truncated attribute header at {off}")
        atype, alen = ATTR.unpack_from(payload, off)
        data = payload[off + ATTR.size : off + ATTR.size + alen]
        if len(data) != alen:
            raise ValueError(f"attribute {atype} claims {alen} bytes, has {len(data)}")
        padded = (alen + 3) & ~3
        pad = payload[off + ATTR.size + alen : off + ATTR.size + padded]
        attrs.append({"type": atype, "len": alen, "data": data.hex(), "pad": pad.hex()})
        off += ATTR.size + padded
    if off != len(payload):
        raise ValueError(f"attributes end at {off}, payload is {len(payload)}")
    return {"magic": magic, "length": length, "type": mtype, "attrs": attrs}


def main() -> int:
    path, record = sys.argv[1], sys.argv[2]
    no_ack = "--no-ack" in sys.argv[3:]
    held = []
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        srv.bind(path)
    finally:
        os.umask(old)
    srv.listen(4)

    def stop(*_: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print("listening", flush=True)
    try:
        while True:
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(10)
                entry: dict[str, object] = {"time": time.monotonic()}
                try:
                    raw = read_exact(conn, HEADER.size)
                    _, length, _ = HEADER.unpack(raw)
                    payload = read_exact(conn, length)
                    entry.update(parse(raw, payload))
                    entry["raw"] = (raw + payload).hex()
                    if no_ack:
                        held.append(conn.dup())  # keep it open, answer nothing
                        entry["acked"] = False
                    elif entry["magic"] == MAGIC:
                        conn.sendall(HEADER.pack(MAGIC, 0, ACK))
                        entry["acked"] = True
                except (OSError, EOFError, ValueError) as e:
                    entry["error"] = str(e)
                with open(record, "a") as f:
                    f.write(json.dumps(entry) + "\n")
    finally:
        srv.close()
        os.unlink(path)


if __name__ == "__main__":
    sys.exit(main())
