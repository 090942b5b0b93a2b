"""Which families of a connection's link are up, and the lock that orders their ends.

A link's end (the scripts' ``down``, the undo of its routes and DNS, ``post-down``) has
two possible runners: pppd's ip-down/ipv6-down hook, and the transport's own undo at its
exit. pppd does not wait for its scripts for long: at its exit it gives them
``child-timeout`` seconds (5 by default), less when a signal comes meanwhile, and then
SIGTERMs them; on a slow machine run-parts may not even have started our hook by then,
and the transport's exit undo runs while the hook is still on its way.

So each end is done exactly once, by whoever comes first: both take :func:`link_lock`,
and the runner who finds the family still listed in the status's ``links_up`` does the
end and removes it; the second finds it gone and leaves the scripts alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from typing import Any

from .paths import Paths
from .record import state_dir

LINKS_UP = "links_up"
LOCK = "link.lock"


@contextlib.contextmanager
def link_lock(name: str, paths: Paths) -> Iterator[None]:
    """Held for the whole of a link's up or down (the record's own lock is taken inside)."""
    fd = os.open(
        os.path.join(state_dir(name, paths), LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def links_up(status: dict[str, Any] | None) -> list[int]:
    raw = (status or {}).get(LINKS_UP)
    return [f for f in raw if f in (4, 6)] if isinstance(raw, list) else []


def mark(data: dict[str, Any], family: int, up: bool) -> None:
    """For a status transform: ``family`` is now up (or down)."""
    families = set(links_up(data)) - {family}
    if up:
        families.add(family)
    data[LINKS_UP] = sorted(families)
