"""A conversation's pending changes → the one `conversation` object of its next PATCH.

Fields go out as their newest pending value. Tags and handoffHistory are sent whole (the
API does not say whether a sent array replaces or merges, and only a whole array can remove), as every tag (handoff) event applied in occurred_at order gives them: from
the newest whole list (`set.tags`, pending, or applied when re-sent) or else the current
array (last answer seen, or one GET), then each single change newer than that list, the
applied ones included when a list or a re-send calls for it. Linear in the list's size. A handoff step already present in
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


_REQUEST_KEYS = ("requestedAt", "requestedTeamKey", "teamIds", "teamKeys", "organizationId")


def _same_request(recorded: dict[str, Any], entry: dict[str, Any]) -> bool:
    return all(recorded.get(k) == entry.get(k) for k in _REQUEST_KEYS)


def apply_step(history: list[dict[str, Any]], step: dict[str, Any], time_unit: str) -> None:
    at = _unit(int(step["at"]), time_unit)
    event = step["event"]
    if event in ("requested", "released"):  # released: waiting for a human again
        entry: dict[str, Any] = {"requestedAt": at}
        # a release (the human let go) opens a bare {requestedAt} entry; team fields come
        # only with a request
        for src, dst in (
            ()
            if event == "released"
            else (
                ("team_key", "requestedTeamKey"),
                ("team_ids", "teamIds"),
                ("team_keys", "teamKeys"),
                ("organization_id", "organizationId"),
            )
        ):
            if step.get(src) is not None:
                entry[dst] = step[src]
        # Already recorded: an entry requested at that time with the same team fields (a
        # release and a request for a team within one time unit are two entries).
        if any(_same_request(h, entry) for h in history):
            return
        history.append(entry)
        return
    mark = "acceptedAt" if event == "accepted" else "completedAt"
    by = step.get("by") if event == "accepted" else None
    # The same step is the same time *and* the same human: two assignments within one
    # time unit (a second, by default) are two entries, not one keeping the first assignee.
    if any(
        h.get(mark) == at and (event != "accepted" or h.get("acceptedBy") == by) for h in history
    ):
        return
    target = next((h for h in reversed(history) if mark not in h), None)
    if target is None:
        target = {}
        history.append(target)
    target[mark] = at
    if event == "accepted" and step.get("by") is not None:
        target["acceptedBy"] = step["by"]


def _whole_and_ops(
    pending: dict[str, Entry], applied: dict[str, Entry], whole_name: str, kind: str, redo: bool
) -> tuple[Entry | None, list[Entry]]:
    """The whole list to start from (None: the conversation's current array) and the single
    changes to replay on it, newest per name, newer than that list, in version order."""
    whole = pending.get(whole_name)
    if whole is None and redo:
        whole = applied.get(whole_name)
    ops: dict[str, Entry] = {}
    if whole_name in pending or redo:  # the applied history replays too (occurred_at order)
        ops = {n: e for n, e in applied.items() if n.startswith(kind)}
    for n, e in pending.items():
        if n.startswith(kind) and (n not in ops or ops[n].version < e.version):
            ops[n] = e
    floor = whole.version if whole is not None else ""
    return whole, sorted((e for e in ops.values() if e.version > floor), key=lambda e: e.version)


def needs_arrays(entries: list[Entry], applied: list[Entry] | None = None) -> bool:
    """True when the PATCH rewrites an array from the conversation's current one, which the
    bridge must then know (from the last answer, or one GET)."""
    names = {e.name for e in entries}
    have = {e.name for e in applied or ()}
    for whole, kind, redo in (
        ("f:tags", "t:", "r:tags"),
        ("f:handoffHistory", "h:", "r:handoffHistory"),
    ):
        if whole in names or (redo in names and whole in have):
            continue  # starts from a whole list
        if redo in names or any(n.startswith(kind) for n in names):
            return True
    return False


def compose(
    entries: list[Entry],
    applied: list[Entry],
    arrays: dict[str, Any] | None,
    time_unit: str,
) -> Composed:
    """`entries`: the pending changes (at most one per name); `applied`: what the take script
    brought from hw:<ck> (values to re-send, the applied tag and handoff history)."""
    pending = {e.name: e for e in entries}
    done = {e.name: e for e in applied}
    conversation: dict[str, Any] = {}
    for e in sorted(entries, key=lambda e: e.version):
        if e.name.startswith("f:") and e.name[2:] not in ARRAY_FIELDS:
            conversation[e.name[2:]] = e.payload
    for name in pending:  # re-sends after an in-doubt PATCH: the newest applied value
        field = name[4:]
        resend = name.startswith("r:f:") and field not in conversation and f"f:{field}" in done
        if resend and field not in ARRAY_FIELDS:
            conversation[field] = done[f"f:{field}"].payload

    result = dict(arrays) if arrays is not None else None
    whole, tag_ops = _whole_and_ops(pending, done, "f:tags", "t:", "r:tags" in pending)
    if whole is not None or tag_ops or "r:tags" in pending:
        start = whole.payload if whole is not None else _base(arrays)["tags"]
        # an insertion-ordered dict: adding and removing are O(1), so the whole is linear
        present = dict.fromkeys(t for t in start if isinstance(t, str))
        for e in tag_ops:
            if e.payload == 1:
                present.setdefault(e.name[2:])
            else:
                present.pop(e.name[2:], None)
        tags = list(present)
        if whole is not None or "r:tags" in pending or arrays is None or tags != arrays["tags"]:
            conversation["tags"] = tags
        if result is not None:
            result["tags"] = tags

    whole, steps = _whole_and_ops(
        pending, done, "f:handoffHistory", "h:", "r:handoffHistory" in pending
    )
    if whole is not None or steps or "r:handoffHistory" in pending:
        start = whole.payload if whole is not None else _base(arrays)["handoffHistory"]
        history: list[dict[str, Any]] = copy.deepcopy([h for h in start if isinstance(h, dict)])
        for e in steps:  # a step without its own `at` happened at its version's time
            apply_step(history, {"at": e.occurred_at, **e.payload}, time_unit)
        before = arrays["handoffHistory"] if arrays is not None else None
        if whole is not None or "r:handoffHistory" in pending or history != before:
            conversation["handoffHistory"] = history
        if result is not None:
            result["handoffHistory"] = history
    return Composed(conversation, result)


def _base(arrays: dict[str, Any] | None) -> dict[str, Any]:
    if arrays is None:
        raise ValueError("compose: arrays are needed; GET the conversation first")
    return arrays
