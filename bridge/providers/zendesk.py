"""Zendesk event subscriptions (webhooks on `zen:event-type:ticket.*`).

Signed bytes `{X-Zendesk-Webhook-Signature-Timestamp}{body}`, HMAC-SHA256, base64, keyed
with the webhook's signing secret as-is. The timestamp is ISO-8601 and must be in the window.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bridge.errors import SignatureError
from bridge.intents import Handoff, Intent, parse_time
from bridge.providers.base import (
    SourceEvent,
    WebhookRequest,
    check_window,
    dig,
    mac,
    no_challenge,
    optional_text,
    require_header,
    require_object,
    same,
    strings,
    text_id,
)

if TYPE_CHECKING:
    from bridge.config import SourceSettings

SIG = "x-zendesk-webhook-signature"
STAMP = "x-zendesk-webhook-signature-timestamp"


challenge = no_challenge  # its senders have no set-up handshake


def verify(source: SourceSettings, request: WebhookRequest, tolerance_s: int) -> None:
    given = require_header(request, SIG)
    stamp = require_header(request, STAMP)
    try:
        sent_at = datetime.fromisoformat(stamp.replace("z", "Z")).timestamp()
    except ValueError:
        raise SignatureError(f"{STAMP}: expected an ISO-8601 time") from None
    check_window(sent_at, request, tolerance_s, STAMP)
    expected = base64.b64encode(mac(source.secret.encode(), stamp.encode() + request.body))
    if not same(expected, given.strip()):
        raise SignatureError(f"{SIG} does not match")


def normalize(source: SourceSettings, request: WebhookRequest, payload: Any) -> list[SourceEvent]:
    event = require_object(payload, "body")
    event_id = text_id(event.get("id"), "id")
    kind = event.get("type")
    if not isinstance(kind, str):
        return [SourceEvent(event_id, None, event)]
    what = kind.rsplit("ticket.", 1)[-1] if "ticket." in kind else ""
    change = dig(event, "event.current")
    intent: dict[str, Any] = {}
    if what == "created":
        intent["handoff"] = Handoff(
            "requested", team_key=optional_text(dig(event, "detail.group_id"))
        )
    elif what == "agent_assignment_changed" and optional_text(change):
        intent["handoff"] = Handoff("accepted", by=optional_text(change))
    elif what == "status_changed" and str(change or "").lower() in ("solved", "closed"):
        intent["handoff"] = Handoff("completed")
    elif what == "tags_changed":
        intent["tags_add"] = strings(dig(event, "event.tags_added"), "event.tags_added")
        intent["tags_remove"] = strings(dig(event, "event.tags_removed"), "event.tags_removed")
    elif what == "group_assignment_changed" and optional_text(change):
        intent["set"] = {"requestedTeamKey": optional_text(change)}
    if not intent:
        return [SourceEvent(event_id, None, event)]
    return [
        SourceEvent(
            event_id,
            Intent(
                occurred_at=parse_time(event.get("time"), "time"),
                external_id=text_id(dig(event, "detail.id"), "detail.id"),
                **intent,
            ),
            event,
        )
    ]
