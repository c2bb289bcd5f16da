"""Intercom webhooks (notification_event).

`X-Hub-Signature: sha1=<hex>`, HMAC-SHA1 of the body keyed with the app's client secret.
Intercom sends no timestamp: replays are stopped only by dedup on the notification id.
Conversation topics and ticket topics (API 2.9+) are mapped; a ticket's link key is
`ticket:<id>`. Ticket assignment topics carry `data.item = {type: "ticket_ticket_part",
ticket: {...}, ticket_part: {...}}`: the ticket is read from `ticket`, the assignee from the
part's `assigned_to` (else the ticket's own assignee ids). `ticket.closed` completes.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from bridge.errors import SignatureError
from bridge.intents import Handoff, Intent
from bridge.providers.base import (
    NoOptions,
    SourceEvent,
    SourceSettings,
    WebhookRequest,
    default_answer,
    dig,
    json_body,
    json_only,
    no_challenge,
    optional_text,
    options_reader,
    require_header,
    require_object,
    same,
    seconds_ms,
    text_id,
)

SIG = "x-hub-signature"


Options = NoOptions  # no keys of its own
options = options_reader(Options)
accepts = json_only
parse = json_body
challenge = no_challenge  # its senders have no set-up handshake
acknowledge = default_answer


def verify(source: SourceSettings, request: WebhookRequest, tolerance_s: int) -> None:
    given = require_header(request, SIG)
    scheme, _, value = given.partition("=")
    if scheme != "sha1":
        raise SignatureError(f"{SIG}: expected sha1=<hex>")
    expected = hmac.new(source.secret.encode(), request.body, hashlib.sha1).hexdigest()
    if not same(expected, value.strip().lower()):
        raise SignatureError(f"{SIG} does not match")


ASSIGNED = ("conversation.admin.assigned", "conversation.admin.open.assigned")


def _admin_assignee(item: Any) -> str | None:
    """The admin a conversation is assigned to: `admin_assignee_id` (API 2.x) or
    `assignee: {type: "admin", id}` (API 1.x); None when no admin holds it."""
    admin = optional_text(dig(item, "admin_assignee_id"))
    if admin is None and dig(item, "assignee.type") == "admin":
        admin = optional_text(dig(item, "assignee.id"))
    return None if admin in (None, "0") else admin


def _tag_names(item: Any) -> tuple[str, ...]:
    """The tags this event added (`tags_added`), else the conversation's tags."""
    listed = dig(item, "tags_added.tags")
    if not isinstance(listed, list):
        listed = dig(item, "tags.tags")
    names = (
        [t.get("name") for t in listed if isinstance(t, dict)] if isinstance(listed, list) else []
    )
    return tuple(n for n in names if isinstance(n, str) and n)


def _ticket_state(item: Any) -> str:
    """A ticket's state category: an object with `category` (API 2.12+) or a string."""
    state = dig(item, "ticket_state")
    return str(state.get("category") if isinstance(state, dict) else state or "").lower()


def _conversation(topic: Any, item: Any) -> dict[str, Any]:
    intent: dict[str, Any] = {}
    if topic in ASSIGNED:
        admin = _admin_assignee(item)
        team = optional_text(dig(item, "team_assignee_id"))
        if team is not None and team != "0":
            intent["set"] = {"requestedTeamKey": team}
        if admin is not None:
            intent["handoff"] = Handoff("accepted", by=admin)
        elif "set" not in intent:  # nobody holds it any more
            intent["handoff"] = Handoff("released")
    elif topic == "conversation.admin.opened":
        intent["handoff"] = Handoff("requested")  # reopened
    elif topic == "conversation.admin.closed":
        intent["handoff"] = Handoff("completed")
    elif topic == "conversation_part.tag.created":
        intent["tags_add"] = _tag_names(item)
    return intent


def _assigned_to(part: Any, kind: str) -> str | None:
    """The id a ticket part assigned the ticket to, when it names one of `kind`."""
    target = dig(part, "assigned_to")
    if not isinstance(target, dict) or target.get("type") != kind:
        return None
    found = optional_text(target.get("id"))
    return None if found == "0" else found


def _ticket(topic: Any, item: Any, part: Any) -> dict[str, Any]:
    """Ticket topics (API 2.9+): created, admin/team assigned, state updated, closed."""
    intent: dict[str, Any] = {}
    if topic == "ticket.created":
        intent["handoff"] = Handoff("requested")
    elif topic == "ticket.admin.assigned":
        admin = _assigned_to(part, "admin") or _admin_assignee(item)
        intent["handoff"] = Handoff("accepted", by=admin) if admin else Handoff("released")
    elif topic == "ticket.team.assigned":
        team = _assigned_to(part, "team") or optional_text(dig(item, "team_assignee_id"))
        if team is not None and team != "0":
            intent["set"] = {"requestedTeamKey": team}
    elif topic == "ticket.closed" or (
        topic == "ticket.state.updated" and _ticket_state(item) == "resolved"
    ):
        intent["handoff"] = Handoff("completed")
    return intent


def normalize(source: SourceSettings, request: WebhookRequest, payload: Any) -> list[SourceEvent]:
    note = require_object(payload, "body")
    event_id = text_id(note.get("id"), "id")
    topic = note.get("topic")
    item = dig(note, "data.item")
    where = "data.item.id"
    part = None
    if dig(item, "type") == "ticket_ticket_part":  # an assignment: the ticket and the part
        item, part, where = dig(item, "ticket"), dig(item, "ticket_part"), "data.item.ticket.id"
    ticket = isinstance(topic, str) and topic.startswith("ticket.")
    intent = _ticket(topic, item, part) if ticket else _conversation(topic, item)
    if not intent:
        return [SourceEvent(event_id, None, note)]
    external = text_id(dig(item, "id"), where)
    return [
        SourceEvent(
            event_id,
            Intent(
                occurred_at=seconds_ms(note.get("created_at"), "created_at"),
                # Tickets and conversations number apart: a ticket's link key says so.
                external_id=f"ticket:{external}" if ticket else external,
                **intent,
            ),
            note,
        )
    ]
