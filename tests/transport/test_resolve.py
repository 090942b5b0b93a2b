"""A slow name lookup is bounded by the connect timeout and ends at once on a signal.

The resolver is injected at the edge (``resolve(..., resolver=...)``): a real blocking
function, run in the real thread the transport starts, that stalls until the test lets it
go. In the subprocess cases the whole program runs with ``socket.getaddrinfo`` replaced by
that stall, exactly as a dead DNS server would make it block.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sstp_pppd.errors import ExitCode, NetworkError, exit_code_of
from sstp_pppd.transport.net import _ascii_name, open_tcp, resolve


@pytest.fixture
def stall() -> Iterator[tuple[threading.Event, Any]]:
    """A resolver that blocks its thread until the test ends; and the event that frees it."""
    release = threading.Event()
    started = threading.Event()

    def blocking(*_args: Any, **_kwargs: Any) -> list[Any]:
        started.set()
        release.wait(60)
        return []

    blocking.started = started  # type: ignore[attr-defined]
    try:
        yield release, blocking
    finally:
        release.set()


def test_a_stalled_lookup_times_out_naming_the_host_and_the_timeout(
    stall: tuple[threading.Event, Any],
) -> None:
    _, blocking = stall
    t0 = time.monotonic()
    with pytest.raises(NetworkError) as info:
        asyncio.run(resolve("slow.example", 443, 0.3, blocking))
    elapsed = time.monotonic() - t0
    assert 0.25 < elapsed < 2.0
    assert "slow.example" in str(info.value) and "0.3 s" in str(info.value)
    assert exit_code_of(info.value) == ExitCode.NETWORK
    assert blocking.started.is_set()  # the real thread did block


def test_open_tcp_takes_the_resolver_and_its_timeout(stall: tuple[threading.Event, Any]) -> None:
    _, blocking = stall
    with pytest.raises(NetworkError, match=r"slow\.example.*0\.2 s"):
        asyncio.run(open_tcp("slow.example", 443, 0.2, blocking))


def test_cancelling_a_stalled_lookup_returns_at_once(stall: tuple[threading.Event, Any]) -> None:
    _, blocking = stall

    async def main() -> float:
        task = asyncio.ensure_future(resolve("slow.example", 443, 60.0, blocking))
        while not blocking.started.is_set():
            await asyncio.sleep(0.01)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - t0

    t0 = time.monotonic()
    assert asyncio.run(main()) < 0.5
    # asyncio.run did not wait for the blocked thread either (it is a daemon, not the executor's).
    assert time.monotonic() - t0 < 2.0


def test_resolver_errors_become_network_errors() -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(NetworkError, match=r"cannot resolve 'nowhere\.example': Name or service"):
        asyncio.run(resolve("nowhere.example", 443, 5.0, refuse))
    with pytest.raises(NetworkError, match="not a valid host name"):
        asyncio.run(resolve("a" * 70 + ".example", 443, 5.0))


def test_a_real_lookup_still_works() -> None:
    pairs = asyncio.run(resolve("localhost", 443, 5.0))
    assert pairs and all(addr[1] == 443 for _, addr in pairs)


# ----- the whole program, with getaddrinfo stalled -----------------------------------------

#: The console script, with the stall in place of the system resolver.
STALLED = (
    "import os, socket, sys, threading\n"
    "def stall(*a, **k):\n"
    "    os.write(2, b'STUB: resolving\\n')\n"
    "    threading.Event().wait()\n"
    "socket.getaddrinfo = stall\n"
    "from sstp_pppd.scrub import main\n"
    "sys.exit(main())\n"
)


def run_stalled(*args: str) -> subprocess.Popen[bytes]:
    master, slave = os.openpty()
    argv = [sys.executable, "-c", STALLED, "--nolaunchpppd", "--log-stderr",
            "--key-socket", "none", *args, "vpn.slow.example"]  # fmt: skip
    try:
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    finally:
        os.close(slave)
    proc.master = master  # type: ignore[attr-defined]  (pppd's end stays open: not hung up)
    return proc


def wait_for_stub(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stderr is not None
    seen = b""
    while b"STUB: resolving" not in seen:
        chunk = proc.stderr.readline()
        assert chunk, seen
        seen += chunk


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_a_signal_during_a_stalled_lookup_ends_the_program_at_once(signum: int) -> None:
    proc = run_stalled("--connect-timeout", "120")
    try:
        wait_for_stub(proc)
        t0 = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()
        os.close(proc.master)  # type: ignore[attr-defined]
    text = err.decode()
    assert proc.returncode == ExitCode.INTERRUPTED, text
    assert "Traceback" not in text
    assert elapsed < 2.0, elapsed
    assert "interrupted" in text.splitlines()[-1]


def test_the_program_gives_up_on_a_stalled_lookup_with_exit_3() -> None:
    proc = run_stalled("--connect-timeout", "1")
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.wait()
        os.close(proc.master)  # type: ignore[attr-defined]
    text = err.decode()
    assert proc.returncode == ExitCode.NETWORK, text
    last = text.strip().splitlines()[-1]
    assert "vpn.slow.example" in last and "1 s" in last, text
    assert "Traceback" not in text


def test_an_ascii_name_is_resolved_without_the_idna_codec() -> None:
    """Its import (stringprep, unicodedata) is start-up time and RSS of every run."""
    probe = (
        "import asyncio, sys\n"
        "from sstp_pppd.transport.net import resolve\n"
        "assert asyncio.run(resolve('localhost', 443, 5.0))\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert "encodings.idna" not in out and "unicodedata" not in out


@pytest.mark.parametrize("host", ["a..example", "." * 2, "a" * 64 + ".example", "a" * 64])
def test_an_ascii_name_idna_would_refuse_is_refused_alike(host: str) -> None:
    with pytest.raises(NetworkError, match="not a valid host name"):
        asyncio.run(resolve(host, 443, 5.0))
    with pytest.raises(UnicodeError):
        host.encode("idna")


def test_an_international_name_still_goes_through_idna() -> None:
    seen: list[Any] = []

    def record(host: Any, *_args: Any, **_kwargs: Any) -> list[Any]:
        seen.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 443))]

    asyncio.run(resolve("bücher.example", 443, 5.0, record))
    asyncio.run(resolve("vpn.example", 443, 5.0, record))
    assert seen == ["bücher.example", b"vpn.example"]


@given(st.text(alphabet="a.-", max_size=140))
def test_ascii_names_are_refused_exactly_when_idna_refuses_them(host: str) -> None:
    try:
        host.encode("idna")
    except UnicodeError:
        with pytest.raises(NetworkError):
            _ascii_name(host)
    else:
        assert _ascii_name(host) in (host, host.encode("ascii"))
