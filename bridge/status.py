"""One status report for every reader: `convo-bridge status`, `/admin/status`, the admin
page and the `/metrics` gauges all show the same `StatusReport`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    from bridge.config import ConvocoreSettings
    from bridge.store import Store

CircuitState = Literal["closed", "open", "half"]
# the [convocore] table's own account, as the workers name it in its circuit's keys
DEFAULT_ACCOUNT = "default"


def gated_accounts(convocore: ConvocoreSettings) -> tuple[str, ...]:
    """The accounts with a circuit of their own: with [convocore.accounts], each of them and
    the default one (the shared circuit then stays unused); without, none."""
    return (DEFAULT_ACCOUNT, *convocore.accounts) if convocore.accounts else ()


@dataclass(frozen=True, slots=True)
class Circuit:
    state: CircuitState = "closed"
    until_ms: int | None = None  # while open or half-open: when it may probe again
    opened: int = 0  # times opened since the circuit hash was created

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> Circuit:
        """A circuit hash as Redis holds it ({state, until, opened}); none yet: closed."""
        state = raw.get("state", "closed")
        if state not in ("closed", "open", "half"):
            state = "closed"
        return cls(
            state=cast(CircuitState, state),
            until_ms=int(raw.get("until", "0") or 0) if state != "closed" else None,
            opened=int(raw.get("opened", "0") or 0),
        )

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "until": self.until_ms, "opened": self.opened}


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
    # with [convocore.accounts]: each account's own circuit by name, `default` included
    # (`circuit`, the shared one, is then unused); without: empty
    accounts: dict[str, Circuit] = field(default_factory=dict)
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
            "circuit": self.circuit.to_json(),
            "accounts": {name: c.to_json() for name, c in sorted(self.accounts.items())},
            "last_minute": dataclasses.asdict(self.last_minute),
            "workers_alive": self.workers_alive,
            "delivery_paused": self.delivery_paused,
        }


async def status_report(store: Store, accounts: Iterable[str] = ()) -> StatusReport:
    """The store's figures, the circuit of each of `accounts` ([convocore.accounts] names),
    plus the live worker count and whether delivery is paused (None when RQ cannot say)."""
    report = await store.status()
    report = dataclasses.replace(report, accounts=await store.account_circuits(accounts))
    try:
        alive: int | None = await store.live_workers()
        paused: bool | None = await store.delivery_paused()
    except Exception:  # the count is informative; its absence is not an error
        alive, paused = None, None
    return dataclasses.replace(report, workers_alive=alive, delivery_paused=paused)
