"""A conversation's pending changes → the one `conversation` object of its next PATCH.

Fields go out as their newest pending value. Tags and handoffHistory are sent whole
(convocore.md): the current array (last answer seen, or one GET) with the pending tag
operations and handoff steps applied in version order. A handoff step already present in
the history (same requestedAt / acceptedAt / completedAt) is a no-op, so a replayed or
redelivered step never adds a second entry.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from bridge.changes import Entry

ARRAY_FIELDS = ("tags", "handoffHistory")


@dataclass(frozen=True, slots=True)
class Composed:
    conversation: dict[str, Any]
    arrays: dict[str, Any] | None  # what the arrays become if the PATCH succeeds


def needs_arrays(entries: list[Entry]) -> bool:
    """True when the PATCH rewrites an array the bridge must first know."""
    return any(e.name[0] in "th" for e in entries)


def arrays_of(data: dict[str, Any]) -> dict[str, Any]:
    tags = data.get("tags")
    history = data.get("handoffHistory")
    return {
        "tags": [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
        "handoffHistory": [h for h in history if isinstance(h, dict)]
        if isinstance(history, list)
        else [],
    }


def _unit(ms: int, time_unit: str) -> int:
    return ms if time_unit == "ms" else ms // 1000


def apply_step(history: list[dict[str, Any]], step: dict[str, Any], time_unit: str) -> None:
    at = _unit(int(step["at"]), time_unit)
    event = step["event"]
    if event in ("requested", "released"):  # released: waiting for a human again
        if any(h.get("requestedAt") == at for h in history):
            return
        entry: dict[str, Any] = {"requestedAt": at}
        for src, dst in (
            ("team_key", "requestedTeamKey"),
            ("team_ids", "teamIds"),
            ("team_keys", "teamKeys"),
            ("organization_id", "organizationId"),
        ):
            if step.get(src) is not None:
                entry[dst] = step[src]
        history.append(entry)
        return
    mark = "acceptedAt" if event == "accepted" else "completedAt"
    if any(h.get(mark) == at for h in history):
        return
    target = next((h for h in reversed(history) if mark not in h), None)
    if target is None:
        target = {}
        history.append(target)
    target[mark] = at
    if event == "accepted" and step.get("by") is not None:
        target["acceptedBy"] = step["by"]


def compose(entries: list[Entry], arrays: dict[str, Any] | None, time_unit: str) -> Composed:
    conversation: dict[str, Any] = {}
    ordered = sorted(entries, key=lambda e: e.version)
    for e in ordered:
        if e.name.startswith("f:"):
            conversation[e.name[2:]] = e.payload
    tag_ops = [e for e in ordered if e.name.startswith("t:")]
    steps = [e for e in ordered if e.name.startswith("h:")]
    if not tag_ops and not steps:
        return Composed(conversation, None)
    if arrays is None:
        raise ValueError("compose: arrays are needed; GET the conversation first")
    current = copy.deepcopy(arrays)
    for name in ARRAY_FIELDS:
        if name in conversation and isinstance(conversation[name], list):
            current[name] = list(conversation[name])  # an explicit `set` replaces the base
    set_versions = {
        e.name[2:]: e.version for e in ordered if e.name[2:] in ARRAY_FIELDS and e.name[0] == "f"
    }

    # an insertion-ordered dict: adding and removing are O(1), so the whole is linear
    present = dict.fromkeys(current["tags"])
    for e in tag_ops:
        if e.version <= set_versions.get("tags", ""):
            continue
        if e.payload == 1:
            present.setdefault(e.name[2:])
        else:
            present.pop(e.name[2:], None)
    tags = list(present)
    history: list[dict[str, Any]] = current["handoffHistory"]
    for e in steps:
        if e.version > set_versions.get("handoffHistory", ""):
            apply_step(history, e.payload, time_unit)

    if tags != arrays["tags"] or "tags" in conversation:
        conversation["tags"] = tags
    if history != arrays["handoffHistory"] or "handoffHistory" in conversation:
        conversation["handoffHistory"] = history
    return Composed(conversation, {"tags": tags, "handoffHistory": history})
