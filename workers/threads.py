"""Blocking calls from the event loop on daemon threads that nothing waits for at exit.

`asyncio.to_thread` runs on the loop's default executor, and both `asyncio.run` and the
interpreter join its threads on the way out. RQ's side of the worker is synchronous redis-py,
whose socket timeout RQ sizes for its own blocking dequeue (415 s by default): with a Redis
that stopped answering (half-open), a SIGTERM'd worker stopped its engine in seconds and then
waited ~7 minutes for those threads. A call made here is abandoned at exit instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on a daemon thread of its own; cancelling the await abandons the call."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # the awaiting task was cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            outcome: tuple[Any, BaseException | None] = (fn(*args), None)
        except BaseException as exc:  # handed to the awaiting task, raised there
            outcome = (None, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, *outcome)

    name = f"cb-{getattr(fn, '__name__', 'call')}"
    threading.Thread(target=run, name=name, daemon=True).start()
    return await future
