"""The tunnel's one timer: run when the core's deadline is due, not re-armed per packet.

The core moves its hello timer on with every packet received, so the deadline it asks
for changes on nearly every call. The tunnel keeps the timer it has when the deadline
only moves later (it fires early, the core finds nothing due, and it is armed again),
and re-arms at once when the deadline moves earlier.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from sstp_pppd.core.client import ClientConnection, ClientEvent
from sstp_pppd.transport.tunnel import Tunnel, TunnelOwner


class Core:
    """Stands in for the client core: a deadline to report, a log of timer calls."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.ran: list[float] = []

    def next_deadline(self) -> float | None:
        return self.deadline

    def data_to_send(self) -> bytes:
        return b""

    def handle_timer(self, now: float) -> list[ClientEvent]:
        self.ran.append(now)
        if self.deadline is not None and self.deadline <= now:
            self.deadline = None  # done: nothing more to wait for
        return []


async def tunnel_with(core: Core) -> Tunnel:
    return Tunnel(cast(TunnelOwner, object()), cast(ClientConnection, core))


def run(coro: Any) -> None:
    asyncio.run(asyncio.wait_for(coro, 10))


def test_a_later_deadline_keeps_the_armed_timer_and_is_still_kept() -> None:
    async def case() -> None:
        core = Core()
        tunnel = await tunnel_with(core)
        loop = asyncio.get_running_loop()
        start = loop.time()
        core.deadline = start + 0.05
        tunnel.transmit()
        first = tunnel._timer
        for step in range(1, 20):  # a packet per step, each moving the deadline on
            core.deadline = start + 0.05 + step * 0.01
            tunnel.transmit()
            assert tunnel._timer is first
        final = core.deadline
        await asyncio.sleep(0.4)
        # Fired early once (nothing due), then at the deadline the core asked for.
        assert len(core.ran) == 2
        assert core.ran[0] < final <= core.ran[1]
        assert tunnel._timer is None

    run(case())


def test_an_earlier_deadline_is_armed_at_once() -> None:
    async def case() -> None:
        core = Core()
        tunnel = await tunnel_with(core)
        loop = asyncio.get_running_loop()
        core.deadline = loop.time() + 5.0
        tunnel.transmit()
        core.deadline = loop.time() + 0.05
        tunnel.transmit()
        await asyncio.sleep(0.3)
        assert len(core.ran) == 1
        assert tunnel._timer is None

    run(case())


def test_no_deadline_cancels_the_timer() -> None:
    async def case() -> None:
        core = Core()
        tunnel = await tunnel_with(core)
        core.deadline = asyncio.get_running_loop().time() + 0.05
        tunnel.transmit()
        core.deadline = None
        tunnel.transmit()
        await asyncio.sleep(0.2)
        assert core.ran == []

    run(case())
