"""SIGINT, SIGTERM and SIGHUP from our first line to exit: one line, exit 11, nothing left.

Imported first of all (``scrub.main``'s first statement calls :func:`hold`), so it imports
nothing but :mod:`signal`. A run goes through three phases:

1. **Start-up** (imports, parsing, configuration; no host changes yet): the handler only
   *notes* the signal, and ``cli.main`` looks at the note between its steps. Nothing is
   raised at an arbitrary point (inside an import, a half-written line, a lock), so no
   traceback can escape, and a second signal cannot interrupt the handling of the first.
2. **The event loop, outside the session's own handlers** (resolving and pinning the
   server route before ``Session.run`` installs them, undoing after it removed them): the
   first signal before the session cancels the main task once, and the host changes made
   so far are undone by ``run_session``'s ``finally``; after the session, the run is
   already ending, and the signal is only noted (cancelling would abandon the undo).
3. **The session** (``Session.run``): its own handlers, a graceful CALL_DISCONNECT.

asyncio's ``remove_signal_handler`` puts back the kernel's default action, under which a
SIGTERM (pppd sends one to its ``pty`` program when the link goes) would kill us in the
middle of undoing routes and DNS: :class:`StopLoop` puts back :func:`_handler` instead.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

# typing costs milliseconds at start-up; mypy knows this name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Any

__all__ = ["STOP_SIGNALS", "caught", "hold", "on_stop", "restore", "run_in_loop", "signal_name"]

#: The signals that stop a run (the session handles the same three).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

#: Signals received, in order (list.append is safe in a handler: no lock is taken).
_caught: list[int] = []
#: What a signal does besides being noted (phase 2); None: only noted.
_action: list[Callable[[], None] | None] = [None]


def _handler(signum: int, _frame: object) -> None:
    _caught.append(signum)
    action = _action[0]
    if action is not None:
        action()


def hold() -> dict[int, object]:
    """Note the stop signals from now on; the previous handlers (to put back, in tests)."""
    previous: dict[int, object] = {}
    for signum in STOP_SIGNALS:
        previous[signum] = signal.signal(signum, _handler)
    return previous


def restore(previous: dict[int, object]) -> None:
    """Put back what :func:`hold` replaced (an in-process caller's own handlers)."""
    for signum, handler in previous.items():
        if callable(handler) or isinstance(handler, int):
            signal.signal(signum, handler)


def caught() -> int | None:
    """The first stop signal received so far, or None."""
    return _caught[0] if _caught else None


def on_stop(action: Callable[[], None] | None) -> None:
    """Run ``action`` (in the main thread, between bytecodes) on each later signal."""
    _action[0] = action


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def handler_is_ours(signum: int) -> bool:
    return signal.getsignal(signum) is _handler


def put_back(signum: int) -> None:
    """Make :func:`_handler` the handler of ``signum`` again (no default action between)."""
    signal.signal(signum, _handler)


def run_in_loop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """``asyncio.run(main())`` under the rules of phase 2.

    Raises :class:`asyncio.CancelledError` when a signal before the session cancelled it.
    """
    import asyncio  # noqa: PLC0415 (start-up time: --help and --version never get here)
    import contextlib  # noqa: PLC0415

    class StopLoop(asyncio.SelectorEventLoop):
        #: The session has handed its signals back: the run is ending, do not cancel it.
        session_over = False

        def remove_signal_handler(self, sig: int) -> bool:
            if sig not in STOP_SIGNALS:
                return super().remove_signal_handler(sig)
            # asyncio would set SIG_DFL here: one SIGTERM would then end the undo.
            handlers: dict[int, object] = self._signal_handlers  # type: ignore[attr-defined]
            if handlers.pop(sig, None) is None:
                return False
            put_back(sig)
            self.session_over = True
            if not handlers:
                with contextlib.suppress(ValueError, OSError):
                    signal.set_wakeup_fd(-1)
            return True

    async def guarded() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:  # cannot be: asyncio runs a coroutine in a task
            raise RuntimeError("no current task")
        cancelled: list[bool] = []

        def stop() -> None:
            # Once: a second signal must not cancel run_session's undo as well.
            if not cancelled and not getattr(loop, "session_over", False):
                cancelled.append(True)
                loop.call_soon_threadsafe(task.cancel)

        on_stop(stop)
        if caught() is not None:
            stop()  # a signal while the loop was being made
        await main()

    previous = hold()
    try:
        with asyncio.Runner(loop_factory=StopLoop) as runner:
            runner.run(guarded())
    finally:
        on_stop(None)
        restore(previous)
