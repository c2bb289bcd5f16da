"""Any JSON sender: an HMAC of the body in one header, and `[sources.X.map]` JMESPath
expressions to intent fields. An array body is mapped element by element.

Header `signature_header` (default X-Signature) = `signature_prefix` (default `sha256=`) +
HMAC(`signature_algorithm` sha256|sha1) of the body in `signature_encoding` hex|base64.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bridge.errors import ConfigError, PayloadError, SignatureError
from bridge.expressions import Expression, compile_expression
from bridge.intents import parse_intent
from bridge.providers.base import (
    SourceEvent,
    SourceSettings,
    WebhookRequest,
    body_sha256,
    default_answer,
    indexed,
    json_body,
    json_only,
    no_challenge,
    require_header,
    same,
)
from bridge.spec import read_table, setting

MAP_KEYS = (
    "event_id",
    "occurred_at",
    "external_id",
    "agent_id",
    "convo_id",
    "tags_add",
    "tags_remove",
    "handoff.event",
    "handoff.at",
    "handoff.by",
    "handoff.team_key",
    "handoff.team_ids",
    "handoff.team_keys",
    "handoff.organization_id",
)


@dataclass(frozen=True, slots=True)
class Options:
    signature_header: str = setting("X-Signature", help="the header holding the signature")
    signature_prefix: str = setting("sha256=", help="what comes before the signature")
    signature_algorithm: Literal["sha256", "sha1"] = setting("sha256", help="the HMAC's hash")
    signature_encoding: Literal["hex", "base64"] = setting("hex", help="how it is written")
    map: Mapping[str, Expression] = field(default_factory=dict)  # [sources.NAME.map]


def options(where: str, table: Mapping[str, Any]) -> Options:
    scalars = {k: v for k, v in table.items() if k != "map"}
    if scalars.get("signature_prefix") == "":  # "no prefix" is a meaningful empty string
        scalars.pop("signature_prefix")
        o = replace(read_table(Options, where, scalars), signature_prefix="")
    else:
        o = read_table(Options, where, scalars)
    raw_map = table.get("map")
    if not isinstance(raw_map, dict) or not raw_map:
        raise ConfigError(f"{where}.map", "a generic source needs a [map] table")
    mapping: dict[str, Expression] = {}
    for key, expr in raw_map.items():
        if key not in MAP_KEYS and not key.startswith("set."):
            raise ConfigError(
                f"{where}.map.{key}",
                f"unknown; expected set.FIELD or one of {', '.join(MAP_KEYS)}",
            )
        mapping[key] = compile_expression(expr, f"{where}.map.{key}")
    return replace(o, map=mapping)


accepts = json_only
parse = json_body
challenge = no_challenge  # its senders have no set-up handshake
acknowledge = default_answer


def verify(source: SourceSettings, request: WebhookRequest, tolerance_s: int) -> None:
    o: Options = source.options
    header = o.signature_header.lower()
    prefix = o.signature_prefix
    algorithm = o.signature_algorithm
    given = require_header(request, header)
    if not given.startswith(prefix):
        raise SignatureError(f"{header}: expected {prefix}<signature>")
    digest = hmac.new(source.secret.encode(), request.body, algorithm).digest()
    if o.signature_encoding == "base64":
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
    mapping = source.options.map
    values = {key: expr.search(item) for key, expr in mapping.items()}
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
        expr = mapping.get(key) or mapping.get(key.replace(".", "_", 1))
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
