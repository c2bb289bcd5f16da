"""`convo-bridge trace AGENT CONVO`: everything the bridge knows about one conversation, to
answer "why did my conversation not update?".

Read from the store (bridge/store/keys.py): its pending changes and re-sends (`p:`), each
applied change with the source, event id and times it came from (`hw:` keeps the applied
entry per change), the last PATCH and the quiet time after an in-doubt one (`hw:` `_t`,
`_q`), attempts since the last success (`att:`), where it waits (`due`, `inflight`,
`lease:`), its dead letters, and what holds every conversation back (no worker, `rq
suspend`, an open circuit). `verdict` turns that into sentences.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from bridge.changes import Entry, decode
from bridge.errors import NotFound
from bridge.readable import change_text
from bridge.status import status_report
from bridge.store import Store, conversation_key
from bridge.times import iso

SHOWN = 200


@dataclass(frozen=True, slots=True)
class Change:
    name: str  # f:<field>, t:<tag>, h (last handoff step) or h:<version>
    value: Any
    source: str
    event_id: str
    occurred_at: int  # epoch ms at the sender (the receipt time when claimed_at is set)
    received_at: int  # epoch ms at ingest (Redis's clock)
    # what the sender said when it was later than receipt + max_clock_skew_s (not believed)
    claimed_at: int | None = None
    what: str = ""  # the change in words (`tag "vip" added`), for people

    @classmethod
    def of(cls, entry: Entry) -> Change:
        return cls(
            entry.name,
            entry.payload,
            entry.source,
            entry.event_id,
            entry.occurred_at,
            entry.received_ms,
            entry.claimed_ms,
            change_text(entry.name, entry.payload, entry.occurred_at),
        )


@dataclass(slots=True)
class Trace:
    agent_id: str
    convo_id: str
    pending: list[Change] = field(default_factory=list)
    applied: list[Change] = field(default_factory=list)
    last_patch_at: int | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    due_at: int | None = None  # in `due`: ready (<= now) or a scheduled retry
    in_flight_until: int | None = None  # held by a worker, lease until
    in_doubt: bool = False  # a PATCH's fate is unknown: the target may still apply it
    quiet_until: int | None = None  # after an in-doubt PATCH nothing is sent before this
    resends: list[str] = field(default_factory=list)  # fields sent again after one
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    workers_alive: int | None = None
    suspended: bool = False
    circuit: str = "closed"
    circuit_until: int | None = None
    now: int = 0
    # applied changes dated after now: older-dated events for them are dropped until then
    future: list[str] = field(default_factory=list)

    @property
    def waiting(self) -> bool:
        return self.due_at is not None

    def verdict(self) -> list[str]:
        """Why the conversation is (not) up to date, most important first."""
        out: list[str] = []
        if self.dead_letters:
            for d in self.dead_letters:
                out.append(
                    f"dead-lettered ({d['reason']}, last status {d['last_status'] or '-'}: "
                    f"{d['last_answer'][:120] or '-'}); replay with "
                    f"`convo-bridge dlq replay {d['id']}` or `rq requeue --queue convo-bridge {d['id']}`"
                )
        if self.in_flight_until is not None:
            out.append(f"a worker is PATCHing it now (lease until {when(self.in_flight_until)})")
        if self.in_doubt:
            quiet = (
                f" nothing is sent before {when(self.quiet_until)};"
                if self.quiet_until and self.quiet_until > self.now
                else ""
            )
            again = f" {', '.join(self.resends)} will be sent again" if self.resends else ""
            out.append(
                "in doubt: a PATCH got no answer after it was sent, so the target may still "
                f"apply it;{quiet}{again} so the newest values land after it"
            )
        if self.due_at is not None:
            if self.due_at > self.now:
                last = self.attempts[-1] if self.attempts else {}
                out.append(
                    f"retry scheduled at {when(self.due_at)} after {len(self.attempts)} "
                    f"failed attempt(s); last: {last.get('status', '-')} {str(last.get('answer', ''))[:120]}"
                )
            else:
                out.append(f"waiting for a worker since {when(self.due_at)}")
        if self.pending or self.due_at is not None:
            if self.workers_alive == 0:
                out.append("no worker is running: start `convo-bridge worker`")
            if self.suspended:
                out.append("workers are suspended (`rq suspend`): run `rq resume`")
            if self.circuit != "closed":
                out.append(
                    f"the circuit breaker is {self.circuit} until {when(self.circuit_until)}: "
                    "Convocore has been failing; one probe goes out then"
                )
        if self.future:
            shown = ", ".join(self.future[:10]) + (" …" if len(self.future) > 10 else "")
            out.append(
                f"applied values dated in the future ({shown}): events for them dated "
                "before that are dropped (newest wins); `convo-bridge fields clear "
                f"{self.agent_id} {self.convo_id} --future` drops those dates so the next "
                "event wins"
            )
        if self.pending and self.due_at is None and self.in_flight_until is None:
            out.append("pending changes are not scheduled (the sweep puts them back within 3 s)")
        if not out:
            if self.applied:
                out.append(
                    f"up to date: nothing pending; last PATCH at {when(self.last_patch_at)}. "
                    "An event older than an applied value is dropped (newest wins): compare "
                    "its occurred_at with the applied ones below"
                )
            else:
                out.append(
                    "the bridge has nothing for this conversation: no event was routed to it "
                    "(check the sender's source, its link with `convo-bridge links list`, and "
                    "unroutable dead letters)"
                )
        return out

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["waiting"] = self.waiting
        out["verdict"] = self.verdict()
        return out


def json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def render(t: Trace) -> str:
    """The trace for a terminal."""
    lines = [f"conversation  {t.agent_id} / {t.convo_id}", "why"]
    lines += [f"  - {line}" for line in t.verdict()]
    lines.append(
        f"state         waiting: {'due ' + when(t.due_at) if t.waiting else 'no'}; "
        f"in flight: {'until ' + when(t.in_flight_until) if t.in_flight_until else 'no'}; "
        f"in doubt: {'yes' if t.in_doubt else 'no'}; last PATCH: {when(t.last_patch_at)}"
    )
    for title, changes in (("pending", t.pending), ("applied", t.applied)):
        lines.append(f"{title:<14}{len(changes)}")
        for c in changes:
            lines.append(
                f"  {c.what}  from {c.source}:{c.event_id}  "
                f"occurred {when(c.occurred_at)}  received {when(c.received_at)}"
                + (
                    f"  (the sender said {when(c.claimed_at)}: in the future, not believed)"
                    if c.claimed_at is not None
                    else ""
                )
            )
    lines.append(f"attempts      {len(t.attempts)} since the last success")
    for a in t.attempts:
        lines.append(f"  {when(a.get('at'))}  {a.get('status')}  {str(a.get('answer', ''))[:100]}")
    lines.append(f"dead letters  {len(t.dead_letters)}")
    for d in t.dead_letters:
        lines.append(f"  {d['id']}  {d['reason']}  {d['last_status']}  {d['last_answer'][:80]}")
    convo = shlex.quote(f"{t.agent_id}/{t.convo_id}")
    lines.append(f"events        convo-bridge events --convo {convo}")
    return "\n".join(lines)


def when(ms: int | None) -> str:
    """An epoch-ms time for people (UTC ISO), or '-'."""
    return iso(ms or None)


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def trace(store: Store, agent_id: str, convo_id: str) -> Trace:
    """Raises StoreUnavailable when Redis does not answer (the store maps its errors)."""
    return await _trace(store, agent_id, convo_id)


async def _trace(store: Store, agent_id: str, convo_id: str) -> Trace:
    ck = conversation_key(agent_id, convo_id)
    state = await store.conversation(ck)
    now = state.now_ms  # Redis's clock: due times, leases and quiet times are on it
    pending, applied, attempts = state.pending, state.applied, state.attempts
    due, inflight, leased, suspended = state.due, state.inflight, state.leased, state.suspended
    dl_ids = state.dead_letter_ids
    t = Trace(agent_id, convo_id, now=now, suspended=bool(suspended))
    t.resends = sorted(k[2:] for k in pending if k.startswith("r:"))
    t.pending = sorted(
        (Change.of(decode(k, v)) for k, v in pending.items() if not k.startswith("r:")),
        key=lambda c: c.name,
    )[:SHOWN]
    done = sorted(  # hw: keeps the applied entry per change, beside _t, _q, _dl, _rs
        (Change.of(decode(k, v)) for k, v in applied.items() if k[:1] != "_" and "\n" in v),
        key=lambda c: c.name,
    )
    t.applied = done[:SHOWN]
    t.future = [c.name for c in done if c.occurred_at > now]
    t.last_patch_at = int(applied["_t"]) if applied.get("_t") else None
    t.quiet_until = int(applied["_q"]) if applied.get("_q") else None
    t.attempts = [orjson.loads(a) for a in attempts]
    t.due_at = int(due) if due is not None else None
    t.in_flight_until = int(inflight) if inflight is not None and leased else None
    last = t.attempts[-1] if t.attempts else {}
    t.in_doubt = (
        bool(t.resends)
        or bool(last.get("in_doubt"))
        or (t.quiet_until is not None and t.quiet_until > now)
    )
    t.dead_letters = await _dead_letters_of(store, ck, [_text(i) for i in dl_ids])
    report = await status_report(store)
    t.workers_alive = report.workers_alive
    t.circuit, t.circuit_until = report.circuit.state, report.circuit.until_ms
    return t


async def _dead_letters_of(store: Store, ck: str, ids: list[str]) -> list[dict[str, Any]]:
    """This conversation's dead letters (a scan of every dead letter's conversation)."""
    out = []
    for dl_id in (await store.dead_letters_of(ck, ids))[:SHOWN]:
        try:
            out.append((await store.dead_letter(dl_id)).summary())
        except NotFound:
            continue  # replayed or purged meanwhile
    return out
