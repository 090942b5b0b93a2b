"""links.PtyLink on a real pty: writes in order, backpressure, pppd leaving.

The link writes to pppd's line itself: what the line cannot take waits, in order, and
the TLS side (the peer) is paused while more than PTY_HIGH_WATER waits, resumed once the
line has taken it all. pppd closing its side is reported once, a close of ours never.
"""

from __future__ import annotations

import asyncio
import os
import pty
import tty
from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any

from sstp_pppd.transport import links
from sstp_pppd.transport.links import PtyLink


def run(case: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @wraps(case)
    def test(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(case(*args, **kwargs), 30))

    return test


class Owner:
    def __init__(self) -> None:
        self.data = bytearray()
        self.gone = 0

    def from_pppd(self, data: bytes) -> None:
        self.data += data

    def pppd_gone(self) -> None:
        self.gone += 1


class Peer:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


async def opened() -> tuple[PtyLink, Owner, Peer, int]:
    """A link on a pty's master, as in launch mode; the slave is pppd's side (raw)."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    owner, peer = Owner(), Peer()
    link = PtyLink(owner, peer)
    await link.open(master, os.dup(master))
    return link, owner, peer, slave


@run
async def test_what_the_line_cannot_take_waits_in_order_and_pauses_the_peer() -> None:
    link, owner, peer, slave = await opened()
    # More than the pty holds and more than the high-water mark, in writes of all sizes.
    chunks = [bytes([i % 251]) * (1000 + 37 * i) for i in range(120)]
    sent = b"".join(chunks)
    assert len(sent) > links.PTY_HIGH_WATER * 2
    for chunk in chunks:
        link.write(chunk)
    assert peer.calls == ["pause"]  # once, however much more came
    got = bytearray()
    os.set_blocking(slave, False)
    while len(got) < len(sent):
        await asyncio.sleep(0.005)
        try:
            got += os.read(slave, 65536)
        except BlockingIOError:
            pass
    await asyncio.sleep(0.05)
    assert bytes(got) == sent
    assert peer.calls == ["pause", "resume"]
    link.write(b"after")  # straight through again
    await asyncio.sleep(0.05)
    assert os.read(slave, 100) == b"after"
    link.close()
    os.close(slave)
    assert owner.gone == 0


@run
async def test_pppd_closing_its_side_is_reported_once() -> None:
    link, owner, _, slave = await opened()
    os.write(slave, b"hello")
    await asyncio.sleep(0.05)
    assert bytes(owner.data) == b"hello"
    os.close(slave)
    await asyncio.sleep(0.05)
    for _ in range(3):
        link.write(b"x" * 5000)  # EIO now: nobody is there
    await asyncio.sleep(0.05)
    assert owner.gone == 1
    link.close()
    assert owner.gone == 1


@run
async def test_our_close_is_not_pppd_leaving() -> None:
    link, owner, _, slave = await opened()
    link.write(b"y" * 200_000)  # some of it waits
    link.close()
    link.write(b"more")  # ignored: the link is closed
    await asyncio.sleep(0.05)
    assert owner.gone == 0
    os.close(slave)
