"""One status report for every reader: `convo-bridge status`, `/admin/status`, the admin
page and the `/metrics` gauges all show the same `StatusReport`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

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
    delivery_paused: bool | None = None  # `rq suspend`ed; None: RQ could not be read

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
            "delivery_paused": self.delivery_paused,
        }


async def status_report(store: Store) -> StatusReport:
    """The store's figures plus the live worker count and whether delivery is paused (None
    when RQ cannot say)."""
    report = await store.status()
    try:
        alive: int | None = await store.live_workers()
        paused: bool | None = await store.delivery_paused()
    except Exception:  # the count is informative; its absence is not an error
        alive, paused = None, None
    return dataclasses.replace(report, workers_alive=alive, delivery_paused=paused)
