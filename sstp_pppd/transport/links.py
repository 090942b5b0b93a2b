"""The two ends of the relay on asyncio's loop: the TLS connection and pppd's pty.

Each link hands what it reads to its owner through a narrow interface
(:class:`ServerSide` or :class:`PppdSide`) and knows only its *peer* otherwise:
backpressure runs both ways, when one side's write buffer is full, reading from the
other side pauses, so memory stays bounded whichever end is slow.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import ssl
import termios
from typing import Any, Protocol

from .ptyio import BatchReader

__all__ = ["HIGH_WATER", "PppdSide", "PtyLink", "Reader", "ServerSide", "TlsLink"]

#: What may wait for the TLS socket before reading pppd's line pauses: enough to batch,
#: little enough to bound memory. Reading resumes once the socket has taken all of it
#: (what waits goes in one SSL_write, so it is all gone or all still there).
HIGH_WATER = 256 * 1024
#: pppd's line takes a few KiB per write: a smaller buffer there batches as well, and
#: pauses the TLS reads (and what they allocate) sooner.
PTY_HIGH_WATER = 64 * 1024
#: What one wakeup reads from TLS at most, into one reused buffer, before it is handed on.
TLS_READ_SIZE = 64 * 1024


class ServerSide(Protocol):
    """What the TLS link tells its owner."""

    def from_server(self, data: bytes) -> None: ...
    def server_lost(self, exc: Exception | None) -> None: ...


class PppdSide(Protocol):
    """What the pty link tells its owner."""

    def from_pppd(self, data: bytes) -> None: ...
    def pppd_gone(self) -> None: ...


class Reader(Protocol):
    """A link's peer, as far as backpressure needs it."""

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class TlsLink:
    """The TLS connection to the server, on its :class:`ssl.SSLSocket` directly.

    asyncio's SSL transport runs every record through two memory BIOs and several layers
    of Python per wakeup, which at a link's pace (a frame or a few per wakeup) cost more
    than the relay's own work. Here a wakeup is ``SSL_read`` into one reused buffer until
    the socket is drained, and a write is one ``SSL_write`` straight to the socket; only
    what the socket cannot take waits, in order, for it to become writable.
    """

    def __init__(self, owner: ServerSide) -> None:
        self.owner = owner
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray(TLS_READ_SIZE)
        self._view = memoryview(self._buffer)
        self._avail = bytearray(4)  # FIONREAD's answer
        #: Paused while this link cannot write fast enough (the pty link, once open).
        self.peer: Reader | None = None
        self.sock: ssl.SSLSocket | None = None
        self._fd = -1
        self._closed = self._loop.create_future()
        #: A write SSL_write could not finish: retried with the same bytes, as it requires.
        self._pending: bytes | None = None
        self._queue: list[bytes] = []
        self._queued = 0
        self._reading = False
        self._writer_on = False
        self._peer_paused = False
        self._closing = False  # close() called: flush, then close_notify
        self._shutting = False  # close_notify on its way: reads wait for the peer's
        self._gone = False

    # ----- set-up --------------------------------------------------------------------------

    async def handshake(self, sock: ssl.SSLSocket) -> None:
        """Complete the TLS handshake of ``sock`` (non-blocking), then start reading."""
        fd = sock.fileno()
        while True:
            try:
                sock.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._ready(fd, reading=True)
            except ssl.SSLWantWriteError:
                await self._ready(fd, reading=False)
        self.sock = sock
        self._fd = fd
        self.resume_reading()

    async def _ready(self, fd: int, *, reading: bool) -> None:
        waiter: asyncio.Future[None] = self._loop.create_future()

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        if reading:
            self._loop.add_reader(fd, wake)
        else:
            self._loop.add_writer(fd, wake)
        try:
            await waiter
        finally:
            if reading:
                self._loop.remove_reader(fd)
            else:
                self._loop.remove_writer(fd)

    def peername(self) -> Any:
        return self.sock.getpeername() if self.sock is not None else None

    # ----- reading -------------------------------------------------------------------------

    def _read_ready(self) -> None:
        sock = self.sock
        if sock is None:
            return
        if self._shutting:
            self._shutdown()
            return
        view = self._view
        got = 0
        room = TLS_READ_SIZE
        lost: Exception | None = None
        eof = False
        while room:
            try:
                # read(), not recv_into(), which only checks its arguments and calls it.
                # With a buffer it returns the count (typeshed knows only the bytes form).
                n: int = sock.read(room, view[got:] if got else view)  # type: ignore[assignment]
            except ssl.SSLWantReadError:
                break
            except ssl.SSLWantWriteError:
                break  # a renegotiation step: the next readable event goes on with it
            except ssl.SSLZeroReturnError:
                eof = True  # the server's close_notify
                self._answer_close_notify(sock)
                break
            except OSError as exc:
                lost = exc
                break
            if not n:
                # The server's close_notify (or a bare FIN: ssl reports both as 0).
                eof = True
                self._answer_close_notify(sock)
                break
            got += n
            room -= n
            if got == n and not sock.pending() and not self._unread():
                # One record in and the socket is empty: the read that would say so
                # raises SSLWantReadError, which costs more than this check (at a link's
                # pace a wakeup brings one record). A batch reads on until the error.
                break
        if got:
            # A copy: the core may keep part of it (an unfinished packet), and the buffer
            # is written again by the next read.
            self.owner.from_server(view[:got].tobytes())
        if lost is not None or eof:
            self._teardown(lost)
        elif not room and self._reading and self.sock is not None:
            # Stopped for the batch's size: what is left may sit in OpenSSL's buffer,
            # where no readable event announces it.
            self._loop.call_soon(self._read_ready)

    def _answer_close_notify(self, sock: ssl.SSLSocket) -> None:
        """Send our close_notify back, as TLS asks of the side that receives one.

        Without it the server sees a truncated close (a TCP FIN after its alert), which
        some log as an error. One non-blocking try: the link ends either way, and after
        a bare FIN the try fails harmlessly.
        """
        if self._shutting:
            return  # ours went out first (close()): this is its answer
        try:
            sock.unwrap()
        except (ssl.SSLError, OSError):
            pass  # the socket could not take it now, or is gone: nothing more to do

    def _unread(self) -> bool:
        """Whether the socket holds bytes not read yet."""
        avail = self._avail
        try:
            fcntl.ioctl(self._fd, termios.FIONREAD, avail)
        except OSError:
            return True  # unknown: read on, and let the read itself say what is wrong
        return avail != b"\0\0\0\0"

    def pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def resume_reading(self) -> None:
        if not self._reading and self.sock is not None and not self._gone:
            self._loop.add_reader(self._fd, self._read_ready)
            self._reading = True
            if self.sock.pending():
                self._loop.call_soon(self._read_ready)

    # ----- writing -------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.sock is None or self._gone or self._closing:
            return
        pending = self._pending
        if pending is None:
            if self._send(data):
                return  # the usual case: the socket took it all
            pending = self._pending
            if pending is None:
                return  # the link is lost
        else:
            self._queue.append(data)
            self._queued += len(data)
        if not self._peer_paused and self._queued + len(pending) > HIGH_WATER:
            self._peer_paused = True
            if self.peer is not None:
                self.peer.pause_reading()

    def _send(self, data: bytes) -> bool:
        """One SSL_write of all of ``data``; False if it waits for the socket."""
        sock = self.sock
        if sock is None:
            return False
        try:
            sock.send(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            self._pending = data
            if not self._writer_on:
                self._loop.add_writer(self._fd, self._write_ready)
                self._writer_on = True
            return False
        except OSError as exc:
            self._teardown(exc)
            return False
        return True

    def _write_ready(self) -> None:
        while self._pending is not None or self._queue:
            if self._pending is not None:
                data, self._pending = self._pending, None
            else:
                data = b"".join(self._queue) if len(self._queue) > 1 else self._queue[0]
                self._queue.clear()
                self._queued = 0
            if not self._send(data):
                return
        if self._writer_on and not self._gone:
            self._loop.remove_writer(self._fd)
            self._writer_on = False
        if self._peer_paused:
            self._peer_paused = False
            if self.peer is not None:
                self.peer.resume_reading()
        if self._closing:
            self._shutdown()

    # ----- the end -------------------------------------------------------------------------

    def close(self) -> None:
        """Send what waits, then close_notify; the link is gone when the server answers."""
        if self.sock is None or self._closing or self._gone:
            return
        self._closing = True
        if self._pending is None and not self._queue:
            self._shutdown()

    def _shutdown(self) -> None:
        sock = self.sock
        if sock is None or self._gone:
            return
        self._shutting = True
        try:
            sock.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            # close_notify sent (or on its way): wait for the server's, read as it comes.
            self.resume_reading()
            return
        except OSError:
            pass  # the server closed first, or without its close_notify: done either way
        self._teardown(None)

    def abort(self) -> None:
        """Drop the connection without the TLS close exchange (the peer is unreachable)."""
        self._teardown(None)

    def _teardown(self, exc: Exception | None) -> None:
        if self._gone:
            return
        self._gone = True
        self.pause_reading()
        if self._writer_on:
            self._loop.remove_writer(self._fd)
            self._writer_on = False
        self._pending = None
        self._queue.clear()
        if self.sock is not None:
            self.sock.close()
        # From the loop, as asyncio's transports do: the loss may come from inside a
        # write, in the middle of the tunnel handing the core's events on.
        self._loop.call_soon(self.owner.server_lost, exc)
        if not self._closed.done():
            self._closed.set_result(None)

    async def closed_wait(self, timeout: float) -> None:
        if self.sock is None:
            return  # never connected (the TLS handshake failed): nothing to wait for
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), timeout)
        except TimeoutError:
            self.abort()


class PtyLink:
    """pppd's line: our stdin/stdout in pty mode, the pty master in launch mode.

    Reads come in batches (:class:`~.ptyio.BatchReader`); a write is one ``write(2)``
    straight to the line, and only what the line cannot take waits, in order, for it to
    become writable, as on the TLS link.
    """

    def __init__(self, owner: PppdSide, peer: Reader) -> None:
        self.owner = owner
        #: Paused while pppd does not read fast enough (the TLS link).
        self.peer = peer
        self.closing = False
        self.reader: BatchReader | None = None
        self._loop = asyncio.get_running_loop()
        self._fd = -1
        #: What the line has not taken yet (a view into the bytes of one write).
        self._backlog: list[memoryview] = []
        self._waiting = 0
        self._writer_on = False
        self._peer_paused = False
        self._gone = False

    async def open(self, read_fd: int, write_fd: int) -> None:
        """Take ownership of the two descriptors (they are closed with the link).

        The writing side first: frames may come back for pppd as soon as the first
        thing it wrote has been read.
        """
        os.set_blocking(write_fd, False)
        self._fd = write_fd
        # A pty read gives about 4 KiB: BatchReader drains the line per wakeup instead,
        # so the relay decodes, encrypts and sends once per batch.
        # EOF or EIO on the line means its other side is closed: that is pppd leaving.
        self.reader = BatchReader(self._loop, read_fd, self.owner.from_pppd, self._lost)

    def _lost(self) -> None:
        if not self.closing and not self._gone:
            self._gone = True
            self.owner.pppd_gone()

    def write(self, data: bytes) -> None:
        if self._fd < 0 or self.closing or self._gone:
            return
        if self._backlog:
            self._backlog.append(memoryview(data))
            self._waiting += len(data)
        else:
            try:
                n = os.write(self._fd, data)
            except BlockingIOError:
                n = 0
            except OSError:
                self._lost()  # EIO: pppd's side of the line is closed
                return
            if n == len(data):
                return  # the usual case: the line took it all
            self._backlog.append(memoryview(data)[n:])
            self._waiting += len(data) - n
            self._loop.add_writer(self._fd, self._write_ready)
            self._writer_on = True
        if not self._peer_paused and self._waiting > PTY_HIGH_WATER:
            self._peer_paused = True
            self.peer.pause_reading()

    def _write_ready(self) -> None:
        backlog = self._backlog
        while backlog:
            view = backlog[0]
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                return
            except OSError:
                self._stop_writing()
                self._lost()
                return
            self._waiting -= n
            if n < len(view):
                backlog[0] = view[n:]
                return
            del backlog[0]
        self._stop_writing()
        if self._peer_paused:
            self._peer_paused = False
            self.peer.resume_reading()

    def _stop_writing(self) -> None:
        if self._writer_on:
            self._loop.remove_writer(self._fd)
            self._writer_on = False
        self._backlog.clear()
        self._waiting = 0

    def pause_reading(self) -> None:
        if self.reader is not None and self.reader.is_reading():
            self.reader.pause_reading()

    def resume_reading(self) -> None:
        if self.reader is not None and not self.reader.is_closing():
            self.reader.resume_reading()

    def close(self) -> None:
        """Stop; what the line has not taken is dropped (pppd is hung up with it)."""
        if self.closing:
            return
        self.closing = True
        if self.reader is not None:
            self.reader.close()
        if self._fd >= 0:
            self._stop_writing()
            os.close(self._fd)
            self._fd = -1
