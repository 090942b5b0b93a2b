"""pppd in launch mode: a pty of our own, pppd started on it, supervised and reaped.

The password reaches pppd through a pipe read by pppd's ``passwordfd`` plugin: it is never
in an argv, an environment or a file.

Every way of stopping pppd has a bound: SIGTERM (a signal to us: pppd ends the link with LCP
Terminate through the tunnel) and SIGHUP (the tunnel is gone) are followed by SIGKILL, to
pppd and the scripts it runs, when pppd has not ended within :data:`STOP_GRACE` seconds.
Signals go through :attr:`Pppd.signaller`: straight to the processes, or, once the relay has
given up root (:mod:`.privsep`), through the privileged part that can still reach them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

from ..errors import PppdError
from ..secrets import Secret

log = logging.getLogger(__name__)

#: pppd's exit statuses (pppd(8), EXIT STATUS).
PPPD_EXIT = {
    0: "pppd ended normally",
    1: "pppd hit a fatal error",
    2: "pppd rejected its options",
    3: "pppd is not setuid-root and needs to be",
    4: "the kernel has no PPP support (no /dev/ppp)",
    5: "pppd was stopped by a signal",
    6: "pppd could not lock the serial port",
    7: "pppd could not open the serial port",
    8: "pppd's connect script failed",
    9: "pppd's pty command could not run",
    10: "PPP negotiation failed",
    11: "the server failed to authenticate itself to pppd",
    12: "the link was idle and pppd ended it",
    13: "the connect time limit was reached",
    14: "callback was negotiated",
    15: "the server stopped answering LCP echo requests",
    16: "the link hung up",
    17: "the PPP link is looped back",
    18: "pppd's init script failed",
    19: "authentication to the server failed (wrong user name or password?)",
}

#: Exit statuses that mean the link ended the ordinary way.
PPPD_NORMAL = {0, 5, 16}
PPPD_AUTH_FAILED = 19

#: Seconds pppd has to end after SIGTERM or SIGHUP before it and its scripts get SIGKILL
#: (the man page says so). SIGTERM costs pppd one LCP Terminate exchange (a 3 s timer when
#: the server does not answer); more than that means it is stuck.
STOP_GRACE = 5.0

#: ``signaller(sig, tree)``: ``sig`` to pppd, and to its children too when ``tree``.
Signaller = Callable[[int, bool], None]


def signal_tree(pid: int, sig: int, tree: bool) -> None:
    """Signal pppd (our child, not yet reaped: its pid cannot be reused) and its children."""
    import psutil  # noqa: PLC0415 (only launch mode stops a pppd; psutil costs start-up)

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)] if tree else [proc]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def find_pppd(explicit: str | None) -> str:
    """The pppd to run: --pppd, else pppd on PATH, else /usr/sbin/pppd."""
    if explicit:
        return explicit
    import shutil  # noqa: PLC0415 (launch mode only, and shutil is not light)

    return shutil.which("pppd") or "/usr/sbin/pppd"


def open_pty() -> tuple[int, int, str]:
    """A pty pair in raw mode: (master, slave, slave path).

    The slave is made raw before pppd opens it, so nothing we write early is echoed back
    by the line discipline (a peer that reads its own LCP request rejects it).
    """
    import tty  # noqa: PLC0415 (launch mode only)

    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_inheritable(master, False)
    return master, slave, os.ttyname(slave)


def pppd_argv(
    pppd: str,
    device: str,
    *,
    user: str | None,
    password_fd: int | None,
    ipparam: str | None,
    options: tuple[str, ...],
) -> list[str]:
    """pppd's argv: our needs first, so the user's options (later on the line) win."""
    argv = [pppd, device, "nodetach"]
    if user:
        argv += ["user", user]
    if password_fd is not None:
        argv += ["plugin", "passwordfd.so", "passwordfd", str(password_fd)]
    if ipparam:
        argv += ["ipparam", ipparam]
    argv += list(options)
    return argv


class Pppd:
    """A pppd process we started, with its pty master."""

    def __init__(self, process: asyncio.subprocess.Process, master: int, slave: int) -> None:
        self.process = process
        self.master = master
        self._slave = slave
        #: How signals reach pppd: replaced by the privileged part's once root is given up.
        self.signaller: Signaller = lambda sig, tree: signal_tree(process.pid, sig, tree)
        self._escalation: asyncio.TimerHandle | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(
        cls,
        pppd: str,
        *,
        user: str | None,
        password: Secret | None,
        ipparam: str | None,
        options: tuple[str, ...],
    ) -> Pppd:
        master, slave, device = open_pty()
        read_fd = None
        pass_fds: tuple[int, ...] = ()
        if password is not None:
            read_fd, write_fd = os.pipe()
            try:
                os.write(write_fd, password.reveal_bytes())
            finally:
                os.close(write_fd)
            pass_fds = (read_fd,)
        argv = pppd_argv(
            pppd, device, user=user, password_fd=read_fd, ipparam=ipparam, options=options
        )
        # pppd's own "password X" may be among the user's options: never in the log.
        shown = ["***" if k and argv[k - 1] == "password" else a for k, a in enumerate(argv)]
        log.info("starting %s", " ".join(shown))
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=2,
                stderr=2,
                pass_fds=pass_fds,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(master)
            os.close(slave)
            raise PppdError(f"cannot start {pppd}: {exc.strerror or exc}") from exc
        finally:
            if read_fd is not None:
                os.close(read_fd)
        log.info("pppd started, pid %d, on %s", process.pid, device)
        return cls(process, master, slave)

    def terminate(self) -> None:
        """SIGTERM (pppd ends the link through us); SIGKILL if it is not gone in STOP_GRACE."""
        if self.process.returncode is not None:
            return
        self.signaller(signal.SIGTERM, False)
        if self._escalation is None:
            loop = asyncio.get_running_loop()
            self._escalation = loop.call_later(STOP_GRACE, self._escalate)

    def _escalate(self) -> None:
        self._escalation = None
        if self.process.returncode is None:
            log.warning("pppd did not end within %.0f s of SIGTERM: killing it", STOP_GRACE)
            self.signaller(signal.SIGKILL, True)

    async def stop(self, grace: float = STOP_GRACE, sig: int = signal.SIGHUP) -> int | None:
        """End pppd and its scripts; SIGKILL what is left after ``grace`` seconds.

        SIGHUP by default: the SSTP link is gone by now, so pppd must not wait for an
        LCP Terminate-Ack that cannot come (SIGTERM would cost it two 3 s timeouts).
        """
        if self.process.returncode is None:
            self.signaller(sig, True)
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                log.warning("pppd did not end within %.0f s: killing it", grace)
                self.signaller(signal.SIGKILL, True)
                try:
                    await asyncio.wait_for(self.process.wait(), grace)
                except TimeoutError:
                    # Only when nothing can reach pppd any more (the privileged part died).
                    log.error("pppd (pid %d) is still running after SIGKILL", self.pid)
        if self._escalation is not None:
            self._escalation.cancel()
            self._escalation = None
        self.close_fds()
        return self.process.returncode

    def take_master(self) -> int:
        """Hand the pty master over to the relay, which closes it."""
        master, self.master = self.master, -1
        return master

    def close_fds(self) -> None:
        for fd in (self.master, self._slave):
            if fd >= 0:
                os.close(fd)
        self.master = self._slave = -1


def describe_exit(status: int | None) -> str:
    if status is None:
        return "pppd is still running"
    if status < 0:
        return f"pppd was killed by signal {-status}"
    return PPPD_EXIT.get(status, f"pppd exited with status {status}")
