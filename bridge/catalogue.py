"""The Convocore conversation fields and their types, as the conversations API documents them.

Both ingest (validating `set`) and the sandbox (validating a PATCH) check values against this
one table, so the bridge can never accept what the target would refuse.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

STATES = ("requested_chat", "human-chatting", "ai-chatting", "ended_chat")

_STRING = [
    "userEmail",
    "userName",
    "userPhone",
    "userAddress",
    "userCompany",
    "userWebsite",
    "notes",
    "note",
    "userProfilePic",
    "ID",
    "userID",
    "campaignId",
    "userImage",
    "socialHandle",
    "userOs",
    "userBrowser",
    "whatsappPhoneNumberId",
    "whatsappBusinessNumber",
    "whatsappDisplayPhoneNumber",
    "whatsappBusinessAccountId",
    "userPlatform",
    "chatAssignedTo",
    "lang",
    "endReason",
    "notifyToUserId",
    "summary",
    "requestedTeamKey",
    "delegatedBy",
    "funnelSummary",
    "title",
    "lastMessage",
]
_NUMBER = [
    "messagesNum",
    "interactionsNum",
    "ts",
    "convoTimeSeconds",
    "firstMessageTS",
    "lastMessageTS",
    "sessionsNum",
    "ratingFrom5",
    "totalUserInteractions",
    "averageLatency",
    "delegatedAt",
    "lastViewed",
    "leadScore",
    "funnelLastEvaluated",
]
_BOOLEAN = [
    "isFollowingBusiness",
    "socialVerified",
    "isTyping",
    "isBlocked",
    "isTest",
    "funnelNotificationSent",
]
_ARRAY = ["campaignCalls", "sessions", "metrics", "funnelStepsMatched", "funnelScoreHistory"]
_OBJECT = ["vapi", "nodesInfo", "voice", "detailedCost", "funnelExtractedData"]
_ANY = ["origin", "capturedVariables"]

SERVER_SET = frozenset({"lastModified"})
HANDOFF_ENTRY_KEYS = {
    "requestedAt": "number",
    "acceptedAt": "number",
    "completedAt": "number",
    "acceptedBy": "string",
    "organizationId": "string",
    "requestedTeamKey": "string",
    "teamIds": "array of strings",
    "teamKeys": "array of strings",
}


def is_number(value: Any) -> bool:
    """A JSON number: int or finite float, never a bool."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _handoff_entry_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "expected an object"
    for key, value in entry.items():
        kind = HANDOFF_ENTRY_KEYS.get(key)
        if kind is None:
            return f"unknown key {key!r}; allowed: {', '.join(HANDOFF_ENTRY_KEYS)}"
        ok = {
            "number": is_number,
            "string": lambda v: isinstance(v, str),
            "array of strings": _is_str_list,
        }[kind](value)
        if not ok:
            return f"{key}: expected {kind}"
    return None


def _check_handoff_history(value: Any) -> str | None:
    if not isinstance(value, list):
        return "expected an array of handoff entries"
    for i, entry in enumerate(value):
        problem = _handoff_entry_problem(entry)
        if problem:
            return f"[{i}]: {problem}"
    return None


def _simple(expected: str, test: Callable[[Any], bool]) -> Callable[[Any], str | None]:
    return lambda v: None if test(v) else f"expected {expected}"


def _check_state(value: Any) -> str | None:
    if value in STATES:
        return None
    return "expected one of " + ", ".join(STATES)


FIELDS: dict[str, Callable[[Any], str | None]] = {}
FIELDS.update({f: _simple("a string", lambda v: isinstance(v, str)) for f in _STRING})
FIELDS.update({f: _simple("a number", is_number) for f in _NUMBER})
FIELDS.update({f: _simple("a boolean", lambda v: isinstance(v, bool)) for f in _BOOLEAN})
FIELDS.update({f: _simple("an array", lambda v: isinstance(v, list)) for f in _ARRAY})
FIELDS.update({f: _simple("an object", lambda v: isinstance(v, dict)) for f in _OBJECT})
FIELDS.update({f: _simple("any JSON", lambda v: True) for f in _ANY})
FIELDS["state"] = _check_state
FIELDS["tags"] = _simple("an array of strings", _is_str_list)
FIELDS["handoffHistory"] = _check_handoff_history


# orjson writes at most 254 levels of nesting (it reads 1024), and the PATCH body
# {"conversation": {field: value}} adds two: a deeper value could be accepted but never sent.
MAX_DEPTH = 252


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `value` nests arrays/objects more than `limit` levels (iterative: any depth)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def field_problem(name: str, value: Any) -> str | None:
    """Why `value` cannot be written to conversation field `name`, or None when it can."""
    if name in SERVER_SET:
        return f"{name} is set by the server and cannot be written"
    check = FIELDS.get(name)
    if check is None:
        return f"{name} is not a Convocore conversation field"
    if isinstance(value, dict | list) and too_deep(value):
        return f"nested more than {MAX_DEPTH} levels deep (Convocore's JSON is written with at most 254)"
    return check(value)


def json_schemas() -> dict[str, dict[str, Any]]:
    """Each writable field as a JSON Schema, for the OpenAPI document."""
    out: dict[str, dict[str, Any]] = {}
    out.update({f: {"type": "string"} for f in _STRING})
    out.update({f: {"type": "number"} for f in _NUMBER})
    out.update({f: {"type": "boolean"} for f in _BOOLEAN})
    out.update({f: {"type": "array", "items": {}} for f in _ARRAY})  # items: any JSON
    out.update({f: {"type": "object"} for f in _OBJECT})
    out.update({f: {} for f in _ANY})
    out["state"] = {"enum": list(STATES)}
    out["tags"] = {"type": "array", "items": {"type": "string"}}
    out["handoffHistory"] = {"type": "array", "items": {"type": "object"}}
    return {k: v for k, v in out.items() if k not in SERVER_SET}
