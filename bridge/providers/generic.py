"""Any JSON sender: an HMAC of the body in one header, and `[sources.X.map]` JMESPath
expressions to intent fields. An array body is mapped element by element.

Header `signature_header` (default X-Signature) = `signature_prefix` (default `sha256=`) +
HMAC(`signature_algorithm` sha256|sha1) of the body in `signature_encoding` hex|base64.
"""

from __future__ import annotations

import base64
import hmac
from typing import TYPE_CHECKING, Any

from bridge.errors import PayloadError, SignatureError
from bridge.intents import parse_intent
from bridge.providers.base import (
    SourceEvent,
    WebhookRequest,
    body_sha256,
    indexed,
    no_challenge,
    require_header,
    same,
)

if TYPE_CHECKING:
    from bridge.config import SourceSettings


challenge = no_challenge  # its senders have no set-up handshake


def verify(source: SourceSettings, request: WebhookRequest, tolerance_s: int) -> None:
    o = source.options
    header = str(o.get("signature_header") or "x-signature").lower()
    prefix = str(o.get("signature_prefix", "sha256="))
    algorithm = str(o.get("signature_algorithm") or "sha256")
    given = require_header(request, header)
    if not given.startswith(prefix):
        raise SignatureError(f"{header}: expected {prefix}<signature>")
    digest = hmac.new(source.secret.encode(), request.body, algorithm).digest()
    if o.get("signature_encoding") == "base64":
        expected = base64.b64encode(digest).decode()
        value = given[len(prefix) :].strip()
    else:
        expected = digest.hex()
        value = given[len(prefix) :].strip().lower()
    if not same(expected, value):
        raise SignatureError(f"{header} does not match")


def _key_for(detail: str) -> str:
    """The map key a parse_intent complaint is about (its detail starts with the field)."""
    name = detail.split(":", 1)[0]
    if name.startswith("tags."):
        return "tags_" + name[5:]
    return name


def _mapped(source: SourceSettings, item: Any, fallback_id: str, received_ms: int) -> SourceEvent:
    wire: dict[str, Any] = {}
    values = {key: expr.search(item) for key, expr in source.mapping.items()}
    for key, value in values.items():
        if value is None or key == "event_id":
            continue
        if key.startswith("set."):
            wire.setdefault("set", {})[key[4:]] = value
        elif key in ("tags_add", "tags_remove"):
            wire.setdefault("tags", {})[key[5:]] = value
        elif key.startswith("handoff."):
            wire.setdefault("handoff", {})[key[8:]] = value
        else:
            wire[key] = value
    wire.setdefault("occurred_at", received_ms)
    if "handoff" in wire and "event" not in wire["handoff"]:
        del wire["handoff"]  # no step named: the other handoff keys have nothing to attach to
    event_id = values.get("event_id")
    event_id = str(event_id) if isinstance(event_id, str | int) and event_id != "" else fallback_id
    try:
        intent = parse_intent(wire)
    except PayloadError as exc:
        key = _key_for(exc.detail)
        expr = source.mapping.get(key) or source.mapping.get(key.replace(".", "_", 1))
        where = f" (map.{key} = {expr.expression!r})" if expr is not None else ""
        raise PayloadError(exc.detail + where) from None
    return SourceEvent(event_id, intent, item)


def normalize(source: SourceSettings, request: WebhookRequest, payload: Any) -> list[SourceEvent]:
    digest = body_sha256(request.body)
    received = int(request.received_at * 1000)
    if isinstance(payload, list):
        if not payload:
            raise PayloadError("body: expected an object or a non-empty array")
        return indexed(
            list(enumerate(payload)),
            lambda p: _mapped(source, p[1], f"{digest}:{p[0]}", received),
        )
    return [_mapped(source, payload, digest, received)]
