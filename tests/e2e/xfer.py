"""A checked bulk transfer through the tunnel, run in the guest (standard library only).

    python3 -I -S xfer.py sink ADDRESS PORT            # prints "listening", then one JSON line
    python3 -I -S xfer.py source ADDRESS PORT NBYTES   # prints one JSON line

The sink accepts one connection, hashes everything until EOF, and sends its
SHA-256 back. The source sends NBYTES of random data, half-closes, and reads
that digest. Both print ``{"bytes", "sha256", "seconds"}``; the source adds
``peer_sha256`` and ``peer_bytes``, so one line tells whether the data arrived intact.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import sys
import time

CHUNK = 64 * 1024


def sink(address: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as ls:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((address, port))
        ls.listen(1)
        print("listening", flush=True)
        conn, _ = ls.accept()
    with conn:
        h = hashlib.sha256()
        n = 0
        t0 = time.monotonic()
        while data := conn.recv(CHUNK):
            h.update(data)
            n += len(data)
        seconds = time.monotonic() - t0
        reply = {"bytes": n, "sha256": h.hexdigest(), "seconds": seconds}
        conn.sendall(json.dumps(reply).encode() + b"\n")
    print(json.dumps(reply), flush=True)


def source(address: str, port: int, nbytes: int) -> None:
    rng = random.Random()
    h = hashlib.sha256()
    t0 = time.monotonic()
    with socket.create_connection((address, port), timeout=60) as s:
        left = nbytes
        while left > 0:
            data = rng.randbytes(min(CHUNK, left))
            h.update(data)
            s.sendall(data)
            left -= len(data)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    seconds = time.monotonic() - t0
    peer = json.loads(answer) if answer.strip() else {}
    print(
        json.dumps(
            {
                "bytes": nbytes,
                "sha256": h.hexdigest(),
                "seconds": seconds,
                "peer_bytes": peer.get("bytes"),
                "peer_sha256": peer.get("sha256"),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    if sys.argv[1] == "sink":
        sink(sys.argv[2], int(sys.argv[3]))
    else:
        source(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
