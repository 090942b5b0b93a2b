"""SIGINT and SIGTERM at any moment of a run end it with one line and the documented code.

Real subprocesses started exactly as the ``sstp-pppd`` console script starts (``from
sstp_pppd.scrub import main``), on a raw pty as pppd's ``pty`` option gives it, against a
server on 127.0.0.1 that stalls: at the TCP level (the TLS handshake never completes) or
after the handshake (the HTTP request is never answered). The signal comes after a delay
from 0 ms to 1 s after the interpreter's own start-up (imports, parsing,
resolving, connecting), or once the server has seen the
connection or the handshake (so the phase is certain, whatever the machine's load).

Before the interpreter has run a line of ours the kernel's default action may still end
the process (killed by the signal: no output at all); from then on it is exit 11
(``ExitCode.INTERRUPTED``, "interrupted by a signal before the tunnel was up", as the man
page documents), with at most one line and never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Iterator

import pytest

from sstp_pppd.errors import ExitCode
from tests.transport.fakeserver import ServerCert, make_cert

#: The console script's own code (setup.cfg: sstp-pppd = sstp_pppd.scrub:main).
ENTRY = "import sys\nfrom sstp_pppd.scrub import main\nsys.exit(main())\n"
WAIT = 20.0


class StallingServer:
    """Accepts on 127.0.0.1 and then stalls: before TLS (``tls=False``) or after it."""

    def __init__(self, cert: ServerCert, *, tls: bool) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.ctx: ssl.SSLContext | None = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert.cert_file, cert.key_file)
        self.reached = threading.Event()  # a connection accepted (and TLS done, with tls)
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)
            if self.ctx is not None:
                conn.settimeout(WAIT)
                try:
                    conn = self.ctx.wrap_socket(conn, server_side=True)
                except OSError:
                    continue
                self.held.append(conn)
            self.reached.set()

    def close(self) -> None:
        self.listener.close()
        for s in self.held:
            s.close()


@contextlib.contextmanager
def stalling(cert: ServerCert, *, tls: bool) -> Iterator[StallingServer]:
    server = StallingServer(cert, tls=tls)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> ServerCert:
    return make_cert(tmp_path_factory.mktemp("signals"), "server", ips=("127.0.0.1",))


def start(
    cert: ServerCert, port: int, *extra: str, host: str = "localhost"
) -> subprocess.Popen[bytes]:
    """The client in pty mode on a raw pty (closed on our side when the test ends)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    argv = [sys.executable, "-c", ENTRY, "--nolaunchpppd", "--log-stderr",
            "--key-socket", "none", "--ca-cert", str(cert.cert_file),
            "--connect-timeout", "30", *extra, f"{host}:{port}"]  # fmt: skip
    try:
        proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=subprocess.PIPE, start_new_session=True
        )
    finally:
        os.close(slave)
    proc.master = master  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"no exit after the signal; stderr:\n{err.decode()}") from None
    finally:
        os.close(proc.master)  # type: ignore[attr-defined]
    return proc.returncode, err.decode(errors="replace")


def check(code: int, err: str, signum: int, *, ours: bool) -> None:
    """``ours``: our code runs by then, so the kernel's default action is no excuse."""
    assert "Traceback" not in err, err
    assert "Fatal Python error" not in err, err
    allowed = {ExitCode.INTERRUPTED} if ours else {ExitCode.INTERRUPTED, -signum}
    assert code in allowed, (code, err)
    if code == ExitCode.INTERRUPTED:
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines, "no line said why"
        assert "interrupted" in lines[-1], err
        assert lines[-1].startswith("sstp-pppd"), err
    else:
        assert not err.strip(), err


DELAYS_MS = (0, 1, 3, 10, 20, 40, 70, 100, 150, 250, 400, 700, 1000)


@pytest.fixture(scope="module")
def interpreter_start() -> float:
    """Seconds until the console script's first line of ours runs (the fastest of three).

    Before it, Python itself starts (``site`` and its .pth files): a SIGINT there makes
    the interpreter print its own traceback, which no line of the package can prevent
    (only a launcher started with ``python -S`` could). The delays below count from twice
    that, and 20 ms more: the machine is shared, start-up times vary.
    """
    runs = []
    for _ in range(3):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "import sstp_pppd.scrub"], check=True)
        runs.append(time.monotonic() - t0)
    return 2 * min(runs) + 0.02


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
@pytest.mark.parametrize("delay_ms", DELAYS_MS)
def test_a_signal_after_a_delay(
    cert: ServerCert, interpreter_start: float, signum: int, delay_ms: int
) -> None:
    with stalling(cert, tls=True) as server:
        proc = start(cert, server.port)
        time.sleep(interpreter_start + delay_ms / 1000)
        proc.send_signal(signum)
        code, err = finish(proc)
    check(code, err, signum, ours=True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
@pytest.mark.parametrize("tls", [False, True], ids=["tcp-stall", "http-stall"])
def test_a_signal_while_the_server_stalls(cert: ServerCert, signum: int, tls: bool) -> None:
    with stalling(cert, tls=tls) as server:
        proc = start(cert, server.port)
        assert server.reached.wait(WAIT), "the client never connected"
        time.sleep(0.2)  # into the wait for the handshake's answer / the HTTP reply
        proc.send_signal(signum)
        code, err = finish(proc)
    check(code, err, signum, ours=True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_two_signals_in_a_row(cert: ServerCert, signum: int) -> None:
    with stalling(cert, tls=True) as server:
        proc = start(cert, server.port)
        assert server.reached.wait(WAIT)
        proc.send_signal(signum)
        proc.send_signal(signum)
        code, err = finish(proc)
    check(code, err, signum, ours=True)


def test_launch_mode_too(cert: ServerCert) -> None:
    """A launch-mode run too (pppd is never started: the server stalls before the ACK)."""
    with stalling(cert, tls=True) as server:
        argv = [sys.executable, "-c", ENTRY, "--log-stderr", "--key-socket", "none",
                "--ca-cert", str(cert.cert_file), f"localhost:{server.port}"]  # fmt: skip
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert server.reached.wait(WAIT)
        proc.send_signal(signal.SIGTERM)
        _, err_b = proc.communicate(timeout=WAIT)
    check(proc.returncode, err_b.decode(), signal.SIGTERM, ours=True)
