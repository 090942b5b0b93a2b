"""asyncio protocols for the two ends of the relay: the TLS connection and pppd's pty.

Each link hands what it reads to its owner through a narrow interface
(:class:`ServerSide` or :class:`PppdSide`) and knows only its *peer* otherwise:
backpressure runs both ways, when one side's write buffer is full, reading from the
other side pauses, so memory stays bounded whichever end is slow.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Protocol

from .ptyio import BatchReader

__all__ = ["HIGH_WATER", "LOW_WATER", "PppdSide", "PtyLink", "Reader", "ServerSide", "TlsLink"]

#: Write-buffer limits: large enough to batch, small enough to bound memory per direction.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
#: pppd's line takes a few KiB per write: a smaller buffer there batches as well, and
#: pauses the TLS reads (and what they allocate) sooner.
PTY_HIGH_WATER = 64 * 1024
PTY_LOW_WATER = 16 * 1024
#: What one TLS read may bring: asyncio's SSL layer reads into this one reused buffer
#: (its own default: a new bytes per record, joined into up to 256 KiB per wakeup).
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


class TlsLink(asyncio.BufferedProtocol):
    """The TLS connection to the server.

    A buffered protocol: decrypted bytes land in one preallocated buffer (no bytes per
    TLS record, no join), and a batch stays small enough for the caches and for memory.
    """

    def __init__(self, owner: ServerSide) -> None:
        self.owner = owner
        self._buffer = memoryview(bytearray(TLS_READ_SIZE))
        #: Paused while this link cannot write fast enough (the pty link, once open).
        self.peer: Reader | None = None
        self.transport: asyncio.Transport | None = None
        self._closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)  # type: ignore[union-attr]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        # A copy: the core may keep part of it (an unfinished packet), and the buffer is
        # written again by the next read.
        self.owner.from_server(self._buffer[:nbytes].tobytes())

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)
        self.owner.server_lost(exc)

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def pause_reading(self) -> None:
        if self.transport is not None and self.transport.is_reading():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection without the TLS close exchange (the peer is unreachable)."""
        if self.transport is not None:
            self.transport.abort()

    async def closed_wait(self, timeout: float) -> None:
        if self.transport is None:
            return  # never connected (the TLS handshake failed): nothing to wait for
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), timeout)
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()


class _PtyWriter(asyncio.BaseProtocol):
    def __init__(self, link: PtyLink) -> None:
        self.link = link

    def pause_writing(self) -> None:
        self.link.peer.pause_reading()

    def resume_writing(self) -> None:
        self.link.peer.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.link.closing:
            self.link.owner.pppd_gone()


class PtyLink:
    """pppd's line: our stdin/stdout in pty mode, the pty master in launch mode."""

    def __init__(self, owner: PppdSide, peer: Reader) -> None:
        self.owner = owner
        #: Paused while pppd does not read fast enough (the TLS link).
        self.peer = peer
        self.closing = False
        self.reader: BatchReader | None = None
        self.writer: asyncio.WriteTransport | None = None

    async def open(self, read_fd: int, write_fd: int) -> None:
        """Take ownership of the two descriptors (they are closed with the link).

        The writing side first: frames may come back for pppd as soon as the first
        thing it wrote has been read.
        """
        loop = asyncio.get_running_loop()
        wfile: Any = os.fdopen(write_fd, "wb", buffering=0)
        self.writer, _ = await loop.connect_write_pipe(lambda: _PtyWriter(self), wfile)
        self.writer.set_write_buffer_limits(PTY_HIGH_WATER, PTY_LOW_WATER)
        # A pty read gives about 4 KiB: BatchReader drains the line per wakeup instead,
        # so the relay decodes, encrypts and sends once per batch.
        self.reader = BatchReader(loop, read_fd, self.owner.from_pppd, self._eof)

    def _eof(self) -> None:
        # EOF or EIO on the line: the other side is closed. That is pppd leaving.
        if not self.closing:
            self.owner.pppd_gone()

    def write(self, data: bytes) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(data)

    def pause_reading(self) -> None:
        if self.reader is not None and self.reader.is_reading():
            self.reader.pause_reading()

    def resume_reading(self) -> None:
        if self.reader is not None and not self.reader.is_closing():
            self.reader.resume_reading()

    def close(self) -> None:
        self.closing = True
        if self.reader is not None:
            self.reader.close()
        if self.writer is not None:
            self.writer.close()
