"""What a change means, in words: the one place the internal change names (`f:<field>`,
`t:<tag>`, `h:<version>`, see bridge/changes.py) become text for people, so `trace`,
`dlq show`, the admin page and RQ's tools never show the encoding itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from bridge.changes import Entry
from bridge.times import iso

if TYPE_CHECKING:
    from bridge.store.records import DeadLetter

VALUE_SHOWN = 80


def value_text(value: Any, limit: int = VALUE_SHOWN) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def change_text(name: str, payload: Any, occurred_at: int | None = None) -> str:
    """`title = "Refund question"`, `tag vip added`, `handoff requested (team billing) at …`;
    a handoff step that names no `at` happened when its event occurred (`occurred_at`)."""
    kind, _, rest = name.partition(":")
    if kind == "f":
        return f"{rest} = {value_text(payload)}"
    if kind == "t":
        return f"tag {value_text(rest)} {'added' if payload else 'removed'}"
    if kind == "h" and isinstance(payload, dict):
        parts = [f"handoff {payload.get('event', '?')}"]
        for key, label in (("by", "by"), ("team_key", "team"), ("organization_id", "org")):
            if payload.get(key):
                parts.append(f"{label} {payload[key]}")
        return " ".join(parts) + f" at {iso(payload.get('at', occurred_at))}"
    return f"{name} = {value_text(payload)}"  # a name this version does not know


def change_field(name: str) -> str:
    """What a change sets: the field, `tags` or `handoffHistory`."""
    kind, _, rest = name.partition(":")
    return {"f": rest, "t": "tags", "h": "handoffHistory"}.get(kind, name)


def change_line(entry: Entry) -> str:
    """One change of a dead letter or trace: what it does and which event it came from."""
    return (
        f"{change_text(entry.name, entry.payload, entry.occurred_at)}  from {entry.source}:{entry.event_id}  "
        f"occurred {iso(entry.occurred_at)}"
    )


def attempt_line(attempt: Mapping[str, Any]) -> str:
    answer = str(attempt.get("answer", "") or "-").replace("\n", " ")[:120]
    return f"{iso(attempt.get('at'))}  {attempt.get('status', '-')}  {answer}"


def dead_letter_text(d: DeadLetter) -> str:
    """`convo-bridge dlq show ID`: one dead letter for a terminal."""
    where = f"{d.agent_id}/{d.convo_id}" if d.agent_id else f"{d.source}:{d.external_id}"
    lines = [
        f"dead letter   {d.id}",
        f"reason        {d.reason}",
        f"conversation  {where}" + ("" if d.agent_id else " (no link yet)"),
        f"since         {iso(d.created_ms or None)}",
        f"last answer   {d.last_status or '-'}  {d.last_snippet or '-'}",
        f"changes       {len(d.entries)}",
        *(f"  {change_line(e)}" for e in d.entries),
        f"attempts      {len(d.attempts)}",
        *(f"  {attempt_line(a)}" for a in d.attempts),
        f"replay        convo-bridge dlq replay {d.id}  (or rq requeue --queue convo-bridge {d.id})",
    ]
    return "\n".join(lines)
