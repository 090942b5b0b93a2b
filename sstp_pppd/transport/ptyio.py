"""Batched reading of pppd's line: several reads per wakeup, one callback per batch.

A pty hands out at most about 4 KiB per ``read`` (two or three full-size frames), so an
asyncio read-pipe transport wakes the loop, decodes, and writes one TLS record for every
4 KiB. :class:`BatchReader` reads on until the line is empty or ``limit`` bytes are in,
then delivers them at once: one decode, one TLS record and one ``send`` per batch.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import stat
from collections.abc import Callable

from ..errors import ConfigError, PppdError

#: /dev/null (major 1, minor 3 on Linux): a line that reads nothing and swallows all.
_DEV_NULL = (1, 3)


def check_line(read_fd: int = 0, write_fd: int = 1) -> None:
    """pty mode, before connecting: pppd's line is on ``read_fd`` and ``write_fd``.

    A descriptor that is closed, /dev/null, a file, or open the wrong way is how we were
    started, not something pppd did: a usage error (exit 2), before any traffic. A line
    that is already hung up (a pty whose master is closed, a pipe without its other end)
    is pppd gone before the tunnel was up: exit 8, as for launch mode.
    """
    poller = select.poll()
    for fd, name, want, event in (
        (read_fd, "standard input", os.O_RDONLY, select.POLLIN),
        (write_fd, "standard output", os.O_WRONLY, select.POLLOUT),
    ):
        where = f"pty mode (--nolaunchpppd) needs pppd's line on {name}"
        try:
            st = os.fstat(fd)
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            raise ConfigError(f"{where}, which is closed") from None
        if stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == _DEV_NULL:
            raise ConfigError(f"{where}, which is /dev/null")
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode)):
            raise ConfigError(f"{where}, which is a file (pppd's pty option gives a pty)")
        if flags & os.O_ACCMODE not in (want, os.O_RDWR):
            way = "reading" if want == os.O_RDONLY else "writing"
            raise ConfigError(f"{where}, which is not open for {way}")
        poller.register(fd, event)
    hung_up = select.POLLHUP | select.POLLERR | select.POLLNVAL
    for fd, revents in poller.poll(0):
        if revents & hung_up:
            name = "standard input" if fd == read_fd else "standard output"
            raise PppdError(f"pppd's line ({name}) is hung up already: pppd is gone")


#: Bytes gathered per batch before they are handed on (then the loop runs once more).
BATCH_LIMIT = 64 * 1024
#: What one read of a pty gives at most (the line discipline's buffer, less one byte).
FULL_PTY_READ = 4095


class BatchReader:
    """Reads ``fd`` (made non-blocking) whenever it is readable, in batches.

    ``on_data`` gets each batch; ``on_eof`` is called once, after the last batch, when
    the other side is gone (EOF, or EIO on a pty master). ``fd`` is owned: ``close``
    closes it.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fd: int,
        on_data: Callable[[bytes], None],
        on_eof: Callable[[], None],
        limit: int = BATCH_LIMIT,
    ) -> None:
        """Start reading ``fd`` at once."""
        self._loop = loop
        self._fd = fd
        self._on_data = on_data
        self._on_eof = on_eof
        self._limit = limit
        self._reading = False
        self._closed = False
        os.set_blocking(fd, False)
        self.resume_reading()

    def is_reading(self) -> bool:
        """Whether the descriptor is being watched."""
        return self._reading

    def is_closing(self) -> bool:
        """Whether :meth:`close` was called or the other side has gone."""
        return self._closed

    def pause_reading(self) -> None:
        """Stop reading (backpressure from the other side of the relay)."""
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def resume_reading(self) -> None:
        """Read again."""
        if not self._reading and not self._closed:
            self._loop.add_reader(self._fd, self._ready)
            self._reading = True

    def close(self) -> None:
        """Stop and close the descriptor; ``on_eof`` is not called."""
        if self._closed:
            return
        self.pause_reading()
        self._closed = True
        os.close(self._fd)

    def _ready(self) -> None:
        chunks: list[bytes] = []
        room = self._limit
        eof = False
        while room > 0:
            try:
                chunk = os.read(self._fd, room)
            except BlockingIOError:
                break
            except OSError:
                # EIO: the pty's other side is closed, which is pppd leaving. Any other
                # error leaves the line as unusable, so it ends the same way.
                eof = True
                break
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
            room -= len(chunk)
            if len(chunk) < FULL_PTY_READ:
                # A short read drained the line: no need for the read that says EAGAIN
                # (a system call costs more in a VM than the check).
                break
        if chunks:
            self._on_data(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if eof and not self._closed:
            self.close()
            self._on_eof()
