"""A pty-mode run imports nothing heavy and starts no thread (issue 10: memory, start-up).

tests/test_startup.py checks imports without running anything; this runs a whole session
(TLS, HTTP, MS-CHAPv2 binding, data both ways, CALL_DISCONNECT) in a real subprocess on a
real pty against the loopback fake server, and looks at ``sys.modules`` and the threads
as the process exits. Each module below costs start-up time and memory (pyroute2 alone is
20+ MB) and is needed only in launch mode, for routes, or for pins.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tty
from pathlib import Path

from .fakeserver import Client, FakeServer, ServerCert
from .test_tunnel import cert, certs, disconnect_acked, establish, password_file, secure

__all__ = ["cert", "certs", "password_file"]  # fixtures, used by name

#: Modules (and their submodules) a pty-mode relay must never load.
HEAVY = (
    "cryptography",  # hashlib/hmac do SHA-1, SHA-256 and HMAC; x509 only for --pin-sha256
    "psutil",  # only to stop a launched pppd
    "pyroute2",  # routes: sstp_pppd/host/, never the relay
    "sstp_pppd.host.apply",
    "uuid",  # imports platform: the correlation id is 16 random bytes
    "shutil",  # which(pppd): launch mode
    "logging.handlers",  # pickle, queue, threading...: only for syslog
    "concurrent.futures.thread",  # asyncio's default executor (a thread, a malloc arena)
    "encodings.idna",  # ssl's for a str server_hostname (stringprep, unicodedata)
    "email",
    "http",
    "multiprocessing",
    "ctypes",
)

#: Run as ``python -c``: the client, with a report of its modules and threads at exit.
PROBE = """
import atexit, json, os, runpy, sys, threading
def report():
    with open(os.environ["SSTP_TEST_REPORT"], "w") as f:
        json.dump({"modules": sorted(sys.modules), "threads": threading.active_count()}, f)
atexit.register(report)
sys.argv = ["sstp-pppd", *sys.argv[1:]]
runpy.run_module("sstp_pppd.cli", run_name="__main__")
"""


class ProbedClient(Client):
    """:class:`Client`, run through :data:`PROBE`, with a key socket (as pppd's runs have)."""

    @classmethod
    async def probed(cls, report: Path, keys: Path, *args: str) -> Client:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        argv = [sys.executable, "-c", PROBE, "--nolaunchpppd", "--log-stderr",
                "--key-socket", str(keys), *args]  # fmt: skip
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=slave,
                stdout=slave,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                env={**os.environ, "SSTP_TEST_REPORT": str(report)},
            )
        finally:
            os.close(slave)
        return cls(proc, master)


def test_a_pty_mode_session_loads_nothing_heavy(
    cert: ServerCert, password_file: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"

    async def session() -> None:
        frame = b"\xff\x03\x00\x21" + bytes(1400)
        async with FakeServer(cert) as server:
            args = secure(cert, "--password-file", str(password_file), f"127.0.0.1:{server.port}")
            client = await ProbedClient.probed(report, tmp_path / "keys", *args)
            try:
                s = await establish(server, client, cert)
                client.write_frames(frame)
                s.send_frames(frame)
                assert await s.expect_data() == frame
                assert await client.read_frame() == frame
                client.close_line()
                await disconnect_acked(s, client)
            finally:
                await client.aclose()

    asyncio.run(asyncio.wait_for(session(), 45))
    got = json.loads(report.read_text())
    loaded = {m for m in got["modules"] if any(m == h or m.startswith(h + ".") for h in HEAVY)}
    assert not loaded
    assert "sstp_pppd.transport.tunnel" in got["modules"]  # it did run the relay
    assert got["threads"] == 1
