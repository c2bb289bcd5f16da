"""Help Scout webhooks: the body is the conversation; the event is in `X-HelpScout-Event`.

`X-HelpScout-Signature` is base64 HMAC-SHA1 of the body keyed with the webhook secret. No
timestamp is sent: replays are stopped by dedup on sha256(body) + event.
"""

from __future__ import annotations

import base64
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
    body_sha256,
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
    text_id,
    time_or_receipt,
)

SIG = "x-helpscout-signature"
EVENT = "x-helpscout-event"


Options = NoOptions  # no keys of its own
options = options_reader(Options)
accepts = json_only
parse = json_body
challenge = no_challenge  # its senders have no set-up handshake
acknowledge = default_answer


def verify(source: SourceSettings, request: WebhookRequest, tolerance_s: int) -> None:
    given = require_header(request, SIG)
    require_header(request, EVENT)
    digest = hmac.new(source.secret.encode(), request.body, hashlib.sha1).digest()
    if not same(base64.b64encode(digest), given.strip()):
        raise SignatureError(f"{SIG} does not match (expected base64 HMAC-SHA1)")


def normalize(source: SourceSettings, request: WebhookRequest, payload: Any) -> list[SourceEvent]:
    convo = require_object(payload, "body")
    event = request.header(EVENT) or ""
    event_id = f"{body_sha256(request.body)}:{event}"
    intent: dict[str, Any] = {}
    if event == "convo.created":
        intent["handoff"] = Handoff("requested")
    elif event == "convo.assigned":
        agent = optional_text(dig(convo, "assignee.email"))
        intent["handoff"] = Handoff("accepted", by=agent) if agent else Handoff("released")
    elif event == "convo.status" and str(convo.get("status") or "").lower() == "closed":
        intent["handoff"] = Handoff("completed")
    elif event == "convo.tags":
        tags = convo.get("tags")
        names = (
            [t.get("tag") for t in tags if isinstance(t, dict)] if isinstance(tags, list) else []
        )
        # The body is the whole conversation: its tags are the full set, removals included.
        intent["set"] = {"tags": list(dict.fromkeys(n for n in names if isinstance(n, str) and n))}
    if not intent:
        return [SourceEvent(event_id, None, convo)]
    occurred = time_or_receipt(convo.get("userUpdatedAt"), "userUpdatedAt", request)
    return [
        SourceEvent(
            event_id,
            Intent(occurred_at=occurred, external_id=text_id(convo.get("id"), "id"), **intent),
            convo,
        )
    ]
