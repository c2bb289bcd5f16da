"""The conversation-update intent: the one word ingest and delivery share.

Providers turn a sender's event into `Intent`s; the `standard` kind takes them as its body.
`parse_intent` is the strict reader: every refusal names the field and what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge.catalogue import field_problem, is_number
from bridge.errors import PayloadError

# the steps of a human handoff; each becomes state, chatAssignedTo and handoffHistory
HANDOFF_EVENTS = ("requested", "accepted", "completed", "released")
# occurred_at outside [2000-01-01, 2100-01-01) is a sender bug, not a time.
MIN_TIME_MS = 946_684_800_000
MAX_TIME_MS = 4_102_444_800_000
MAX_ID_LEN = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOP_KEYS = ("type", "agent_id", "convo_id", "external_id", "occurred_at", "set", "tags", "handoff")
_HANDOFF_KEYS = ("event", "at", "by", "team_key", "team_ids", "team_keys", "organization_id")


@dataclass(frozen=True, slots=True)
class Handoff:
    event: str
    at: int | None = None  # epoch ms; None means the intent's occurred_at
    by: str | None = None
    team_key: str | None = None
    team_ids: tuple[str, ...] | None = None
    team_keys: tuple[str, ...] | None = None
    organization_id: str | None = None


@dataclass(frozen=True, slots=True)
class Intent:
    occurred_at: int  # epoch ms
    agent_id: str | None = None
    convo_id: str | None = None
    external_id: str | None = None
    set: Mapping[str, Any] = field(default_factory=dict)
    tags_add: tuple[str, ...] = ()
    tags_remove: tuple[str, ...] = ()
    handoff: Handoff | None = None

    def is_empty(self) -> bool:
        return not (self.set or self.tags_add or self.tags_remove or self.handoff)

    def to_json(self) -> dict[str, Any]:
        """The intent in its wire form (what the `standard` kind accepts), empty parts left out."""
        out: dict[str, Any] = {"type": "conversation.update"}
        for key in ("agent_id", "convo_id", "external_id"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["occurred_at"] = self.occurred_at
        if self.set:
            out["set"] = dict(self.set)
        tags: dict[str, list[str]] = {}
        if self.tags_add:
            tags["add"] = list(self.tags_add)
        if self.tags_remove:
            tags["remove"] = list(self.tags_remove)
        if tags:
            out["tags"] = tags
        if self.handoff is not None:
            h = self.handoff
            hand: dict[str, Any] = {"event": h.event}
            for key in _HANDOFF_KEYS[1:]:
                value = getattr(h, key)
                if value is not None:
                    hand[key] = list(value) if isinstance(value, tuple) else value
            out["handoff"] = hand
        return out


def parse_time(value: Any, name: str) -> int:
    """Epoch milliseconds from an integer of ms or an RFC 3339 string with a time zone."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            raise PayloadError(
                f"{name}: expected epoch milliseconds or an RFC 3339 time, got {value[:40]!r}"
            ) from None
        if moment.tzinfo is None:
            raise PayloadError(f"{name}: an RFC 3339 time needs a zone, e.g. 'Z' or '+02:00'")
        ms = int(moment.timestamp() * 1000)
    elif is_number(value) and not isinstance(value, bool):
        ms = int(value)
    else:
        raise PayloadError(f"{name}: expected epoch milliseconds or an RFC 3339 time")
    if not MIN_TIME_MS <= ms < MAX_TIME_MS:
        raise PayloadError(
            f"{name}: {value!r} is outside 2000-01-01..2100-01-01 (epoch milliseconds expected)"
        )
    return ms


def check_id(value: Any, name: str) -> str:
    """An agent, conversation or external id: a short printable string, never '.' or '..'.
    Agent and conversation ids go through `check_segment_id` as well."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError(f"{name}: expected a string id")
    text = str(value)
    if not text or len(text) > MAX_ID_LEN:
        raise PayloadError(f"{name}: expected 1 to {MAX_ID_LEN} characters")
    if _CONTROL.search(text) or text in (".", ".."):
        raise PayloadError(f"{name}: control characters and '.'/'..' are not allowed in an id")
    return text


def check_segment_id(value: Any, name: str) -> str:
    """An agent or conversation id: `check_id`, and usable as one segment of the PATCH URL
    (no '/'), so Convocore can find the conversation it names."""
    text = check_id(value, name)
    problem = segment_problem(text)
    if problem:
        raise PayloadError(f"{name}: {problem}")
    return text


def segment_problem(text: str) -> str | None:
    """Why `text` cannot be an agent or conversation id, or None. Ids are percent-encoded
    into the PATCH URL, but an encoded '/' (%2F) does not reach Convocore as part of one id
    (routers and proxies refuse it or split on it): it could only end as a 404 dead letter."""
    if "/" in text:
        return "'/' is not allowed in an agent or conversation id (it separates URL segments)"
    return None


def _opt_str(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{path}{key}: expected a string")
    return value


def _str_list(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PayloadError(f"{name}: expected an array of strings")
    return tuple(value)


def parse_handoff(obj: Any) -> Handoff:
    if not isinstance(obj, dict):
        raise PayloadError("handoff: expected an object")
    for key in obj:
        if key not in _HANDOFF_KEYS:
            raise PayloadError(f"handoff.{key}: unknown key; allowed: {', '.join(_HANDOFF_KEYS)}")
    event = obj.get("event")
    if event not in HANDOFF_EVENTS:
        raise PayloadError(f"handoff.event: expected one of {', '.join(HANDOFF_EVENTS)}")
    at = obj.get("at")
    lists = {
        k: _str_list(obj[k], f"handoff.{k}") if obj.get(k) is not None else None
        for k in ("team_ids", "team_keys")
    }
    return Handoff(
        event=event,
        at=None if at is None else parse_time(at, "handoff.at"),
        by=_opt_str(obj, "by", "handoff."),
        team_key=_opt_str(obj, "team_key", "handoff."),
        team_ids=lists["team_ids"],
        team_keys=lists["team_keys"],
        organization_id=_opt_str(obj, "organization_id", "handoff."),
    )


def parse_intent(obj: Any) -> Intent:
    """Read one intent in its wire form; PayloadError names the offending field."""
    if not isinstance(obj, dict):
        raise PayloadError("expected an intent object")
    for key in obj:
        if key not in _TOP_KEYS:
            raise PayloadError(f"{key}: unknown key; an intent has {', '.join(_TOP_KEYS)}")
    if obj.get("type", "conversation.update") != "conversation.update":
        raise PayloadError("type: expected 'conversation.update'")
    if "occurred_at" not in obj:
        raise PayloadError("occurred_at: required (epoch milliseconds or RFC 3339)")
    occurred_at = parse_time(obj["occurred_at"], "occurred_at")

    ids = {k: check_segment_id(obj[k], k) for k in ("agent_id", "convo_id") if k in obj}
    if "external_id" in obj:
        ids["external_id"] = check_id(obj["external_id"], "external_id")
    if "external_id" not in ids and not ("agent_id" in ids and "convo_id" in ids):
        raise PayloadError("agent_id: give agent_id and convo_id, or external_id")

    fields = obj.get("set", {})
    if not isinstance(fields, dict):
        raise PayloadError("set: expected an object of Convocore fields")
    for name, value in fields.items():
        problem = field_problem(name, value)
        if problem:
            raise PayloadError(f"set.{name}: {problem}")

    tags = obj.get("tags", {})
    if not isinstance(tags, dict):
        raise PayloadError("tags: expected an object with 'add' and/or 'remove'")
    for key in tags:
        if key not in ("add", "remove"):
            raise PayloadError(f"tags.{key}: unknown key; expected add or remove")
    add = _str_list(tags.get("add", []), "tags.add")
    remove = _str_list(tags.get("remove", []), "tags.remove")

    handoff = parse_handoff(obj["handoff"]) if obj.get("handoff") is not None else None
    return Intent(
        occurred_at=occurred_at,
        agent_id=ids.get("agent_id"),
        convo_id=ids.get("convo_id"),
        external_id=ids.get("external_id"),
        set=fields,
        tags_add=add,
        tags_remove=remove,
        handoff=handoff,
    )
