"""Group commit: concurrent callers share one Redis round trip.

A redis-py asyncio call costs about 40 µs of CPU on its own, more than verifying and parsing
a webhook. Under load many requests wait on Redis at the same moment, so `GroupCommit`
sends what has queued up as one call (at most `max_inflight` calls at a time), and hands
every caller its own slice of the answer. A caller alone is sent at once, so a quiet
server adds no delay; each caller still returns only after its items are in Redis.

A combined call is bounded by items and by bytes (`max_bytes`, the callers' own estimate):
one Lua call with two dozen 1 MB bodies ran past the store's 5 s script timeout and failed
them all, so big submissions go in calls of their own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")
# a caller's items, the future its answers go to, and their size in bytes
_Queued = tuple[Sequence[Item], "asyncio.Future[Sequence[Answer]]", int]


class GroupCommit(Generic[Item, Answer]):
    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[Sequence[Answer]]],
        *,
        max_items: int = 256,
        max_bytes: int = 1 << 20,
        max_inflight: int = 2,
    ) -> None:
        self._send = send
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._max_inflight = max_inflight
        self._queue: deque[_Queued[Item, Answer]] = deque()
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, items: Sequence[Item], nbytes: int = 0) -> Sequence[Answer]:
        """Send `items` (with whatever else is waiting); their answers, in order. `nbytes`:
        about how big they are on the wire."""
        future: asyncio.Future[Sequence[Answer]] = asyncio.get_running_loop().create_future()
        self._queue.append((items, future, nbytes))
        if self._inflight < self._max_inflight:
            self._inflight += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        batch: list[_Queued[Item, Answer]] = []
        try:
            while self._queue:
                batch = [self._queue.popleft()]
                size, nbytes = len(batch[0][0]), batch[0][2]
                while (
                    self._queue
                    and size + len(self._queue[0][0]) <= self._max_items
                    and nbytes + self._queue[0][2] <= self._max_bytes
                ):
                    batch.append(self._queue.popleft())
                    size += len(batch[-1][0])
                    nbytes += batch[-1][2]
                try:
                    answers = await self._send([item for items, _, _ in batch for item in items])
                    if len(answers) != size:
                        raise RuntimeError(f"{len(answers)} answers for {size} items")
                except Exception as exc:
                    # what waits behind a failed call (Redis down or stalled) would most
                    # likely fail too, one timeout at a time: fail it now, callers retry
                    waiting, self._queue = list(self._queue), deque()
                    self._fail(batch + waiting, exc)
                    batch = []
                    continue
                at = 0
                for items, future, _ in batch:
                    if not future.done():
                        future.set_result(answers[at : at + len(items)])
                    at += len(items)
                batch = []
        except BaseException as exc:  # cancelled: nobody may be left waiting forever
            waiting, self._queue = list(self._queue), deque()
            self._fail(batch + waiting, RuntimeError(f"group commit stopped: {exc!r}"))
            raise
        finally:
            self._inflight -= 1

    @staticmethod
    def _fail(batch: list[_Queued[Item, Answer]], exc: BaseException) -> None:
        for _, future, _ in batch:
            if not future.done():
                future.set_exception(exc)
