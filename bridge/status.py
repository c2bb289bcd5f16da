"""One status report for every reader: `convo-bridge status`, `/admin/status`, the admin
page and the `/metrics` gauges all show the same `StatusReport`."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import redis
from rq import Queue, Worker

if TYPE_CHECKING:
    from bridge.store import Store

CircuitState = Literal["closed", "open", "half"]


@dataclass(frozen=True, slots=True)
class Circuit:
    state: CircuitState = "closed"
    until_ms: int | None = None  # while open or half-open: when it may probe again
    opened: int = 0  # times opened since the circuit hash was created


@dataclass(frozen=True, slots=True)
class Rates:
    """Counts over the last minute."""

    accepted: int = 0
    duplicates: int = 0
    patched: int = 0
    failed: int = 0
    dead_lettered: int = 0


@dataclass(frozen=True, slots=True)
class StatusReport:
    conversations_waiting: int  # due now
    scheduled_retries: int  # due later
    next_retry_at: int | None  # epoch ms of the next scheduled one
    in_flight: int  # held by a worker
    dead_letters: int
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    circuit: Circuit = Circuit()
    last_minute: Rates = Rates()
    workers_alive: int | None = None  # None: RQ's registry could not be read
    paused: bool | None = None  # delivery suspended (`rq suspend`, the page's Pause); None: unknown

    @property
    def queue_depth(self) -> int:
        return self.conversations_waiting + self.scheduled_retries + self.in_flight

    def to_json(self) -> dict[str, Any]:
        return {
            "conversations_waiting": self.conversations_waiting,
            "scheduled_retries": self.scheduled_retries,
            "next_retry_at": self.next_retry_at,
            "in_flight": self.in_flight,
            "queue_depth": self.queue_depth,
            "dead_letters": self.dead_letters,
            "dead_letters_by_reason": dict(self.dead_letters_by_reason),
            "circuit": {
                "state": self.circuit.state,
                "until": self.circuit.until_ms,
                "opened": self.circuit.opened,
            },
            "last_minute": dataclasses.asdict(self.last_minute),
            "workers_alive": self.workers_alive,
            "paused": self.paused,
        }


def live_workers(redis_url: str) -> int:
    """Workers of the convo-bridge queue with a current RQ registration (other RQ workers
    on the same Redis are not ours to count)."""
    from bridge.store.keys import RQ_QUEUE  # bridge.store imports this module

    conn = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        return len(Worker.all(queue=Queue(RQ_QUEUE, connection=conn)))
    finally:
        conn.close()


def delivery_paused(redis_url: str) -> bool:
    """Whether RQ's suspension flag is set (`rq suspend`, or the page's Pause)."""
    from rq.suspension import is_suspended

    conn = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        return bool(is_suspended(conn))
    finally:
        conn.close()


async def status_report(store: Store) -> StatusReport:
    """The store's figures plus the live worker count and whether delivery is paused (None
    when RQ cannot say)."""
    report = await store.status()
    try:
        alive: int | None = await asyncio.to_thread(live_workers, store.url)
    except Exception:  # the count is informative; its absence is not an error
        alive = None
    try:
        paused: bool | None = await asyncio.to_thread(delivery_paused, store.url)
    except Exception:
        paused = None
    return dataclasses.replace(report, workers_alive=alive, paused=paused)
