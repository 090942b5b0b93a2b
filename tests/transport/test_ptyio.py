"""BatchReader on a real pty: batches, backpressure, and pppd leaving."""

from __future__ import annotations

import asyncio
import os
import tty

from sstp_pppd.transport.ptyio import BatchReader


def test_batches_and_eof() -> None:
    async def main() -> tuple[list[bytes], bool]:
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        tty.setraw(slave)
        got: list[bytes] = []
        ended = loop.create_future()
        reader = BatchReader(loop, master, got.append, lambda: ended.set_result(True))
        payload = bytes(range(256)) * 64  # 16 KiB: four pty reads or more
        reader.pause_reading()
        assert not reader.is_reading()
        os.write(slave, payload[:100])
        await asyncio.sleep(0.05)
        assert got == []  # paused: nothing read
        # The rest from a thread, in one write: the pty takes it in while we read.
        writing = loop.run_in_executor(None, os.write, slave, payload[100:])
        await asyncio.sleep(0.05)
        reader.resume_reading()
        await writing
        while sum(map(len, got)) < len(payload):
            await asyncio.sleep(0.01)
        os.close(slave)
        eof = await asyncio.wait_for(ended, 5)
        assert reader.is_closing()
        return got, eof

    got, eof = asyncio.run(main())
    assert b"".join(got) == bytes(range(256)) * 64
    assert len(got) < 5  # several pty reads per batch
    assert eof


def test_close_does_not_report_eof() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        calls: list[str] = []
        reader = BatchReader(
            loop, master, lambda _: calls.append("data"), lambda: calls.append("eof")
        )
        reader.close()
        reader.close()
        os.close(slave)
        await asyncio.sleep(0.05)
        assert calls == []

    asyncio.run(main())
