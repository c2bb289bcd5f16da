"""HubSpot webhooks, signature v3: a JSON array of events per request.

Signed bytes `{METHOD}{uri}{body}{X-HubSpot-Request-Timestamp}`, HMAC-SHA256, base64, keyed
with the app's client secret. `uri` is the full URL HubSpot called: the source's `public_url`
(plus the request's query) when set; else the request's own URL, with X-Forwarded-Proto and
X-Forwarded-Host honoured only when `trust_proxy = true`. HubSpot's request-validation page
decodes a list of percent-escapes in it before signing; its own SDK signs it as sent: a
signature over either form is accepted.

Help Desk tickets are CRM tickets (`ticket.*`, or `object.*` with objectTypeId 0-5): created
is a request, `hubspot_owner_id` an assignment, a move to one of `closed_stages` of
`hs_pipeline_stage` (stage ids are per account; `4` is the default pipeline's Closed)
completes and one to `reopened_stages` requests again; their link key is `ticket:<objectId>`.
A batch may mix subscription types the bridge does not map (association changes carry no
`objectId`): those elements are ignored without being read; a mapped one that is malformed
refuses the whole request.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bridge.errors import ConfigError, PayloadError, SignatureError
from bridge.intents import Handoff, Intent, parse_time
from bridge.providers.base import (
    SourceEvent,
    SourceSettings,
    WebhookRequest,
    check_window,
    default_answer,
    indexed,
    json_body,
    json_only,
    mac,
    no_challenge,
    optional_text,
    require_header,
    require_object,
    same,
    signed_epoch,
    text_id,
)
from bridge.spec import read_table, setting

SIG = "x-hubspot-signature-v3"
STAMP = "x-hubspot-request-timestamp"


@dataclass(frozen=True, slots=True)
class Options:
    public_url: str | None = setting(
        None, help="the URL HubSpot calls, when a proxy stands between (it signs that URL)"
    )
    trust_proxy: bool = setting(False, help="rebuild the URL from X-Forwarded-Proto/Host")
    closed_stages: tuple[str, ...] = setting(
        ("4",), help="ticket pipeline stage ids that complete (4: the default pipeline's Closed)"
    )
    reopened_stages: tuple[str, ...] = setting(
        (), help="ticket pipeline stage ids that mean reopened (requested again)"
    )


def options(where: str, table: Mapping[str, Any]) -> Options:
    o: Options = read_table(Options, where, table)
    if o.public_url is not None and not o.public_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"{where}.public_url",
            "expected a full URL, e.g. https://bridge.example.com/webhooks/hubspot",
        )
    both = set(o.closed_stages) & set(o.reopened_stages)
    if both:
        raise ConfigError(
            f"{where}.reopened_stages", f"stage {sorted(both)[0]!r} is also in closed_stages"
        )
    return o


accepts = json_only
parse = json_body
acknowledge = default_answer


def signed_uri(source: SourceSettings, request: WebhookRequest) -> str:
    seen = urlsplit(request.url)
    o: Options = source.options
    public = o.public_url
    if public:
        base = urlsplit(public)
        return str(urlunsplit((base.scheme, base.netloc, base.path, base.query or seen.query, "")))
    scheme, host = seen.scheme, seen.netloc
    if o.trust_proxy:
        scheme = (request.header("x-forwarded-proto") or scheme).split(",")[0].strip()
        host = (request.header("x-forwarded-host") or host).split(",")[0].strip()
    return str(urlunsplit((scheme, host, seen.path, seen.query, "")))


challenge = no_challenge  # its senders have no set-up handshake


# HubSpot's request-validation page: these escapes are decoded in the URI before signing.
_DECODED = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip
_ESCAPE = re.compile("|".join(_DECODED), re.IGNORECASE)
TICKET_TYPE = "0-5"  # objectTypeId of tickets in generic `object.*` subscriptions
MAPPED = {
    "conversation.creation": "thread",
    "conversation.propertyChange": "thread",
    "ticket.creation": "ticket",  # Help Desk tickets are CRM tickets
    "ticket.propertyChange": "ticket",
    "object.creation": "ticket",  # the generic format, when objectTypeId is 0-5
    "object.propertyChange": "ticket",
}


def _what(ev: dict[str, Any]) -> str | None:
    """ "thread" or "ticket" for the events the kind maps, None for any other."""
    kind = ev.get("subscriptionType")
    what = MAPPED.get(kind) if isinstance(kind, str) else None
    if str(kind).startswith("object.") and ev.get("objectTypeId") != TICKET_TYPE:
        return None
    return what


def decoded_uri(uri: str) -> str:
    return _ESCAPE.sub(lambda m: _DECODED[m.group(0).upper()], uri)


def verify(source: SourceSettings, request: WebhookRequest, tolerance_s: int) -> None:
    given = require_header(request, SIG).strip()
    stamp, sent_at = signed_epoch(request, STAMP, milliseconds=True)
    check_window(sent_at, request, tolerance_s, STAMP)
    uri = signed_uri(source, request)
    matched = False
    for form in (decoded_uri(uri), uri):
        message = (request.method.upper() + form).encode() + request.body + stamp.encode()
        if same(base64.b64encode(mac(source.secret.encode(), message)), given):
            matched = True  # both forms are always tried: the time does not tell which one
    if not matched:
        raise SignatureError(f"{SIG} does not match (check public_url / trust_proxy)")


STAGE = "hs_pipeline_stage"


def _event(o: Options, item: Any) -> SourceEvent:
    ev = require_object(item, "event")
    what = _what(ev)
    if what is None:  # unmapped types are ignored unread (they may lack objectId)
        seen = (ev.get(k) for k in ("subscriptionId", "objectId", "eventId", "occurredAt"))
        return SourceEvent(":".join(str(v)[:40] for v in seen), None, ev)
    parts = [text_id(ev.get(k), k) for k in ("subscriptionId", "objectId", "eventId")]
    occurred = parse_time(ev.get("occurredAt"), "occurredAt")
    event_id = ":".join([*parts, str(occurred)])
    created = str(ev.get("subscriptionType")).endswith(".creation")
    prop = ev.get("propertyName")
    value = optional_text(ev.get("propertyValue"))
    status = str(value or "").upper()
    owner = "assignedTo" if what == "thread" else "hubspot_owner_id"
    handoff = None
    if created:
        handoff = Handoff("requested")
    elif prop == owner:
        handoff = Handoff("accepted", by=value) if value else Handoff("released")
    elif what == "thread" and prop == "status" and status == "CLOSED":
        handoff = Handoff("completed")
    elif what == "thread" and prop == "status" and status == "OPEN":
        handoff = Handoff("requested")  # reopened
    elif what == "ticket" and prop == STAGE and value in o.closed_stages:
        handoff = Handoff("completed")
    elif what == "ticket" and prop == STAGE and value in o.reopened_stages:
        handoff = Handoff("requested")  # reopened
    if handoff is None:
        return SourceEvent(event_id, None, ev)
    # Tickets and threads number apart: a ticket's link key says it is a ticket.
    external = parts[1] if what == "thread" else f"ticket:{parts[1]}"
    return SourceEvent(event_id, Intent(occurred, external_id=external, handoff=handoff), ev)


def normalize(source: SourceSettings, request: WebhookRequest, payload: Any) -> list[SourceEvent]:
    o: Options = source.options
    if isinstance(payload, dict):
        return [_event(o, payload)]
    if not isinstance(payload, list) or not payload:
        raise PayloadError("body: expected a non-empty array of HubSpot events")
    return indexed(payload, lambda item: _event(o, item))
