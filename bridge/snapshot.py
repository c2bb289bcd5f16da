"""The queue figures behind `/metrics`, read from Redis at most once per `max_age_s` and
single-flight: while one read is in flight every other scrape waits for that same read (at
most `wait_s`), never starts its own. Without this, 300 concurrent scrapes opened 512 Redis
connections, and with Redis away each of them failed on its own.

A failed read is remembered like a good one, for `max_age_s`: while Redis is away a burst of
scrapes costs one connection attempt, and `/metrics` answers at once with the process's own
counters and no queue gauges.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge.errors import StoreUnavailable
from bridge.status import StatusReport

log = logging.getLogger("convo_bridge.metrics")


@dataclass(frozen=True, slots=True)
class Reading:
    report: StatusReport | None  # None: Redis could not be read
    taken_at: float  # time.monotonic()


class QueueSnapshot:
    def __init__(self, read: Callable[[], Awaitable[StatusReport]], wait_s: float = 2.0) -> None:
        self._read = read
        self._wait_s = wait_s
        self._last: Reading | None = None
        self._inflight: asyncio.Task[Reading] | None = None
        self.reads = 0  # reads started, for tests and debugging

    async def get(self, max_age_s: float) -> StatusReport | None:
        """The queue as of at most `max_age_s` ago, or None while Redis cannot be read."""
        last = self._last
        if last is not None and time.monotonic() - last.taken_at <= max_age_s:
            return last.report
        if self._inflight is None:
            self.reads += 1
            self._inflight = asyncio.create_task(self._refresh())
        try:
            async with asyncio.timeout(self._wait_s):
                reading = await asyncio.shield(self._inflight)
        except TimeoutError:  # Redis is slow to answer: serve without the gauges meanwhile
            return None
        return reading.report

    async def _refresh(self) -> Reading:
        try:
            report: StatusReport | None = await self._read()
        except StoreUnavailable:
            report = None
        except Exception:  # a bug in reading must cost the gauges, not the scrape
            log.exception("reading the queue for /metrics failed")
            report = None
        finally:
            self._inflight = None
        self._last = Reading(report, time.monotonic())
        return self._last
