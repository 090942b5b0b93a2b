"""No PPP frame is lost while the call is set up, in either direction (pty mode).

A server like accel-ppp sends its LCP Configure-Request in the same breath as
CALL_CONNECT_ACK; pppd speaks first too, before the ACK. Losing either frame costs PPP a
3 s restart timer, so every frame of both sides must come through, in order, however the
two race. Real subprocess, real TLS, real pty, loopback only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from sstp_pppd.core import messages
from sstp_pppd.core.messages import ControlPacket, CryptoBindingRequest, MessageType

from ..core.test_pppwatch import LCP, MAGIC, MRU, ppp
from .fakeserver import HTTP_OK, NONCE, FakeServer, ServerCert, make_cert
from .test_tunnel import asynctest, secure, started

SERVER_LCP = ppp(LCP, 1, 1, MRU + MAGIC)
CLIENT_LCP = ppp(LCP, 1, 9, MAGIC)
SECOND = ppp(LCP, 9, 2, b"")  # a second frame of the server's (Discard-Request)
ROUNDS = 5
FAKE_PPPD = Path(__file__).with_name("fake_pppd.py")
FAKE_LCP = bytes.fromhex("ff03c021 0109 000a 0506 01020304")
ACK = ControlPacket(
    message_type=MessageType.CALL_CONNECT_ACK,
    attributes=(CryptoBindingRequest(hash_bitmask=3, nonce=NONCE),),
).encode()


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> ServerCert:
    return make_cert(tmp_path_factory.mktemp("certs"), "good", ips=["127.0.0.1"])


@pytest.mark.parametrize("pppd_first", [False, True], ids=["server-first", "pppd-first"])
@asynctest
async def test_frames_around_the_ack_are_all_relayed(cert: ServerCert, pppd_first: bool) -> None:
    for _ in range(ROUNDS):
        async with FakeServer(cert) as server:
            async with started(*secure(cert, f"127.0.0.1:{server.port}")) as client:
                s = await server.accept()
                await s.read_request()
                if pppd_first:
                    # pppd's first frame goes out while the HTTP exchange is still on.
                    client.write_frames(CLIENT_LCP)
                s.send(HTTP_OK)
                await s.expect(MessageType.CALL_CONNECT_REQUEST)
                # The ACK and the server's first frames in one write, as accel-ppp does.
                s.send(ACK + messages.encode_data(SERVER_LCP) + messages.encode_data(SECOND))
                if not pppd_first:
                    client.write_frames(CLIENT_LCP)
                assert await client.read_frame() == SERVER_LCP
                assert await client.read_frame() == SECOND
                assert await s.expect_data() == CLIENT_LCP


@pytest.mark.parametrize("silent", [False, True], ids=["pppd-speaks", "pppd-silent"])
@asynctest
async def test_launch_mode_holds_the_server_frames_for_pppd(
    cert: ServerCert, tmp_path: Path, silent: bool
) -> None:
    """pppd's TCSAFLUSH at start discards what we wrote before: hold it until pppd speaks.

    A ``silent`` pppd speaks only after the server's frame: it gets it after a grace time.
    """
    fake = tmp_path / "pppd"
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE_PPPD} "$@"\n')
    fake.chmod(0o755)
    async with FakeServer(cert) as server:
        argv = [sys.executable, "-m", "sstp_pppd.cli", "--log-stderr", "--log-level", "4",
                "--pppd", str(fake), *secure(cert, f"127.0.0.1:{server.port}")]  # fmt: skip
        env = {**os.environ, "FAKE_PPPD_SILENT": "1"} if silent else None
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env
        )
        try:
            s = await server.accept()
            await s.accept_call()
            s.send(ACK + messages.encode_data(SERVER_LCP) + messages.encode_data(SECOND))
            assert await s.expect_data() == FAKE_LCP  # pppd is up and has spoken
            assert proc.stderr is not None
            # Until the fake pppd has logged two frames (or 20 s): a fixed sleep lost
            # the race on a loaded machine, and a frame not yet written is no loss.
            lines: list[str] = []
            loop = asyncio.get_running_loop()
            until = loop.time() + 20
            while sum(x.startswith("fake-pppd got") for x in lines) < 2:
                left = until - loop.time()
                line = await asyncio.wait_for(proc.stderr.readline(), max(left, 0.01))
                if not line:
                    break
                lines.append(line.decode(errors="replace"))
            proc.send_signal(signal.SIGTERM)
            rest = (await asyncio.wait_for(proc.stderr.read(), 20)).decode(errors="replace")
            err = "".join(lines) + rest
            await asyncio.wait_for(proc.wait(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    got = [line.split()[-1] for line in err.splitlines() if line.startswith("fake-pppd got")]
    assert got[:2] == [SERVER_LCP.hex(), SECOND.hex()], err
