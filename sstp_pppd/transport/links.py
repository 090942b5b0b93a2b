"""asyncio protocols for the two ends of the relay: the TLS connection and pppd's pty.

Backpressure runs both ways: when one side's write buffer is full, reading from the other
side pauses, so memory stays bounded whichever end is slow.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

from ..core.errors import SstpError
from ..core.handshake import HttpResponse, ResponseParser

if TYPE_CHECKING:
    from .tunnel import Tunnel

log = logging.getLogger(__name__)

#: Write-buffer limits: large enough to batch, small enough to bound memory per direction.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
#: Bytes asked of the pty per read: pppd writes whole HDLC frames; batch several.
PTY_READ_SIZE = 64 * 1024


class TlsLink(asyncio.Protocol):
    """The TLS connection to the server."""

    def __init__(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel
        self.transport: asyncio.Transport | None = None
        self.http_parser: ResponseParser | None = None
        self.http_response: asyncio.Future[HttpResponse] = tunnel.loop.create_future()
        self._closed = tunnel.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        parser = self.http_parser
        if parser is None:
            self.tunnel.from_server(data)
            return
        if self.http_response.done():
            # Between the response and the switch to SSTP: keep the bytes for later.
            parser.trailing += data
            return
        try:
            response = parser.feed(data)
        except SstpError as exc:
            self.fail_http(exc)
            return
        if response is not None:
            self.http_response.set_result(response)

    def fail_http(self, exc: Exception) -> None:
        if not self.http_response.done():
            self.http_response.set_exception(exc)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)
        self.tunnel.tls_lost(exc)

    def pause_writing(self) -> None:
        if self.tunnel.pty is not None:
            self.tunnel.pty.pause_reading()

    def resume_writing(self) -> None:
        if self.tunnel.pty is not None:
            self.tunnel.pty.resume_reading()

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

    async def closed_wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), timeout)
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()


class _PtyReader(asyncio.Protocol):
    def __init__(self, link: PtyLink) -> None:
        self.link = link

    def data_received(self, data: bytes) -> None:
        self.link.tunnel.from_pppd(data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        # EIO on a pty master: the other side is closed. That is pppd leaving.
        if not self.link.closing:
            self.link.tunnel.pppd_eof()


class _PtyWriter(asyncio.BaseProtocol):
    def __init__(self, link: PtyLink) -> None:
        self.link = link

    def pause_writing(self) -> None:
        if self.link.tunnel.tls is not None:
            self.link.tunnel.tls.pause_reading()

    def resume_writing(self) -> None:
        if self.link.tunnel.tls is not None:
            self.link.tunnel.tls.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.link.closing:
            self.link.tunnel.pppd_eof()


class PtyLink:
    """pppd's line: our stdin/stdout in pty mode, the pty master in launch mode."""

    def __init__(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel
        self.closing = False
        self.reader: asyncio.ReadTransport | None = None
        self.writer: asyncio.WriteTransport | None = None

    @classmethod
    async def open(cls, tunnel: Tunnel, read_fd: int, write_fd: int) -> PtyLink:
        """Take ownership of the two descriptors (they are closed with the link)."""
        link = cls(tunnel)
        loop = tunnel.loop
        rfile: Any = os.fdopen(read_fd, "rb", buffering=0)
        wfile: Any = os.fdopen(write_fd, "wb", buffering=0)
        link.reader, _ = await loop.connect_read_pipe(lambda: _PtyReader(link), rfile)
        link.writer, _ = await loop.connect_write_pipe(lambda: _PtyWriter(link), wfile)
        # asyncio reads 256 KiB at most per wakeup for pipes; that is plenty of batching.
        link.writer.set_write_buffer_limits(HIGH_WATER, LOW_WATER)
        return link

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
