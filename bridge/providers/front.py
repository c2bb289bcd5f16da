"""Front webhooks. `variant = "app"` (default), application webhooks: signed bytes
`{X-Front-Request-Timestamp}:{body}`, HMAC-SHA256, base64, keyed with the app secret; the
timestamp (epoch ms) must be in the window; the set-up request carries `x-front-challenge`,
answered 200 text/plain with that value once verified. `variant = "rule"`, rule webhooks:
`X-Front-Signature` is base64 HMAC-SHA1 of the body keyed with the company API secret, no
timestamp (Front does not retry rule webhooks: a wrong 401 loses the event).

App webhooks wrap the event in `{type, authorization, payload}`; rule webhooks send it bare.
Both shapes are accepted under either variant.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from bridge.errors import SignatureError
from bridge.intents import Handoff, Intent
from bridge.providers.base import (
    Answer,
    SourceEvent,
    SourceSettings,
    WebhookRequest,
    check_window,
    default_answer,
    dig,
    json_body,
    mac,
    optional_text,
    options_reader,
    require_header,
    require_object,
    same,
    seconds_ms,
    signed_epoch,
    text_id,
)
from bridge.providers.formats import require_json
from bridge.spec import setting

SIG = "x-front-signature"
STAMP = "x-front-request-timestamp"
CHALLENGE = "x-front-challenge"


@dataclass(frozen=True, slots=True)
class Options:
    variant: Literal["app", "rule"] = setting(
        "app", help="app: application webhooks; rule: rule webhooks (Send to a webhook)"
    )


options = options_reader(Options)
parse = json_body
acknowledge = default_answer


def accepts(source: SourceSettings, headers: Mapping[str, str]) -> None:
    """JSON; Front's set-up request is answered whatever its Content-Type (see challenge)."""
    if CHALLENGE not in headers:
        require_json(headers.get("content-type", ""))


def verify(source: SourceSettings, request: WebhookRequest, tolerance_s: int) -> None:
    given = require_header(request, SIG)
    o: Options = source.options
    if o.variant == "rule":
        expected = base64.b64encode(mac(source.secret.encode(), request.body, "sha1"))
        if not same(expected, given.strip()):
            raise SignatureError(
                f"{SIG} does not match (rule webhook: base64 HMAC-SHA1 of the body)"
            )
        return
    stamp, sent_at = signed_epoch(request, STAMP, milliseconds=True)
    check_window(sent_at, request, tolerance_s, STAMP)
    expected = base64.b64encode(mac(source.secret.encode(), stamp.encode() + b":" + request.body))
    if not same(expected, given.strip()):
        raise SignatureError(f"{SIG} does not match")


def challenge(source: SourceSettings, request: WebhookRequest) -> Answer | None:
    """Front's set-up request: echo its challenge (200 text/plain); call after verify."""
    value = request.header(CHALLENGE)
    return Answer(value) if value else None


def normalize(source: SourceSettings, request: WebhookRequest, payload: Any) -> list[SourceEvent]:
    body = require_object(payload, "body")
    event = body["payload"] if isinstance(body.get("payload"), dict) else body
    event_id = text_id(event.get("id"), "id")
    kind = event.get("type")
    name = optional_text(dig(event, "target.data.name"))
    intent: dict[str, Any] = {}
    if kind == "assign":
        intent["handoff"] = Handoff("accepted", by=optional_text(dig(event, "target.data.email")))
    elif kind == "unassign":
        intent["handoff"] = Handoff("released")
    elif kind == "archive":
        intent["handoff"] = Handoff("completed")
    elif kind == "reopen":
        intent["handoff"] = Handoff("requested")
    elif kind == "tag" and name:
        intent["tags_add"] = (name,)
    elif kind == "untag" and name:
        intent["tags_remove"] = (name,)
    if not intent:
        return [SourceEvent(event_id, None, event)]
    return [
        SourceEvent(
            event_id,
            Intent(
                occurred_at=seconds_ms(event.get("emitted_at"), "emitted_at"),
                external_id=text_id(dig(event, "conversation.id"), "conversation.id"),
                **intent,
            ),
            event,
        )
    ]
