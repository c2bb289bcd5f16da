"""Freshdesk automation-rule webhooks: the body is the template in the README.

Freshdesk cannot sign: the rule sends a shared secret in a header (default X-Bridge-Secret,
`header = "…"` to change), compared in constant time. No timestamp: replays are stopped by
dedup on sha256(body). Several rules may apply to one body; they make one intent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.errors import SignatureError
from bridge.intents import Handoff, Intent
from bridge.providers.base import (
    SourceEvent,
    SourceSettings,
    WebhookRequest,
    body_sha256,
    default_answer,
    json_body,
    json_only,
    no_challenge,
    optional_text,
    options_reader,
    require_header,
    require_object,
    same,
    text_id,
    time_or_receipt,
)
from bridge.spec import setting


@dataclass(frozen=True, slots=True)
class Options:
    header: str = setting("X-Bridge-Secret", help="the header the rule puts the secret in")


options = options_reader(Options)
accepts = json_only
parse = json_body
challenge = no_challenge  # its senders have no set-up handshake
acknowledge = default_answer


def verify(source: SourceSettings, request: WebhookRequest, tolerance_s: int) -> None:
    o: Options = source.options
    name = o.header.lower()
    if not same(source.secret, require_header(request, name)):
        raise SignatureError(f"{name} does not match the shared secret")


def normalize(source: SourceSettings, request: WebhookRequest, payload: Any) -> list[SourceEvent]:
    ticket = require_object(payload, "body")
    event_id = body_sha256(request.body)
    event = str(ticket.get("event") or "").lower()
    status = str(ticket.get("status") or "").lower()
    agent = optional_text(ticket.get("agent_email"))
    handoff = None
    if status in ("resolved", "closed"):
        handoff = Handoff("completed")
    elif event == "assigned" and agent:
        handoff = Handoff("accepted", by=agent)
    elif event == "unassigned" or (event == "assigned" and not agent):
        handoff = Handoff("released")
    elif event == "created":
        handoff = Handoff("requested", team_key=optional_text(ticket.get("group")))
    raw_tags = ticket.get("tags")
    tags = (
        tuple(t.strip() for t in raw_tags.split(",") if t.strip())
        if isinstance(raw_tags, str)
        else ()
    )
    if handoff is None and not tags:
        return [SourceEvent(event_id, None, ticket)]
    occurred = time_or_receipt(ticket.get("updated_at"), "updated_at", request)
    return [
        SourceEvent(
            event_id,
            Intent(
                occurred_at=occurred,
                external_id=text_id(ticket.get("ticket_id"), "ticket_id"),
                tags_add=tags,
                handoff=handoff,
            ),
            ticket,
        )
    ]
