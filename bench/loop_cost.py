"""CPU per wakeup of asyncio's loop against a bare select.epoll loop (issue 10).

A pipe that stays readable wakes each loop every turn; the callback does nothing, so
what is measured is the loop's own cost per wakeup, which the relay pays once per
wakeup on top of its work. Prints microseconds of process CPU time per wakeup.
"""

from __future__ import annotations

import asyncio
import os
import select
import time

WAKEUPS = 200_000


async def asyncio_loop(fd: int) -> float:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0

    def ready() -> None:
        nonlocal count
        count += 1
        if count == WAKEUPS:
            loop.remove_reader(fd)
            done.set_result(None)

    loop.add_reader(fd, ready)
    start = time.process_time()
    await done
    return time.process_time() - start


def epoll_loop(fd: int) -> float:
    poller = select.epoll()
    poller.register(fd, select.EPOLLIN)
    handlers = {fd: lambda: None}
    start = time.process_time()
    for _ in range(WAKEUPS):
        for ready, _events in poller.poll(-1):
            handlers[ready]()
    return time.process_time() - start


def main() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"x")  # never read: readable on every turn
    print(f"asyncio loop:      {asyncio.run(asyncio_loop(read_fd)) / WAKEUPS * 1e6:.2f} us/wakeup")
    print(f"select.epoll loop: {epoll_loop(read_fd) / WAKEUPS * 1e6:.2f} us/wakeup")


if __name__ == "__main__":
    main()
