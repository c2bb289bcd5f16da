"""The event log: every webhook request (verdict and why, event ids, where they went, headers
without secrets, the body up to a cap) and every PATCH (conversation, body, status, answer,
duration, attempt), kept in one Redis stream bounded by `[eventlog]` (keys.py: events).

Entries are written in the same Redis call as the work they describe: a request's row rides
in the accept script's call (which fills in each event's verdict), a PATCH's in its settle
call (which fills in the dead letter it made); a refused request's goes through the grouped
`log` script. Reading is a search, newest first, over bounded
slices of the stream (lua/events.lua), so a search never blocks Redis for long.

A stream entry holds flat fields (all strings), the searched ones first: `k` kind (webhook
| patch), `v` verdict, `c` the accept letters of the request's events, `st` HTTP status,
JSON lists `src` sources, `ev` event ids, `to` conversation keys, `ext` external ids; then
`ig` ignored events and `why` (webhooks), `ms` duration, `n` attempt, `dl` dead-letter id
(PATCHes); last `d`, a JSON object of what is shown but not searched: `h` headers, `b` body,
`bl` its size, `a` the answer. Passing `d` through unread halved the log's cost in Redis.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from bridge.config import EventLogSettings, SourceSettings
from bridge.errors import PayloadError
from bridge.store import Outcome, Store, Work
from bridge.store.keys import LATENCY_BUCKETS_MS, LOG_ROW, conversation_key, split_key
from bridge.times import iso, since_ms

Kind = Literal["webhook", "patch"]
WEBHOOK_VERDICTS = ("accepted", "duplicate", "ignored", "refused", "unroutable")
PATCH_VERDICTS = ("applied", "retry", "dead_lettered", "released")
VERDICTS = WEBHOOK_VERDICTS + PATCH_VERDICTS
# accept's letter per event, as a verdict
LETTERS = {"a": "accepted", "d": "duplicate", "p": "unroutable", "i": "ignored"}

# Headers worth keeping: content negotiation, the sender's ids, events and times. Anything
# that may carry a secret (signatures, authorization, cookies, tokens, keys) is never kept,
# whatever its name otherwise says. Names of headers not kept are listed all the same.
_KEEP = re.compile(
    r"^(content-type|content-length|content-encoding|user-agent|x-forwarded-for|x-request-id)$"
    r"|(-id|-event|-events|-topic|-timestamp|-attempt|-retry|-delivery|-version)$"
)
_NEVER = re.compile(r"sign|auth|secret|token|key|cookie|pass|session|hmac|credential")
REDACTED = "(redacted)"
NOT_KEPT = "(not kept)"
MAX_HEADER_VALUE = 200
MAX_HEADERS = 40


def kept_headers(headers: Mapping[str, str], also_secret: Sequence[str] = ()) -> dict[str, str]:
    """The headers a log entry may hold: allow-listed names with their values; a name that
    may carry a secret (or that `also_secret`, the source's config, names) with REDACTED;
    any other name with NOT_KEPT."""
    out: dict[str, str] = {}
    secret = {h.lower() for h in also_secret} if also_secret else ()
    for name, value in list(headers.items())[:MAX_HEADERS]:
        low = name.lower()
        instead = _DECIDED.get(low, "?")
        if instead == "?":
            instead = REDACTED if _NEVER.search(low) else None if _KEEP.search(low) else NOT_KEPT
            if len(_DECIDED) < 1000:  # senders repeat a few dozen names: decide each once
                _DECIDED[low] = instead
        if low in secret:
            instead = REDACTED
        out[low] = value[:MAX_HEADER_VALUE] if instead is None else instead
    return out


_DECIDED: dict[str, str | None] = {}  # header name -> what stands for its value (None: itself)


def log_bounds(settings: EventLogSettings) -> tuple[int, int]:
    """(max entries, keep ms): the stream's bounds, as the log scripts take them."""
    return settings.max_events, settings.retention_s * 1000


def secret_headers(source: SourceSettings | None) -> list[str]:
    """Header names a source's config makes secret (a shared-secret or signature header)."""
    if source is None:
        return []
    names = ("header", "signature_header", "token_header")  # each kind's Options: attributes
    return [v for k in names if isinstance(v := getattr(source.options, k, None), str)]


def body_secret(source: SourceSettings | None) -> str:
    """The source's secret when its sender proves itself with it inside the body (a kind's
    `token_field`: LiveChat's secret_key, Salesforce's OrganizationId), else ''."""
    if source is None or not getattr(source.options, "token_field", None):
        return ""
    return source.secret


def _blob(settings: EventLogSettings, body: bytes, secret: str = "", **more: Any) -> bytes:
    """The entry's `d` field: what is shown but never searched (headers, body, answer), one
    JSON object the scripts pass through without decoding it. `secret`, where the body
    carries one, is shown as REDACTED."""
    kept: dict[str, Any] = {"bl": len(body), **more}
    if settings.bodies:
        if secret:
            body = body.replace(secret.encode(), REDACTED.encode())
        kept["b"] = body[: settings.max_body_bytes].decode("utf-8", "replace")
    return orjson.dumps(kept)


def _list(values: Sequence[str]) -> str:
    return orjson.dumps(list(values)).decode()


def webhook_row(
    settings: EventLogSettings,
    *,
    source: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    secret_headers: Sequence[str] = (),
    body_secret: str = "",
    verdict: str = "",
    why: str = "",
    routed: int = 0,
    event_ids: Sequence[str] = (),
    conversations: Sequence[str] = (),
    external_ids: Sequence[str] = (),
    ignored: int = 0,
) -> list[Any]:
    """One request's row for the log scripts: [LOG_ROW, routed events, verdict, blob,
    field, value, ...]. `event_ids` lists the routed events first (their conversations in
    `conversations`), then the ignored ones; an empty verdict is filled in from the accept
    letters. Every row has the same fields in the same order: Redis then stores their names
    once per stream node."""
    return [
        LOG_ROW,
        routed,
        verdict,
        _blob(settings, body, body_secret, h=kept_headers(headers, secret_headers)),
        "k",
        "webhook",
        "st",
        str(status),
        "src",
        _list([source]),
        "ev",
        _list(event_ids),
        "to",
        _list(conversations),
        "ext",
        _list([e for e in external_ids if e]),
        "ig",
        str(ignored),
        "why",
        why[:300],
    ]


def patch_row(
    settings: EventLogSettings,
    *,
    ck: str,
    verdict: str,
    status: str,
    body: bytes,
    answer: str,
    duration_ms: float,
    attempt: int,
    sources: Sequence[str],
    event_ids: Sequence[str],
    dead_letter: str = "",
    latency_ms: float | None = None,
) -> list[Any]:
    """One PATCH's row for the log scripts (the same shape as webhook_row's); `latency_ms`,
    from the oldest webhook it carried to its success, goes to the charts as a bucket."""
    return [
        LOG_ROW,
        0,
        verdict,
        _blob(settings, body, a=answer[:300]),
        "k",
        "patch",
        "st",
        status,
        "src",
        _list(sorted(set(sources))),
        "ev",
        _list(sorted(set(event_ids))),
        "to",
        _list([ck]),
        "ms",
        f"{duration_ms:.1f}",
        "n",
        str(attempt),
        "dl",
        dead_letter,
        "lb",
        "" if latency_ms is None else str(bisect_left(LATENCY_BUCKETS_MS, latency_ms)),
    ]


_OUTCOME_VERDICT = {"ok": "applied", "retry": "retry", "dead": "dead_lettered"}


def patch_entry(settings: EventLogSettings, work: Work, outcome: Outcome) -> list[Any] | None:
    """A delivery attempt's row, linked to its events by their ids (its dead letter's id is
    filled in by the settle call that writes it); None when the log is off or nothing was
    attempted (work let go, or nothing left to send)."""
    verdict = _OUTCOME_VERDICT.get(outcome.kind)
    if not settings.enabled or verdict is None or (outcome.kind == "ok" and not outcome.body):
        return None
    attempt = dict(outcome.attempt or {})
    return patch_row(
        settings,
        ck=work.ck,
        verdict=verdict,
        status="2xx" if outcome.kind == "ok" else str(attempt.get("status", "")),
        body=outcome.body,
        answer=outcome.answer or str(attempt.get("answer", "")),
        duration_ms=outcome.duration_ms or float(attempt.get("duration_ms", 0.0)),
        attempt=work.attempts + 1,
        sources=[e.source for e in work.entries],
        event_ids=[e.event_id for e in work.entries],
        latency_ms=_since_webhook_ms(work) if outcome.kind == "ok" else None,
    )


def _since_webhook_ms(work: Work) -> float | None:
    received = [e.received_ms for e in work.entries if e.received_ms]
    # received_ms is on Redis's clock: this host's, moved by the offset measured at take
    now = time.time() * 1000 + work.clock_offset_ms
    return max(now - min(received), 0.0) if received else None


@dataclass(frozen=True, slots=True)
class EventEntry:
    """One event-log entry as read back."""

    id: str
    at_ms: int
    kind: str
    verdict: str
    status: str
    sources: list[str]
    event_ids: list[str]
    conversations: list[str]  # "agent/convo" (percent-encoded parts), "" for unroutable
    external_ids: list[str] = field(default_factory=list)
    event_verdicts: list[str] = field(default_factory=list)  # per event id, webhooks only
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    body_bytes: int = 0
    why: str = ""
    answer: str = ""
    duration_ms: float | None = None
    attempt: int | None = None
    dead_letter: str = ""
    # per event id: the sender's own time (epoch ms) when it was future-dated and set aside
    claimed_ms: list[int | None] = field(default_factory=list)

    @classmethod
    def from_stream(cls, entry_id: str, flat: Sequence[str]) -> EventEntry:
        f = dict(zip(flat[::2], flat[1::2], strict=True))
        d = orjson.loads(f["d"]) if f.get("d") else {}
        event_ids = _loads_list(f.get("ev"))
        # A, P: accepted or parked with the sender's future time set aside (accept.lua)
        verdicts = [LETTERS.get(c.lower(), "?") for c in f.get("c", "")]
        claimed = (
            [int(x) if x.isdigit() else None for x in f["cl"].split(",")] if f.get("cl") else []
        )
        verdicts += ["ignored"] * int(f.get("ig", "0") or 0)
        return cls(
            id=entry_id,
            at_ms=int(entry_id.split("-", 1)[0]),
            kind=f.get("k", ""),
            verdict=f.get("v", ""),
            status=f.get("st", ""),
            sources=_loads_list(f.get("src")),
            event_ids=event_ids,
            conversations=_loads_list(f.get("to")),
            external_ids=_loads_list(f.get("ext")),
            event_verdicts=verdicts[: len(event_ids)] if f.get("k") == "webhook" else [],
            headers=d.get("h", {}),
            body=d.get("b"),
            body_bytes=int(d.get("bl", 0)),
            why=f.get("why", ""),
            answer=d.get("a", ""),
            duration_ms=float(f["ms"]) if f.get("ms") else None,
            attempt=int(f["n"]) if f.get("n") else None,
            dead_letter=f.get("dl", ""),
            claimed_ms=claimed[: len(event_ids)],
        )

    def claimed_at(self, index: int) -> int | None:
        """Event `index`'s set-aside future time, if it had one."""
        return self.claimed_ms[index] if index < len(self.claimed_ms) else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "at": self.at_ms,
            "kind": self.kind,
            "verdict": self.verdict,
            "status": self.status,
            "sources": self.sources,
            "events": [
                {"event_id": e, "verdict": v}
                | ({"claimed_at": c} if (c := self.claimed_at(n)) is not None else {})
                for n, (e, v) in enumerate(
                    zip(
                        self.event_ids,
                        self.event_verdicts or [""] * len(self.event_ids),
                        strict=True,
                    )
                )
            ],
            "conversations": [_convo_json(ck) for ck in self.conversations],
            "external_ids": self.external_ids,
            "body": self.body,
            "body_bytes": self.body_bytes,
        }
        if self.kind == "webhook":
            out["headers"] = self.headers
            out["why"] = self.why
        else:
            out |= {
                "answer": self.answer,
                "duration_ms": self.duration_ms,
                "attempt": self.attempt,
                "dead_letter": self.dead_letter,
            }
        return out


def _convo_json(ck: str) -> dict[str, str] | None:
    if not ck:
        return None
    agent, convo = split_key(ck)
    return {"agent_id": agent, "convo_id": convo}


def _loads_list(text: str | None) -> list[str]:
    if not text:
        return []
    value = orjson.loads(text)
    return [str(v) for v in value] if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class EventQuery:
    """What `convo-bridge events` and `GET /admin/events` search for; every filter given
    must hold."""

    source: str | None = None
    convo: tuple[str, str] | None = None  # (agent id, convo id)
    external_id: str | None = None
    event_id: str | None = None
    verdict: str | None = None
    status: str | None = None
    kind: Kind | None = None
    since_ms: int | None = None
    before: str | None = None  # an entry id: only entries older than it (paging)
    limit: int = 50

    def groups(self) -> list[list[list[str]]]:
        """The filter for lua/events.lua: groups of [field, mode, needle] alternatives."""
        out: list[list[list[str]]] = []
        if self.source is not None:
            out.append([["src", "in", _element(self.source)]])
        if self.convo is not None:
            out.append([["to", "in", _element(conversation_key(*self.convo))]])
        if self.external_id is not None:
            out.append([["ext", "in", _element(self.external_id)]])
        if self.event_id is not None:
            out.append([["ev", "in", _element(self.event_id)]])
        if self.status is not None:
            out.append([["st", "eq", self.status]])
        if self.kind is not None:
            out.append([["k", "eq", self.kind]])
        if self.verdict is not None:
            alternatives = [["v", "eq", self.verdict]]
            letter = {"duplicate": "d", "unroutable": "p", "accepted": "a"}.get(self.verdict)
            if letter:
                alternatives.append(["c", "in", letter])
            if self.verdict == "ignored":  # any count of ignored events but 0
                alternatives += [["ig", "in", d] for d in "123456789"]
            out.append(alternatives)
        return out


def _element(value: str) -> str:
    """`value` as it appears inside a JSON list: found in one only as a whole element."""
    return orjson.dumps(value).decode()


async def search(store: Store, query: EventQuery) -> list[EventEntry]:
    """The entries `query` asks for, newest first."""
    upper = f"({query.before}" if query.before else "+"
    lower = str(query.since_ms) if query.since_ms is not None else "-"
    found = await store.events(query.groups(), upper=upper, lower=lower, limit=query.limit)
    return [EventEntry.from_stream(i, flat) for i, flat in found]


def query_from(params: Mapping[str, str]) -> EventQuery:
    """An EventQuery from the CLI's options or the admin API's query string; a bad value is
    a PayloadError naming it."""
    convo = None
    if params.get("convo"):
        agent, sep, convo_id = params["convo"].partition("/")
        if not sep or not agent or not convo_id:
            raise PayloadError("convo: expected AGENT_ID/CONVO_ID")
        convo = (agent, convo_id)
    verdict = params.get("verdict") or None
    if verdict is not None and verdict not in VERDICTS:
        raise PayloadError(f"verdict: expected one of {', '.join(VERDICTS)}, got {verdict[:40]!r}")
    kind = params.get("kind") or None
    if kind is not None and kind not in ("webhook", "patch"):
        raise PayloadError(f"kind: expected webhook or patch, got {kind[:40]!r}")
    limit_text = params.get("limit") or "50"
    if not limit_text.isascii() or not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        raise PayloadError(
            f"limit: expected a whole number from 1 to 1000, got {limit_text[:20]!r}"
        )
    before = params.get("before") or None
    if before is not None and not re.fullmatch(r"[0-9]{1,15}-[0-9]{1,10}", before):
        raise PayloadError(
            f"before: expected an entry id such as 1764000000000-0, got {before[:40]!r}"
        )
    return EventQuery(
        source=params.get("source") or None,
        convo=convo,
        external_id=params.get("external_id") or None,
        event_id=params.get("event_id") or None,
        verdict=verdict,
        status=params.get("status") or None,
        kind=kind,  # type: ignore[arg-type]
        since_ms=parse_since(params["since"]) if params.get("since") else None,
        before=before,
        limit=int(limit_text),
    )


def parse_since(text: str, now: float | None = None) -> int:
    """`since` of a search: see bridge.times.since_ms (a 400 naming `since` when bad)."""
    return since_ms(text, "since", None if now is None else int(now * 1000))


def render(entries: Sequence[EventEntry]) -> str:
    """One line per entry, newest first, for people."""
    if not entries:
        return "no events"
    lines = []
    for e in entries:
        at = iso(e.at_ms)
        convos = " ".join("/".join(split_key(ck)) if ck else "(no link)" for ck in e.conversations)
        if e.kind == "webhook":
            verdicts = e.event_verdicts or [""] * len(e.event_ids)
            events = " ".join(
                f"{i}={v}" + (f" (sender said {iso(c)}, future)" if (c := e.claimed_at(n)) else "")
                for n, (i, v) in enumerate(zip(e.event_ids, verdicts, strict=True))
            )
            detail = e.why or events
            lines.append(
                f"{at}  {e.id:<17} webhook {','.join(e.sources)} {e.status} {e.verdict:<10} "
                f"{convos}  {detail}".rstrip()
            )
        else:
            lines.append(
                f"{at}  {e.id:<17} patch   {convos} {e.status} {e.verdict:<10} "
                f"attempt {e.attempt} {e.duration_ms} ms  events {' '.join(e.event_ids)}  "
                f"{e.answer[:80]}".rstrip()
            )
    return "\n".join(lines)
