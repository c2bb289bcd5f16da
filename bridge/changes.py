"""An intent as versioned per-field changes: what ingest merges into a conversation's pending
state and what the worker composes into one PATCH.

A change is a (name, entry) pair. Names: `f:<field>` a Convocore field, `t:<tag>` one tag
added (1) or removed (0), `h:<version>` one handoff step. The entry string is

    <version>\\n<source>\\n<event id>\\n<received at>[,<sender's time>]\\n<JSON payload>

where `version` is VERSION_LEN (27) characters, 15 digits of occurred_at (epoch ms) then 12
hex digits of the event's identity, so "newer" is a plain string comparison in Redis Lua and
ties between events of the same millisecond break the same way on every worker.

Ingest builds only the payloads (`payloads`); the accept script (store/lua/accept.lua)
makes the entries, because both times are Redis's clock: the receipt time (which feeds the
webhook → PATCH latency metric and log field) and the version's time when the sender gave
none, or gave one later than receipt + `[ingest] max_clock_skew_s`. The sender's time is
then kept after the receipt time, for `trace`: a bad clock never freezes a field. `changes`
builds the same entries in Python (tests and tools; a test keeps both sides equal).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from bridge.intents import Intent

TIME_DIGITS = 15
IDENTITY_DIGITS = 12
VERSION_LEN = TIME_DIGITS + IDENTITY_DIGITS  # the Lua scripts get it from here (store/scripts.py)
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def safe_event_id(event_id: str) -> str:
    """Event ids become part of Redis keys and entries: anything odd is hashed."""
    if len(event_id) > 200 or _UNSAFE.search(event_id) or not event_id:
        return "sha256:" + hashlib.sha256(event_id.encode("utf-8", "replace")).hexdigest()
    return event_id


HANDOFF = "h:"  # a handoff step's name before its version is known: h:<version>


def identity(source: str, event_id: str) -> str:
    """The version's last IDENTITY_DIGITS: the same event always gets the same ones."""
    digest = hashlib.sha1(f"{source}\n{event_id}".encode(), usedforsecurity=False).hexdigest()
    return digest[:IDENTITY_DIGITS]


def version(occurred_at: int, source: str, event_id: str) -> str:
    return f"{occurred_at:0{TIME_DIGITS}d}{identity(source, event_id)}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One pending change as the worker reads it back."""

    name: str
    raw: str  # the whole entry string, compared verbatim when settling
    version: str
    source: str
    event_id: str
    received_ms: int
    payload: Any
    # the sender's occurred_at when it was later than receipt + max_clock_skew_s: not
    # believed, the change counts as happening when received (occurred_at is that time)
    claimed_ms: int | None = None

    @property
    def occurred_at(self) -> int:
        return int(self.version[:TIME_DIGITS])


def encode(
    ver: str,
    source: str,
    event_id: str,
    received_ms: int,
    payload: Any,
    claimed_ms: int | None = None,
) -> str:
    received = str(received_ms) if claimed_ms is None else f"{received_ms},{claimed_ms}"
    return f"{ver}\n{source}\n{event_id}\n{received}\n{orjson.dumps(payload).decode()}"


def decode(name: str, raw: str) -> Entry:
    ver, source, event_id, received, payload = raw.split("\n", 4)
    at, _, claimed = received.partition(",")
    return Entry(
        name,
        raw,
        ver,
        source,
        event_id,
        int(at),
        orjson.loads(payload),
        int(claimed) if claimed else None,
    )


def changes(
    intent: Intent, source: str, event_id: str, completed_state: str, received_ms: int = 0
) -> list[tuple[str, str]]:
    """The (name, entry) pairs that carry `intent`, all at the intent's version, as the
    accept script makes them for a believed occurred_at."""
    ver = version(intent.occurred_at, source, event_id)
    head = f"{ver}\n{source}\n{event_id}\n{received_ms}\n"
    return [
        (f"h:{ver}" if name == HANDOFF else name, head + payload)
        for name, payload in payloads(intent, completed_state)
    ]


def payloads(intent: Intent, completed_state: str) -> list[tuple[str, str]]:
    """The (name, JSON payload) pairs that carry `intent`; a handoff step is named HANDOFF
    and has no `at` when the intent gave none (it is then the version's time)."""

    def encode_(payload: Any) -> str:
        return orjson.dumps(payload).decode()

    fields: dict[str, Any] = {}
    h = intent.handoff
    if h is not None:
        if h.event == "requested":
            fields["state"] = "requested_chat"
            if h.team_key is not None:
                fields["requestedTeamKey"] = h.team_key
        elif h.event == "accepted":
            fields["state"] = "human-chatting"
            if h.by is not None:
                fields["chatAssignedTo"] = h.by
        elif h.event == "released":  # the human let go unfinished: wait for one again
            fields["state"] = "requested_chat"
            fields["chatAssignedTo"] = ""  # a string field: empty, never null
        else:
            fields["state"] = completed_state
    fields.update(intent.set)  # an explicit `set` wins over what the handoff implies

    out = [(f"f:{name}", encode_(value)) for name, value in fields.items()]
    removed = set(intent.tags_remove)
    out += [(f"t:{tag}", encode_(0)) for tag in removed]
    out += [
        (f"t:{tag}", encode_(1)) for tag in dict.fromkeys(intent.tags_add) if tag not in removed
    ]
    if h is not None:
        step = {
            "event": h.event,
            "at": h.at,
            "by": h.by,
            "team_key": h.team_key,
            "team_ids": list(h.team_ids) if h.team_ids is not None else None,
            "team_keys": list(h.team_keys) if h.team_keys is not None else None,
            "organization_id": h.organization_id,
        }
        step = {k: v for k, v in step.items() if v is not None}
        out.append((HANDOFF, encode_(step)))
    return out
