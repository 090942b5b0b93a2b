"""pty mode: pppd's line (our stdin and stdout) missing at the start, or hung up mid-call.

At the start, before anything connects: a closed descriptor, /dev/null or a file is how we
were started (exit 2, one line); a line already hung up is pppd gone (exit 8, one line).
Mid-call, EOF on stdin (a pipe or a pty), or EPIPE on stdout, is pppd hanging up: the
call ends with CALL_DISCONNECT and exit 0. Real pipes, ptys and processes throughout.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sstp_pppd.core import messages
from sstp_pppd.core.messages import MessageType
from sstp_pppd.errors import ConfigError, ExitCode, PppdError
from sstp_pppd.transport.ptyio import check_line

from .fakeserver import Client, FakeServer, ServerCert, make_cert
from .test_tunnel import (
    LCP_REQUEST,
    PASSWORD,
    ack_disconnect,
    asynctest,
    disconnect_acked,
    establish,
    ppp,
    secure,
)

ARGS = ["--nolaunchpppd", "--log-stderr", "--key-socket", "none"]


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> ServerCert:
    return make_cert(tmp_path_factory.mktemp("certs"), "good", ips=["127.0.0.1"])


@pytest.fixture(scope="module")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    f = tmp_path_factory.mktemp("secret") / "password"
    f.write_text(PASSWORD + "\n")
    f.chmod(0o600)
    return f


# ----- check_line on real descriptors ------------------------------------------------------


def test_a_pty_and_pipes_are_lines() -> None:
    master, slave = os.openpty()
    r, w = os.pipe()
    try:
        check_line(slave, slave)
        check_line(r, slave)  # a pipe in: its writer (w) is open
    finally:
        for fd in (master, slave, r, w):
            os.close(fd)


def test_a_closed_descriptor_is_a_usage_error() -> None:
    r, w = os.pipe()
    os.close(r)
    with pytest.raises(ConfigError, match="standard input, which is closed"):
        check_line(r, w)
    os.close(w)


def test_dev_null_and_files_are_usage_errors(tmp_path: Path) -> None:
    master, slave = os.openpty()
    null = os.open(os.devnull, os.O_RDWR)
    f = os.open(tmp_path / "line", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(ConfigError, match="standard input, which is /dev/null"):
            check_line(null, slave)
        with pytest.raises(ConfigError, match="standard output, which is /dev/null"):
            check_line(slave, null)
        with pytest.raises(ConfigError, match="which is a file"):
            check_line(f, slave)
    finally:
        for fd in (master, slave, null, f):
            os.close(fd)


def test_the_wrong_direction_is_a_usage_error() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(ConfigError, match="standard input, which is not open for reading"):
            check_line(w, w)
    finally:
        os.close(r)
        os.close(w)


def test_hung_up_lines_are_pppd_gone() -> None:
    master, slave = os.openpty()
    os.close(master)  # pppd's end of its pty
    try:
        with pytest.raises(PppdError, match=r"standard input.*hung up"):
            check_line(slave, slave)
    finally:
        os.close(slave)
    r, w = os.pipe()
    os.close(r)  # nobody reads what we would write
    master, slave = os.openpty()
    try:
        with pytest.raises(PppdError, match=r"standard output.*hung up"):
            check_line(slave, w)
    finally:
        for fd in (w, master, slave):
            os.close(fd)


# ----- the program, started with a broken line ---------------------------------------------


def run_with(stdin: Any, stdout: Any, *, close: tuple[int, ...] = ()) -> tuple[int, str, float]:
    """The client against a server that must never see a connection; exit, stderr, time."""
    listener = __import__("socket").create_server(("127.0.0.1", 0))
    listener.settimeout(0)
    port = listener.getsockname()[1]
    closer = "".join(f"os.close({fd})\n" for fd in close)
    code = f"import os, sys\n{closer}from sstp_pppd.scrub import main\nsys.exit(main())\n"
    t0 = time.monotonic()
    try:
        res = subprocess.run(
            [sys.executable, "-c", code, *ARGS, f"127.0.0.1:{port}"],
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            timeout=30,
            check=False,
        )
        elapsed = time.monotonic() - t0
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing connected: the line was checked first
    finally:
        listener.close()
    return res.returncode, res.stderr.decode(), elapsed


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("fd", [0, 1], ids=["stdin", "stdout"])
def test_started_with_a_closed_descriptor(fd: int) -> None:
    master, slave = os.openpty()
    try:
        code, err, elapsed = run_with(slave, slave, close=(fd,))
    finally:
        os.close(master)
        os.close(slave)
    name = "standard input" if fd == 0 else "standard output"
    assert code == ExitCode.USAGE, err
    assert f"{name}, which is closed" in one_line(err)
    assert elapsed < 10


def test_started_on_dev_null() -> None:
    code, err, _ = run_with(subprocess.DEVNULL, subprocess.DEVNULL)
    assert code == ExitCode.USAGE, err
    assert "/dev/null" in one_line(err)


def test_started_on_a_closed_pipe() -> None:
    r, w = os.pipe()
    os.close(w)  # pppd already gone: stdin is at EOF
    master, slave = os.openpty()
    try:
        code, err, _ = run_with(r, slave)
    finally:
        for fd in (r, master, slave):
            os.close(fd)
    assert code == ExitCode.PPPD, err
    assert "hung up" in one_line(err)


def test_started_on_a_pipe_nobody_reads() -> None:
    r, w = os.pipe()
    os.close(r)
    master, slave = os.openpty()
    try:
        code, err, _ = run_with(slave, w)
    finally:
        for fd in (w, master, slave):
            os.close(fd)
    assert code == ExitCode.PPPD, err
    assert "standard output" in one_line(err) and "hung up" in err


# ----- hung up mid-call, on pipes -----------------------------------------------------------


class PipeClient(Client):
    """The client with pipes for stdin and stdout (pppd's ``pty`` gives a pty; a wrapper
    such as NetworkManager's or a test harness may give pipes)."""

    def __init__(self, proc: asyncio.subprocess.Process, to_client: int, from_client: int):
        self.to_client = to_client
        super().__init__(proc, from_client)

    @classmethod
    async def start_pipes(cls, *args: str) -> PipeClient:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        os.set_blocking(out_r, False)
        argv = [sys.executable, "-m", "sstp_pppd.cli", *ARGS, "--log-level", "4", *args]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=in_r, stdout=out_w, stderr=asyncio.subprocess.PIPE
            )
        finally:
            os.close(in_r)
            os.close(out_w)
        return cls(proc, in_w, out_r)

    def write_frames(self, *frames: bytes) -> None:
        from sstp_pppd.core import hdlc

        data = hdlc.encode_frames(frames)
        while data:
            data = data[os.write(self.to_client, data) :]

    def close_line(self) -> None:
        """pppd's writing end goes: EOF on the client's stdin."""
        if self.to_client >= 0:
            os.close(self.to_client)
            self.to_client = -1

    def stop_reading(self) -> None:
        """pppd's reading end goes: the client's next write to stdout fails (EPIPE)."""
        super().close_line()

    async def aclose(self) -> None:
        self.kill()
        await self.proc.wait()
        self.close_line()
        self.stop_reading()


async def piped_call(server_cert: ServerCert, secret: Path) -> tuple[FakeServer, PipeClient]:
    server = FakeServer(server_cert)
    await server.__aenter__()
    args = secure(server_cert, "--password-file", str(secret))
    client = await PipeClient.start_pipes(*args, f"127.0.0.1:{server.port}")
    return server, client


@asynctest
async def test_eof_on_a_stdin_pipe_mid_call_disconnects(
    cert: ServerCert, password_file: Path
) -> None:
    server, client = await piped_call(cert, password_file)
    try:
        s = await establish(server, client, cert)
        client.close_line()
        await disconnect_acked(s, client)
    finally:
        await client.aclose()
        await server.__aexit__(None, None, None)


@asynctest
async def test_epipe_on_a_stdout_pipe_mid_call_disconnects(
    cert: ServerCert, password_file: Path
) -> None:
    server, client = await piped_call(cert, password_file)
    try:
        s = await establish(server, client, cert)
        client.stop_reading()
        # Something for pppd: the write to the pipe without a reader fails.
        s.send_frames(ppp(0x0021, 0x45, 0, b"x" * 40))
        await s.expect(MessageType.CALL_DISCONNECT)
        await ack_disconnect(s, client)
    finally:
        await client.aclose()
        await server.__aexit__(None, None, None)


@asynctest
async def test_pppd_hanging_up_before_the_call_is_up_is_exit_8(
    cert: ServerCert, password_file: Path
) -> None:
    """EOF on the line after the request, before the ACK: pppd went before the tunnel was
    up, which the man page gives exit 8 (it said "interrupted", exit 11, with no signal)."""
    server, client = await piped_call(cert, password_file)
    try:
        s = await server.accept()
        await s.read_request()
        client.close_line()
        code = await client.wait()
        assert "Traceback" not in client.stderr
        last = [x for x in client.stderr.splitlines() if x.strip()][-1]
        assert code == ExitCode.PPPD, client.stderr
        assert "pppd" in last, client.stderr
    finally:
        await client.aclose()
        await server.__aexit__(None, None, None)


@asynctest
async def test_pppd_hanging_up_after_the_ack_before_call_connected_is_exit_8(
    cert: ServerCert, password_file: Path
) -> None:
    """EOF on the line after CALL_CONNECT_ACK, before PPP came up (LCP gave up): the
    tunnel never was up, which is exit 8 as in launch mode, not the clean 0 of a call
    that ends after CALL_CONNECTED."""
    server, client = await piped_call(cert, password_file)
    try:
        s = await server.accept()
        await s.accept_call()
        client.write_frames(LCP_REQUEST)
        s.send_ack()
        assert await s.expect_data() == LCP_REQUEST
        client.close_line()
        await s.expect(MessageType.CALL_DISCONNECT)
        s.send_packet(messages.call_disconnect_ack())
        code = await client.wait()
        assert "Traceback" not in client.stderr
        last = [x for x in client.stderr.splitlines() if x.strip()][-1]
        assert code == ExitCode.PPPD, client.stderr
        assert "before the tunnel was up" in last, client.stderr
    finally:
        await client.aclose()
        await server.__aexit__(None, None, None)
