"""The route pin resolves the server with the transport's resolver, not asyncio's pool.

asyncio.run waits at exit for its executor's threads, so a lookup stuck there (a dead DNS
server) held a signalled sstp-pppd until the resolver gave up."""

from __future__ import annotations

import asyncio

from sstp_pppd.runsession import _addresses


def test_pin_lookup_uses_no_executor_thread() -> None:
    async def main() -> tuple[list[str], object]:
        got = await _addresses("localhost", 443)
        return got, getattr(asyncio.get_running_loop(), "_default_executor", None)

    got, executor = asyncio.run(main())
    assert got and all(a in ("127.0.0.1", "::1") for a in got), got
    assert executor is None


def test_pin_lookup_of_a_name_that_does_not_resolve_is_empty() -> None:
    assert asyncio.run(_addresses("no-such-host.invalid", 443)) == []
