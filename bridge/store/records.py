"""The records that cross the store's boundary: what ingest hands in, what a worker takes
and gives back, and what a dead letter holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.changes import Entry
from bridge.store.keys import split_key

OutcomeKind = Literal["ok", "retry", "dead", "release", "wait"]
"""ok: applied; retry: failed, try again in `retry_in_ms` (counted from Redis's clock when
settled); dead: dead-letter the pending changes; release: not attempted (shutdown), due
again at once; wait: not sent (its account's circuit or rate limit), due again in
`retry_in_ms`, no attempt counted."""

Verdict = Literal["ok", "fail", ""]
"""What an attempt tells the circuit breaker: the target worked, failed retryably, or
nothing (not counted)."""


@dataclass(frozen=True, slots=True)
class Routed:
    """One accepted event on its way into Redis: where it goes and what it changes."""

    source: str
    event_id: str
    changes: Sequence[tuple[str, str]]  # (name, JSON payload): bridge.changes.payloads
    occurred_at: int | None  # the sender's time (epoch ms); None: when received
    ck: str = ""  # known conversation, or "" to resolve `external_id` through the links
    external_id: str = ""
    fallback_ck: str = ""  # default_agent_id/external_id when no link exists


@dataclass(frozen=True, slots=True)
class AcceptResult:
    accepted: int
    duplicates: int
    unroutable: int
    # indexes of the accepted events whose occurred_at was later than receipt +
    # max_clock_skew_s, and so counted as their receipt time
    future: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Work:
    """A conversation taken by a worker: its pending changes, cached arrays, attempts so far."""

    ck: str
    token: str
    entries: list[Entry]
    arrays: dict[str, Any] | None
    attempts: int
    applied: list[Entry] = field(default_factory=list)  # what compose needs from hw:<ck>
    # Redis's clock minus the taking host's (ms) when taken: receipt times are Redis's
    clock_offset_ms: int = 0

    @property
    def ids(self) -> tuple[str, str]:
        return split_key(self.ck)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What `settle` records about one attempt."""

    kind: OutcomeKind
    sent: Sequence[Entry] = ()
    arrays: dict[str, Any] | None = None
    attempt: Mapping[str, Any] | None = None
    retry_in_ms: int = 0
    reason: str = ""
    status: str = ""
    snippet: str = ""
    circuit: Verdict = ""
    in_doubt: bool = False  # a PATCH left and its fate is unknown: it may still be applied
    # for the event log: the PATCH body sent (b"" when none was), how long it took, the answer
    body: bytes = b""
    duration_ms: float = 0.0
    answer: str = ""


@dataclass(frozen=True, slots=True)
class SettleOptions:
    """settle.lua's settings, sent as one named JSON object (ARGV[2]) and read there by
    name: a new one is a field here and a read there. Concurrent settles with equal options
    share one call."""

    coalesce_ms: int
    array_cache_ms: int
    circuit_window: int
    circuit_failure_permille: int
    circuit_cooldown_ms: int
    in_doubt_quiet_ms: int
    log_max_events: int = 0  # the event log's bounds, for the attempts' entries (rows' `log`)
    log_keep_ms: int = 0


@dataclass(frozen=True, slots=True)
class SettleRow:
    """One attempt as settle.lua reads it, by field name (an element of ARGV[3], a JSON
    array): `Outcome` in the script's terms. Strings where the script compares strings;
    "" (never null) for nothing."""

    ck: str
    token: str
    outcome: OutcomeKind
    arrays: str  # JSON {tags, handoffHistory} from the answer, or ""
    attempt: str  # JSON attempt record
    retry_in_ms: int
    reason: str
    status: str
    snippet: str
    circuit: Verdict
    sent: list[str]  # name, entry, name, entry, ...
    in_doubt: bool
    # the attempt's event-log entry, written in the same call with its dead-letter id
    # (eventlog.lua's row: [0, 0, verdict, field, value, ...]; its `d` field is the call's
    # ARGV[3 + log_blob]); [] for none
    log: list[Any] = field(default_factory=list)
    log_blob: int = 0


@dataclass(slots=True)
class DeadLetter:
    id: str
    reason: str
    agent_id: str
    convo_id: str
    source: str
    external_id: str
    created_ms: int
    last_status: str
    last_snippet: str
    entries: list[Entry] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    came_from: str = ""  # the dead letter whose replay failed again as this one

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reason": self.reason,
            "agent_id": self.agent_id,
            "convo_id": self.convo_id,
            "source": self.source or ",".join(sorted({e.source for e in self.entries})),
            "external_id": self.external_id,
            "created_at": self.created_ms,
            "changes": len(self.entries),
            "attempts": len(self.attempts),
            "last_status": self.last_status,
            "last_answer": self.last_snippet,
            "came_from": self.came_from or None,
        }

    def to_json(self) -> dict[str, Any]:
        out = self.summary()
        out["events"] = [
            {
                "source": e.source,
                "event_id": e.event_id,
                "occurred_at": e.occurred_at,
                "change": e.name,
                "value": e.payload,
            }
            for e in self.entries
        ]
        out["attempt_log"] = self.attempts
        return out


@dataclass(frozen=True, slots=True)
class ConversationState:
    """One conversation's keys as `trace` reads them (raw: trace decodes them)."""

    pending: dict[str, str]  # p:<ck>
    applied: dict[str, str]  # hw:<ck>
    attempts: list[str]  # att:<ck>
    due: float | None
    inflight: float | None
    leased: bool
    suspended: bool  # `rq suspend`
    dead_letter_ids: list[str]  # every dead letter's (trace picks this conversation's)
    now_ms: int  # Redis's clock when read: due times, leases and quiet times are on it
