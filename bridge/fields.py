"""Applied entries dated in the future, and clearing them: `convo-bridge fields` and the
admin routes under /admin/conversations/AGENT/CONVO/.

Newest wins by occurred_at, so an applied value dated in the future makes every real event
for that field older, and dropped, until that time comes. Ingest no longer believes such
times (a time later than receipt + `[ingest] max_clock_skew_s` counts as the receipt time),
but a value applied before, or by an older version, stays frozen: these show it and drop
its high-water entry (`hw:`, store/keys.py), so the next event wins. What the target holds
is not touched.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from bridge.changes import decode
from bridge.errors import PayloadError
from bridge.store import Store, conversation_key
from bridge.trace import Change, when

# a Convocore field name, or a change name as `trace` shows it (f:title, t:vip, h:<version>)
_NAME = re.compile(r"(?:[fth]:)?[^\x00-\x1f\x7f]{1,200}")


@dataclass(slots=True)
class Future:
    """One conversation's applied entries dated after `now` (Redis's clock, epoch ms)."""

    agent_id: str
    convo_id: str
    now: int
    entries: list[Change] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_field(value: Any) -> str:
    """A field (or change) name to clear, or a PayloadError naming `field`."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value.startswith("_"):
        raise PayloadError(
            "field: expected a Convocore field name such as 'title' or 'tags', or a change "
            "name as trace shows it ('f:title', 't:vip')"
        )
    return value


async def future_applied(store: Store, agent_id: str, convo_id: str) -> Future:
    state = await store.conversation(conversation_key(agent_id, convo_id))
    now, applied = state.now_ms, state.applied
    entries = [
        Change.of(decode(name, raw))
        for name, raw in applied.items()
        if name[:1] != "_" and "\n" in raw
    ]
    ahead = sorted((c for c in entries if c.occurred_at > now), key=lambda c: c.name)
    return Future(agent_id, convo_id, now, ahead)


async def clear_applied(
    store: Store, agent_id: str, convo_id: str, field_name: str | None
) -> list[str]:
    """Drop the applied entries of one field, or (None) every one dated in the future; the
    names dropped."""
    what = "future" if field_name is None else check_field(field_name)
    if what == "future" and field_name is not None:
        what = "f:future"  # a field that happens to be named so, not every future entry
    return await store.clear_applied(conversation_key(agent_id, convo_id), what)


def render(found: Future) -> str:
    if not found.entries:
        return f"no applied value of {found.agent_id} / {found.convo_id} is dated in the future"
    lines = [f"applied values of {found.agent_id} / {found.convo_id} dated in the future:"]
    for c in found.entries:
        said = f"  (the sender said {when(c.claimed_at)})" if c.claimed_at is not None else ""
        lines.append(f"  {c.name}  dated {when(c.occurred_at)}  from {c.source}:{c.event_id}{said}")
    lines.append(
        "older-dated events for these are dropped until then; "
        f"`convo-bridge fields clear {found.agent_id} {found.convo_id} --future` (or FIELD) "
        "drops them so the next event wins"
    )
    return "\n".join(lines)
