"""Launch mode with ``--priv-user``: a small privileged part beside the unprivileged relay.

pppd runs as root, so a process that gave root up can neither signal it nor undo what was
done as root (the key socket in ``/var/run/sstpc``, the routes and DNS of the record). Once
the call is up, the session forks a *keeper* and only then drops privileges:

* the **relay** (the original process, the one systemd, the record and the status know):
  TLS, the pty master, the key channel's listening socket, and reaping pppd (its child:
  reaping needs no privilege). It ends pppd by closing the pty master (pppd exits on the
  hangup of its line) and asks the keeper for signals through a pipe;
* the **keeper** (root, a forked child): it closes every descriptor but that pipe, its
  pidfd of pppd and the log's, and then only reads the pipe. It sends pppd the signals
  asked for (SIGTERM, SIGHUP, SIGKILL, nothing else); when the pipe ends (the relay says
  ``done``, or dies) it makes sure pppd is gone (SIGHUP, then SIGKILL after
  :data:`~.pppd.STOP_GRACE`), then runs the privileged cleanups (the key socket, the host
  undo given by the caller) and exits.

From the relay it trusts only signal numbers from that short list and one bounded line of
outcome (for the status file and the kill switch). The keeper never touches the event loop
it inherited: it closes the epoll descriptor first (the instance is shared with the relay),
ignores the terminal's signals (the relay handles them and tells it), and leaves with
``os._exit``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType

from .pppd import STOP_GRACE

__all__ = ["KEEPER_WAIT", "Keeper", "Outcome"]

log = logging.getLogger(__name__)

#: What the relay reports at its end: ``None`` when it vanished without a word.
Outcome = Mapping[str, object] | None
#: A privileged cleanup, run by the keeper once pppd is gone (exceptions are logged).
Cleanup = Callable[[Outcome], None]

#: The signals the relay may ask for; anything else is refused.
ALLOWED = frozenset({signal.SIGTERM, signal.SIGHUP, signal.SIGKILL})
#: A longer line from the relay is refused (and ends the keeper's listening).
MAX_LINE = 4096
#: How long the relay waits for the keeper's cleanup at the end: pppd's grace and its kill,
#: the host undo, with room to spare. The keeper goes on alone after that.
KEEPER_WAIT = 2 * STOP_GRACE + 20.0


def _log_fds() -> set[int]:
    """The descriptors the log handlers write to: the keeper keeps them."""
    fds: set[int] = set()
    for name in ("sstp_pppd", ""):
        for h in logging.getLogger(name).handlers:
            with contextlib.suppress(AttributeError, ValueError, OSError):
                # A SysLogHandler's socket, found by name: importing logging.handlers to
                # test the class would load it (pickle, queue...) on every run.
                sock = getattr(h, "socket", None)
                if sock is not None and hasattr(sock, "fileno"):
                    fds.add(sock.fileno())
                elif isinstance(h, logging.StreamHandler):
                    fds.add(h.stream.fileno())
    return {fd for fd in fds if fd >= 0}


def _signal_tree(pid: int, pidfd: int, sig: int, tree: bool) -> None:
    """``sig`` to pppd by its pidfd (no pid reuse race), and to its children with ``tree``."""
    children = []
    if tree:
        import psutil  # noqa: PLC0415 (only the keeper needs it)

        with contextlib.suppress(psutil.Error):
            children = psutil.Process(pid).children(recursive=True)
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, sig)
    for child in children:
        with contextlib.suppress(Exception):
            child.send_signal(sig)


def _gone(pidfd: int, timeout: float) -> bool:
    """Whether pppd has exited (its pidfd turns readable), waiting up to ``timeout``."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000))


class Keeper:
    """The relay's handle on the privileged part: ``signal``, then ``finish``."""

    def __init__(self, pid: int, wfd: int, json: ModuleType) -> None:
        self.pid = pid
        self._wfd = wfd
        self._json = json
        self.status: int | None = None

    @classmethod
    def fork(cls, pppd_pid: int, cleanups: Iterable[Cleanup]) -> Keeper:
        """Fork the keeper of ``pppd_pid``; OSError if that cannot be done."""
        # Loaded here, still as root, not at the top (a pty-mode run never needs it), and
        # kept for the relay's finish(): after the drop, the venv's files (under /root)
        # may be unreadable, so an import then would fail.
        import json  # noqa: PLC0415

        pidfd = os.pidfd_open(pppd_pid)
        rfd, wfd = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            for fd in (pidfd, rfd, wfd):
                os.close(fd)
            raise
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            code = 1
            try:
                code = _keep(pppd_pid, pidfd, rfd, list(cleanups), json)
            finally:
                os._exit(code)
        os.close(pidfd)
        os.close(rfd)
        os.set_inheritable(wfd, False)
        log.info("privileged part forked: pid %d keeps pppd (pid %d)", pid, pppd_pid)
        return cls(pid, wfd, json)

    def _send(self, line: str) -> bool:
        if self._wfd < 0:
            return False
        try:
            os.write(self._wfd, line.encode() + b"\n")
        except OSError as exc:
            log.warning("the privileged part is gone (%s): pppd ends on its line's hangup", exc)
            return False
        return True

    def signal(self, sig: int, tree: bool) -> None:
        """Ask for ``sig`` to pppd (and its children with ``tree``)."""
        self._send(f"kill {int(sig)} {int(tree)}")

    async def finish(self, outcome: Outcome) -> int | None:
        """Report the outcome, close the pipe, wait (bounded) for the keeper's cleanup."""
        import asyncio  # noqa: PLC0415

        if self._wfd >= 0:
            if outcome is not None:
                self._send("done " + self._json.dumps(dict(outcome), default=str)[: MAX_LINE - 8])
            os.close(self._wfd)
            self._wfd = -1
        deadline = time.monotonic() + KEEPER_WAIT
        while self.status is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                log.warning("the privileged part is still cleaning up after %.0f s", KEEPER_WAIT)
                break
            await asyncio.sleep(0.05)
        return self.status


def _keep(pppd_pid: int, pidfd: int, rfd: int, cleanups: list[Cleanup], json: ModuleType) -> int:
    """The keeper's whole life (in the forked child); its exit code. ``json``: the module,
    imported by the parent before the fork."""
    keep = {0, 1, 2, pidfd, rfd, *_log_fds()}
    # First of all: the inherited epoll instance, sockets, the pty master and the write end
    # of our own pipe go. Holding the master would keep pppd's line from hanging up.
    for fd in sorted(set(os.listdir("/proc/self/fd")) - {str(k) for k in keep}, key=int):
        with contextlib.suppress(OSError):
            os.close(int(fd))
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_IGN)
    outcome: dict[str, object] | None = None
    buf = b""
    while True:
        try:
            data = os.read(rfd, 4096)
        except InterruptedError:  # pragma: no cover
            continue
        if not data:
            break
        buf += data
        if b"\n" not in buf and len(buf) > MAX_LINE:
            log.warning("privileged part: an overlong line from the relay; ending")
            break
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            word, _, rest = line.decode("utf-8", "replace").partition(" ")
            if word == "kill":
                try:
                    sig, tree = (int(x) for x in rest.split())
                except ValueError:
                    sig, tree = -1, 0
                if sig not in ALLOWED:
                    log.warning("privileged part: refused signal %r for pppd", rest)
                    continue
                _signal_tree(pppd_pid, pidfd, sig, bool(tree))
            elif word == "done":
                try:
                    parsed = json.loads(rest)
                except ValueError:
                    parsed = None
                outcome = parsed if isinstance(parsed, dict) else None
    # The relay is done or gone: pppd must go too, within a bound, before the cleanup.
    if not _gone(pidfd, 0):
        _signal_tree(pppd_pid, pidfd, signal.SIGHUP, True)
        if not _gone(pidfd, STOP_GRACE):
            log.warning("pppd did not end within %.0f s of SIGHUP: killing it", STOP_GRACE)
            _signal_tree(pppd_pid, pidfd, signal.SIGKILL, True)
            _gone(pidfd, STOP_GRACE)
    code = 0
    for cleanup in cleanups:
        try:
            cleanup(outcome)
        except Exception as exc:  # noqa: BLE001 - each cleanup runs whatever the others did
            log.warning("privileged part: cleanup failed: %s", exc)
            code = 1
    return code
