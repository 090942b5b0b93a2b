"""pppd in launch mode: its command line, and how it is stopped (bounded), also after the
privilege drop (a stand-in pppd on a real pty, the real CLI, TLS on loopback)."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from sstp_pppd.core import hdlc, messages
from sstp_pppd.core.messages import MessageType
from sstp_pppd.errors import ExitCode
from sstp_pppd.transport.pppd import STOP_GRACE, describe_exit, pppd_argv
from sstp_pppd.transport.privsep import Keeper

from ..core.test_pppwatch import LCP, PASSWORD, ppp
from .fakeserver import WAIT, FakeServer, ServerCert, ServerSession, make_cert
from .test_tunnel import HTTP_404, asynctest, establish, secure


def test_minimal_argv() -> None:
    argv = pppd_argv("/usr/sbin/pppd", "/dev/pts/7", user=None, password_fd=None, ipparam=None,
                     options=())  # fmt: skip
    assert argv == ["/usr/sbin/pppd", "/dev/pts/7", "nodetach"]


def test_password_goes_by_descriptor_and_user_options_come_last() -> None:
    argv = pppd_argv(
        "pppd",
        "/dev/pts/3",
        user="alice",
        password_fd=5,
        ipparam="office",
        options=("noauth", "user", "bob", "mtu", "1400"),
    )
    assert argv == [
        "pppd", "/dev/pts/3", "nodetach",
        "user", "alice",
        "plugin", "passwordfd.so", "passwordfd", "5",
        "ipparam", "office",
        # pppd takes the last of repeated options: the user's own "user bob" wins.
        "noauth", "user", "bob", "mtu", "1400",
    ]  # fmt: skip


def test_no_secret_on_the_command_line() -> None:
    # The password itself never appears: only the number of the descriptor it is read from.
    argv = pppd_argv("pppd", "/dev/pts/1", user="u", password_fd=0, ipparam=None, options=())
    assert argv[argv.index("passwordfd") + 1] == "0"
    assert argv.count("passwordfd") == 1


def test_describe_exit() -> None:
    assert describe_exit(-15) == "pppd was killed by signal 15"
    assert describe_exit(2) == "pppd rejected its options"
    assert describe_exit(250) == "pppd exited with status 250"


# ----- the real supervision, with a stand-in pppd on a real pty ------------------------------

#: A stand-in for pppd: it opens its tty raw and bridges it to the test's unix socket, ends
#: on its line's hangup (as pppd does) and, with STANDIN_TRAP_TERM, ignores SIGTERM. With
#: STANDIN_SCRIPT it has a child of its own, as pppd has while its ip-up script runs.
STANDIN = r"""
import os, select, signal, socket, subprocess, sys, tty
if os.environ.get("STANDIN_TRAP_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(5))
signal.signal(signal.SIGHUP, lambda *_: sys.exit(16))
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd)
if os.environ.get("STANDIN_SCRIPT"):
    subprocess.Popen(["sleep", "600"])
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["STANDIN_SOCK"])
while True:
    ready, _, _ = select.select([fd, s], [], [])
    if fd in ready:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            sys.exit(16)  # the line hung up
        s.sendall(data)
    if s in ready:
        data = s.recv(65536)
        if not data:
            sys.exit(0)
        os.write(fd, data)
"""


class PppdEnd:
    """The test's side of the stand-in's line: frames in and out, held until it connects."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.decoder = hdlc.Decoder()
        self.frames: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.pending: list[bytes] = []
        self.writer: asyncio.StreamWriter | None = None
        self.pid: int | None = None
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._accept, path=str(self.path))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        self.pid = struct.unpack("3i", raw)[0]
        self.writer = writer
        for data in self.pending:
            writer.write(data)
        self.pending.clear()
        while data := await reader.read(65536):
            for frame in self.decoder.feed(data):
                self.frames.put_nowait(frame)
        self.frames.put_nowait(None)

    def write_frames(self, *frames: bytes) -> None:
        data = hdlc.encode_frames(frames)
        if self.writer is None:
            self.pending.append(data)  # pppd starts after the ACK: it gets them then
        else:
            self.writer.write(data)

    async def read_frame(self) -> bytes:
        frame = await asyncio.wait_for(self.frames.get(), WAIT)
        if frame is None:
            raise AssertionError("the stand-in pppd's line closed")
        return frame

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.server is not None:
            self.server.close()


def standin(tmp_path: Path) -> Path:
    script = tmp_path / "standin_pppd.py"
    script.write_text(STANDIN)
    pppd = tmp_path / "pppd"
    pppd.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n')
    pppd.chmod(0o755)
    return pppd


def ids(pid: int) -> dict[str, list[int]]:
    """Uid, Gid (real, effective, saved, filesystem) and Groups of /proc/PID/status."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {k: [int(x) for x in fields[k].split()] for k in ("Uid", "Gid", "Groups")}


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def launched(
    tmp_path: Path, cert: ServerCert, server: FakeServer, *extra: str, env: dict[str, str]
) -> tuple[asyncio.subprocess.Process, PppdEnd, ServerSession]:
    """sstp-pppd in launch mode with the stand-in, driven to CALL_CONNECTED (PAP)."""
    end = PppdEnd(tmp_path / "line.sock")
    await end.start()
    pw = tmp_path / "password"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    argv = [sys.executable, "-m", "sstp_pppd.cli", "--log-stderr", "--log-level", "4",
            "--pppd", str(standin(tmp_path)), "--password-file", str(pw), *extra,
            *secure(cert, f"127.0.0.1:{server.port}")]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "STANDIN_SOCK": str(end.path), **env},
        start_new_session=True,
    )
    s = await establish(server, end, cert, pap=True)  # type: ignore[arg-type]
    return proc, end, s


async def finished(proc: asyncio.subprocess.Process) -> str:
    """Its stderr, once it (and the privileged part, which shares it) has exited."""
    assert proc.stderr is not None
    err = await asyncio.wait_for(proc.stderr.read(), 30)
    await asyncio.wait_for(proc.wait(), 30)
    return err.decode(errors="replace")


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> ServerCert:
    return make_cert(tmp_path_factory.mktemp("certs"), "good", ips=["127.0.0.1"])


@pytest.mark.parametrize("priv", [False, True], ids=["root", "priv-user"])
@asynctest
async def test_sigterm_kills_a_pppd_that_ignores_it_after_the_grace(
    cert: ServerCert, tmp_path: Path, priv: bool
) -> None:
    """SIGTERM to us, pppd ignores its SIGTERM: SIGKILL (to it and its script) after 5 s."""
    if priv and os.geteuid() != 0:
        pytest.skip("dropping privileges needs root")
    extra = ("--key-socket", "none", *(("--priv-user", "nobody") if priv else ()))
    env = {"STANDIN_TRAP_TERM": "1", "STANDIN_SCRIPT": "1"}
    async with FakeServer(cert) as server:
        proc, end, s = await launched(tmp_path, cert, server, *extra, env=env)
        try:
            assert end.pid is not None
            scripts = psutil.Process(end.pid).children(recursive=True)
            assert scripts
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            while not gone(end.pid):
                assert time.monotonic() - t0 < STOP_GRACE + 3, "pppd was never killed"
                await asyncio.sleep(0.05)
            waited = time.monotonic() - t0
            await s.expect(MessageType.CALL_DISCONNECT)
            s.send_packet(messages.call_disconnect_ack())
            err = await finished(proc)
        finally:
            if proc.returncode is None:
                proc.kill()
            await end.close()
    assert STOP_GRACE - 0.5 < waited < STOP_GRACE + 3, waited
    assert all(gone(p.pid) for p in scripts)
    assert "pppd did not end within 5 s of SIGTERM: killing it" in err, err
    assert "pppd was killed by signal 9" in err, err
    assert proc.returncode == ExitCode.OK, err


@asynctest
async def test_launch_mode_relay_runs_unprivileged_and_the_privileged_part_cleans_up(
    cert: ServerCert, tmp_path: Path
) -> None:
    """--priv-user in launch mode: the relay is nobody's, data flows, a root part stays to
    signal pppd and to remove the key socket from a directory only root may write."""
    if os.geteuid() != 0:
        pytest.skip("dropping privileges needs root")
    nobody = pwd.getpwnam("nobody")
    sockdir = tmp_path / "sstpc"
    sockdir.mkdir(mode=0o755)
    key_socket = sockdir / "sstpc-privtest"
    extra = ("--priv-user", "nobody", "--key-socket", str(key_socket))
    async with FakeServer(cert) as server:
        proc, end, s = await launched(tmp_path, cert, server, *extra, env={})
        try:
            assert end.pid is not None
            # The drop follows CALL_CONNECTED: poll for it.
            for _ in range(100):
                if ids(proc.pid)["Uid"] == [nobody.pw_uid] * 4:
                    break
                await asyncio.sleep(0.05)
            relay = ids(proc.pid)
            assert relay["Uid"] == [nobody.pw_uid] * 4, relay
            assert relay["Gid"] == [nobody.pw_gid] * 4, relay
            assert relay["Groups"] in ([], [nobody.pw_gid]), relay
            keepers = [p for p in psutil.Process(proc.pid).children() if p.pid != end.pid]
            assert len(keepers) == 1, keepers
            keeper = keepers[0]
            assert ids(keeper.pid)["Uid"] == [0, 0, 0, 0]
            assert ids(end.pid)["Uid"] == [0, 0, 0, 0]  # pppd stays root
            assert key_socket.is_socket()
            # Data flows both ways after the drop.
            ping, pong = ppp(LCP, 9, 3, b"ping" * 64), ppp(LCP, 9, 4, b"pong" * 64)
            end.write_frames(ping)
            assert await s.expect_data() == ping
            s.send_frames(pong)
            assert await end.read_frame() == pong
            # The relay cannot signal pppd itself: the keeper does, on its request.
            proc.send_signal(signal.SIGTERM)
            await s.expect(MessageType.CALL_DISCONNECT)
            s.send_packet(messages.call_disconnect_ack())
            err = await finished(proc)
        finally:
            if proc.returncode is None:
                proc.kill()
            await end.close()
    assert proc.returncode == ExitCode.OK, err
    assert "dropped privileges to nobody" in err, err
    assert "pppd was stopped by a signal" in err, err  # exit 5: our SIGTERM reached it
    assert gone(end.pid) and gone(keeper.pid)
    assert not key_socket.exists(), err
    assert "could not remove the key socket" not in err, err


@asynctest
async def test_launch_mode_server_lost_after_the_drop(cert: ServerCert, tmp_path: Path) -> None:
    """The server's TCP goes after the drop: one error line, exit 10, pppd and keeper gone.

    Run by an interpreter that nobody cannot read (this machine's), it also shows that the
    relay needs no import after the drop on this path."""
    if os.geteuid() != 0:
        pytest.skip("dropping privileges needs root")
    extra = ("--priv-user", "nobody", "--key-socket", "none")
    async with FakeServer(cert) as server:
        proc, end, s = await launched(tmp_path, cert, server, *extra, env={})
        try:
            assert end.pid is not None
            keepers = [p for p in psutil.Process(proc.pid).children() if p.pid != end.pid]
            await asyncio.sleep(0.3)
            s.abort_tcp()
            err = await finished(proc)
        finally:
            if proc.returncode is None:
                proc.kill()
            await end.close()
    assert proc.returncode == ExitCode.CONNECTION_LOST, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert keepers and all(gone(p.pid) for p in keepers)
    assert gone(end.pid)


@pytest.mark.parametrize("failure", ["tls", "http"])
@asynctest
async def test_launch_mode_runs_no_pppd_before_the_ack(
    cert: ServerCert, tmp_path: Path, failure: str
) -> None:
    """A failure before CALL_CONNECT_ACK is reported as itself, and no pppd was ever run.

    pppd starts after the ACK on purpose: started during the handshake, its LCP request
    waits in the core and goes out with the ACK, into the window in which sstp-server 0.7.2
    loses it (bench/README.md, "pppd started before the ACK"). Not even the plugin check
    (``pppd --version``) runs before the ACK.
    """
    ran = tmp_path / "pppd-ran"
    pppd = tmp_path / "pppd"
    # Were it started, it would fail at once: the run would end as pppd's failure.
    pppd.write_text(f'#!/bin/sh\necho "$@" >> {ran}\nexit 1\n')
    pppd.chmod(0o755)
    pw = tmp_path / "password"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    trusted = make_cert(tmp_path, "other", ips=["127.0.0.1"]) if failure == "tls" else cert
    async with FakeServer(cert) as server:
        argv = [sys.executable, "-m", "sstp_pppd.cli", "--log-stderr", "--log-level", "4",
                "--pppd", str(pppd), "--password-file", str(pw),
                "--key-socket", str(tmp_path / "keys"),
                *secure(trusted, f"127.0.0.1:{server.port}")]  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            if failure == "http":
                s = await server.accept()
                await s.read_request()
                s.send(HTTP_404)
            err = await finished(proc)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == (ExitCode.TLS if failure == "tls" else ExitCode.HTTP), err
    last = err.strip().splitlines()[-1]
    assert ("self-signed" if failure == "tls" else "404") in last, err
    assert not ran.exists(), ran.read_text()


# ----- the privileged part alone, on a real process ------------------------------------------


def test_keeper_sends_only_the_allowed_signals_and_reports_the_outcome(tmp_path: Path) -> None:
    target = subprocess.Popen(["sleep", "60"])
    seen = tmp_path / "outcome.json"
    try:
        keeper = Keeper.fork(target.pid, [lambda o: seen.write_text(json.dumps(o))])
        keeper.signal(signal.SIGUSR1, False)  # not a signal the relay may ask for
        time.sleep(0.5)
        assert target.poll() is None
        keeper.signal(signal.SIGTERM, False)
        assert target.wait(5) == -signal.SIGTERM
        asyncio.run(keeper.finish({"keep": False, "error": None, "exit_code": 0}))
    finally:
        target.kill()
        target.wait()
    assert keeper.status == 0
    assert json.loads(seen.read_text()) == {"keep": False, "error": None, "exit_code": 0}


def test_keeper_alone_kills_what_ignores_the_hangup_after_the_grace(tmp_path: Path) -> None:
    """The relay vanished (its pipe closed without a word): SIGHUP, SIGKILL after 5 s."""
    target = subprocess.Popen(["sh", "-c", "trap '' HUP TERM; while :; do sleep 0.1; done"])
    seen = tmp_path / "outcome.json"
    try:
        keeper = Keeper.fork(target.pid, [lambda o: seen.write_text(json.dumps(o))])
        time.sleep(0.3)
        t0 = time.monotonic()
        os.close(keeper._wfd)  # as a kill -9 of the relay would
        keeper._wfd = -1
        assert target.wait(STOP_GRACE + 5) == -signal.SIGKILL
        took = time.monotonic() - t0
        asyncio.run(keeper.finish(None))
    finally:
        target.kill()
        target.wait()
    assert STOP_GRACE - 0.5 < took < STOP_GRACE + 3, took
    assert json.loads(seen.read_text()) is None
