"""Zendesk webhooks: event subscriptions (`zen:event-type:ticket.*`) and trigger or
automation webhooks whose body is the template in the README.

Both are signed the same way: bytes `{X-Zendesk-Webhook-Signature-Timestamp}{body}`,
HMAC-SHA256, base64, keyed with the webhook's signing secret as-is; the timestamp is
ISO-8601 and must be in the window. Event subscriptions dedup on their `id`; trigger bodies
on the `X-Zendesk-Webhook-Invocation-Id` header (the same on every retry of an invocation),
else sha256 of the body.
"""

from __future__ import annotations

import base64
from typing import Any

from bridge.errors import PayloadError, SignatureError
from bridge.intents import Handoff, Intent, parse_time
from bridge.providers.base import (
    NoOptions,
    SourceEvent,
    SourceSettings,
    WebhookRequest,
    body_sha256,
    check_window,
    default_answer,
    dig,
    json_body,
    json_only,
    mac,
    no_challenge,
    optional_text,
    options_reader,
    require_header,
    require_object,
    same,
    signed_iso_time,
    strings,
    text_id,
    time_or_receipt,
)

SIG = "x-zendesk-webhook-signature"
STAMP = "x-zendesk-webhook-signature-timestamp"


Options = NoOptions  # no keys of its own
options = options_reader(Options)
accepts = json_only
parse = json_body
challenge = no_challenge  # its senders have no set-up handshake
acknowledge = default_answer


INVOCATION = "x-zendesk-webhook-invocation-id"
SOLVED = ("solved", "closed")


# Zendesk signs the "Test webhook" request of its create/edit form with this published
# secret, not the webhook's own: such a request is refused, saying so.
TEST_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="  # noqa: S105 (public)


def verify(source: SourceSettings, request: WebhookRequest, tolerance_s: int) -> None:
    given = require_header(request, SIG)
    stamp, sent_at = signed_iso_time(request, STAMP)
    check_window(sent_at, request, tolerance_s, STAMP)
    signed = stamp.encode() + request.body
    if not same(base64.b64encode(mac(source.secret.encode(), signed)), given.strip()):
        if same(base64.b64encode(mac(TEST_SECRET.encode(), signed)), given.strip()):
            raise SignatureError(
                f"{SIG} is signed with Zendesk's test secret (the Test webhook button): "
                "expected to be refused; real events carry the webhook's own signature"
            )
        raise SignatureError(f"{SIG} does not match")


def normalize(source: SourceSettings, request: WebhookRequest, payload: Any) -> list[SourceEvent]:
    body = require_object(payload, "body")
    kind = body.get("type")
    if "ticket_id" in body and not (isinstance(kind, str) and kind.startswith("zen:")):
        return [_trigger(request, body)]
    return [_subscription(body)]


def _subscription(event: dict[str, Any]) -> SourceEvent:
    event_id = text_id(event.get("id"), "id")
    kind = event.get("type")
    if not isinstance(kind, str):
        return SourceEvent(event_id, None, event)
    what = kind.rsplit("ticket.", 1)[-1] if "ticket." in kind else ""
    change = dig(event, "event.current")
    before = str(dig(event, "event.previous") or "").lower()
    intent: dict[str, Any] = {}
    if what == "created":
        intent["handoff"] = Handoff(
            "requested", team_key=optional_text(dig(event, "detail.group_id"))
        )
    elif what == "agent_assignment_changed":
        agent = optional_text(change)
        intent["handoff"] = Handoff("accepted", by=agent) if agent else Handoff("released")
    elif what == "status_changed" and str(change or "").lower() in SOLVED:
        intent["handoff"] = Handoff("completed")
    elif what == "status_changed" and before in SOLVED and optional_text(change):
        intent["handoff"] = Handoff("requested")  # reopened
    elif what == "tags_changed":
        intent["tags_add"] = strings(dig(event, "event.tags_added"), "event.tags_added")
        intent["tags_remove"] = strings(dig(event, "event.tags_removed"), "event.tags_removed")
    elif what == "group_assignment_changed" and optional_text(change):
        intent["set"] = {"requestedTeamKey": optional_text(change)}
    if not intent:
        return SourceEvent(event_id, None, event)
    return SourceEvent(
        event_id,
        Intent(
            occurred_at=parse_time(event.get("time"), "time"),
            external_id=text_id(dig(event, "detail.id"), "detail.id"),
            **intent,
        ),
        event,
    )


def _trigger(request: WebhookRequest, ticket: dict[str, Any]) -> SourceEvent:
    """A trigger or automation body (the README's template, one trigger per `event`)."""
    event_id = request.header(INVOCATION) or body_sha256(request.body)
    what = str(ticket.get("event") or "").lower()
    agent = optional_text(ticket.get("assignee"))
    intent: dict[str, Any] = {}
    if what == "created":
        intent["handoff"] = Handoff("requested", team_key=optional_text(ticket.get("group")))
    elif what == "assigned" and agent:
        intent["handoff"] = Handoff("accepted", by=agent)
    elif what in ("assigned", "unassigned"):  # an assignment to nobody is a release
        intent["handoff"] = Handoff("released")
    elif what == "solved":
        intent["handoff"] = Handoff("completed")
    elif what == "reopened":
        intent["handoff"] = Handoff("requested")
    elif what == "tags":
        tags = ticket.get("tags")
        if not isinstance(tags, str):
            raise PayloadError("tags: expected the space-separated {{ticket.tags}}")
        intent["set"] = {"tags": list(dict.fromkeys(tags.split()))}
    if not intent:
        return SourceEvent(event_id, None, ticket)
    occurred = time_or_receipt(ticket.get("updated_at"), "updated_at", request)
    return SourceEvent(
        event_id,
        Intent(
            occurred_at=occurred,
            external_id=text_id(ticket.get("ticket_id"), "ticket_id"),
            **intent,
        ),
        ticket,
    )
