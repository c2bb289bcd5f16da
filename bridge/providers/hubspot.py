"""HubSpot webhooks, signature v3: a JSON array of events per request.

Signed bytes `{METHOD}{uri}{body}{X-HubSpot-Request-Timestamp}`, HMAC-SHA256, base64, keyed
with the app's client secret. `uri` is the full URL HubSpot called: the source's `public_url`
(plus the request's query) when set; else the request's own URL, with X-Forwarded-Proto and
X-Forwarded-Host honoured only when `trust_proxy = true`.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from bridge.errors import PayloadError, SignatureError
from bridge.intents import Handoff, Intent, parse_time
from bridge.providers.base import (
    SourceEvent,
    WebhookRequest,
    check_window,
    indexed,
    mac,
    no_challenge,
    optional_text,
    require_header,
    require_object,
    same,
    text_id,
)

if TYPE_CHECKING:
    from bridge.config import SourceSettings

SIG = "x-hubspot-signature-v3"
STAMP = "x-hubspot-request-timestamp"


def signed_uri(source: SourceSettings, request: WebhookRequest) -> str:
    seen = urlsplit(request.url)
    public = source.options.get("public_url")
    if public:
        base = urlsplit(public)
        return str(urlunsplit((base.scheme, base.netloc, base.path, base.query or seen.query, "")))
    scheme, host = seen.scheme, seen.netloc
    if source.options.get("trust_proxy"):
        scheme = (request.header("x-forwarded-proto") or scheme).split(",")[0].strip()
        host = (request.header("x-forwarded-host") or host).split(",")[0].strip()
    return str(urlunsplit((scheme, host, seen.path, seen.query, "")))


challenge = no_challenge  # its senders have no set-up handshake


def verify(source: SourceSettings, request: WebhookRequest, tolerance_s: int) -> None:
    given = require_header(request, SIG)
    stamp = require_header(request, STAMP)
    try:
        sent_at = int(stamp) / 1000
    except ValueError:
        raise SignatureError(f"{STAMP}: expected epoch milliseconds") from None
    check_window(sent_at, request, tolerance_s, STAMP)
    message = (request.method.upper() + signed_uri(source, request)).encode() + request.body
    expected = base64.b64encode(mac(source.secret.encode(), message + stamp.encode()))
    if not same(expected, given.strip()):
        raise SignatureError(f"{SIG} does not match (check public_url / trust_proxy)")


def _event(item: Any) -> SourceEvent:
    ev = require_object(item, "event")
    parts = [text_id(ev.get(k), k) for k in ("subscriptionId", "objectId", "eventId")]
    occurred = parse_time(ev.get("occurredAt"), "occurredAt")
    event_id = ":".join([*parts, str(occurred)])
    kind, prop = ev.get("subscriptionType"), ev.get("propertyName")
    value = optional_text(ev.get("propertyValue"))
    handoff = None
    if kind == "conversation.creation":
        handoff = Handoff("requested")
    elif kind == "conversation.propertyChange" and prop == "assignedTo" and value:
        handoff = Handoff("accepted", by=value)
    elif (
        kind == "conversation.propertyChange"
        and prop == "status"
        and str(value or "").upper() == "CLOSED"
    ):
        handoff = Handoff("completed")
    if handoff is None:
        return SourceEvent(event_id, None, ev)
    return SourceEvent(event_id, Intent(occurred, external_id=parts[1], handoff=handoff), ev)


def normalize(source: SourceSettings, request: WebhookRequest, payload: Any) -> list[SourceEvent]:
    if isinstance(payload, dict):
        return [_event(payload)]
    if not isinstance(payload, list) or not payload:
        raise PayloadError("body: expected a non-empty array of HubSpot events")
    return indexed(payload, _event)
