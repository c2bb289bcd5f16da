"""Any sender, declared in the config rather than coded: the body it sends (JSON, form or
XML, each read into one tree), what a request must prove (bridge/providers/proofs.py), a
set-up handshake to echo, the answer it needs, and `[sources.X.map]` JMESPath expressions
from the tree to intent fields. An array (or the `events` expression's list) is mapped
element by element. Several built-in kinds are this kind with shipped settings
(bridge/providers/presets/).

Defaults keep the first form of this kind: `signature_header` X-Signature =
`signature_prefix` `sha256=` + hex HMAC-SHA256 of the body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import orjson

from bridge.errors import ConfigError, PayloadError, SignatureError, UnsupportedMedia
from bridge.expressions import Expression, compile_expression
from bridge.intents import parse_intent
from bridge.providers.base import (
    Answer,
    SourceEvent,
    SourceSettings,
    WebhookRequest,
    body_sha256,
    check_window,
    indexed,
    require_header,
    same,
)
from bridge.providers.formats import (
    FORM,
    is_form,
    is_json,
    is_xml,
    parse_form,
    parse_json,
    parse_xml,
)
from bridge.providers.proofs import (
    HMACS,
    PARTS,
    PLACEHOLDER,
    PUBLIC_KEYS,
    basic_auth,
    bearer,
    decode_signature,
    header_list,
    query_token,
    read_timestamp,
    signature_matches,
    signed_bytes,
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
EMPTY_ALLOWED = ("signature_prefix", "answer_body")  # "" means something for these


@dataclass(frozen=True, slots=True)
class Options:
    body: Literal["json", "form", "xml"] = setting("json", help="the body the sender sends")
    proof: Literal["hmac", "public_key", "basic", "bearer", "header", "query", "body_field"] = (
        setting("hmac", help="what a request must prove")
    )
    signature_header: str = setting("X-Signature", help="the header holding the signature")
    signature_prefix: str = setting("sha256=", help="what comes before the signature")
    signature_algorithm: Literal["sha1", "sha256", "sha512", "ed25519", "rsa-sha256"] = setting(
        "sha256", help="HMAC hash (proof hmac) or key type (proof public_key)"
    )
    signature_encoding: Literal["hex", "base64"] = setting("hex", help="how it is written")
    signature_list_key: str | None = setting(
        None, help="the header is a k=v,k=v list: the signatures under this key (e.g. v1)"
    )
    signed: str = setting(
        "{body}", help="what is signed: text and {body} {timestamp} {method} {url} {params}"
    )
    timestamp_header: str | None = setting(None, help="the header holding the signed time")
    timestamp_list_key: str | None = setting(
        None, help="the signed time under this key of the signature header's list (e.g. t)"
    )
    timestamp_unit: Literal["s", "ms", "iso"] = setting("s", help="how the time is written")
    public_url: str | None = setting(None, help="{url}: the URL the sender calls (proxy)")
    trust_proxy: bool = setting(False, help="{url}: honour X-Forwarded-Proto/Host")
    token_header: str = setting("X-Bridge-Secret", help="proof header: the header")
    token_param: str = setting("token", help="proof query: the query parameter")
    token_field: str | None = setting(None, help="proof body_field: JMESPath to the secret")
    events: str | None = setting(None, help="JMESPath: the list of events in the body")
    challenge: str | None = setting(
        None, help="JMESPath: a set-up handshake's value to echo (null: not a handshake)"
    )
    challenge_param: str | None = setting(
        None, help="a query parameter holding a set-up handshake's value to echo"
    )
    answer_status: int = setting(202, low=200, high=299, help="the status once queued")
    answer_body: str | None = setting(None, help="the body once queued (default: the counts)")
    answer_media_type: str = setting("text/plain", help="the answer's Content-Type")
    answer_get: bool = setting(
        False, help="GET /webhooks/NAME answers 200 (a sender that checks its URL so)"
    )
    answer_empty: bool = setting(
        False,
        help="a proven POST with no events (an empty body, [] or {}) is answered answer_status, "
        "nothing queued (a sender's URL check)",
    )
    map: Mapping[str, Expression] = field(default_factory=dict)  # [sources.NAME.map]
    compiled: Mapping[str, Expression] = field(default_factory=dict)  # events, challenge...


def _fits(where: str, o: Options) -> None:
    """Settings that do not fit together stop start-up, naming the key."""
    if o.proof == "hmac" and o.signature_algorithm not in HMACS:
        raise ConfigError(
            f"{where}.signature_algorithm", f"proof hmac takes one of {', '.join(HMACS)}"
        )
    if o.proof == "public_key" and o.signature_algorithm not in PUBLIC_KEYS:
        raise ConfigError(
            f"{where}.signature_algorithm",
            f"proof public_key takes one of {', '.join(PUBLIC_KEYS)}",
        )
    for m in PLACEHOLDER.finditer(o.signed):
        if m.group(1) not in PARTS:
            raise ConfigError(
                f"{where}.signed", f"unknown part {{{m.group(1)}}}; parts: {', '.join(PARTS)}"
            )
    if "{params}" in o.signed and o.body != "form":
        raise ConfigError(f"{where}.signed", '{params} needs body = "form"')
    if "{timestamp}" in o.signed and not (o.timestamp_header or o.timestamp_list_key):
        raise ConfigError(
            f"{where}.timestamp_header", "{timestamp} is signed: name where the time is"
        )
    if o.timestamp_list_key and not o.signature_list_key:
        raise ConfigError(f"{where}.timestamp_list_key", "needs signature_list_key too")
    if o.proof == "body_field" and o.token_field is None:
        raise ConfigError(f"{where}.token_field", "proof body_field needs the field's JMESPath")
    if o.public_url is not None and not o.public_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.public_url", "expected a full URL")


def options(where: str, table: Mapping[str, Any]) -> Options:
    scalars = {k: v for k, v in table.items() if k != "map"}
    empties = {k: scalars.pop(k) for k in EMPTY_ALLOWED if scalars.get(k) == ""}
    o = replace(read_table(Options, where, scalars), **empties)
    _fits(where, o)
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
    compiled = {
        key: compile_expression(getattr(o, key), f"{where}.{key}")
        for key in ("events", "challenge", "token_field")
        if getattr(o, key) is not None
    }
    return replace(o, map=mapping, compiled=compiled)


def accepts(source: SourceSettings, headers: Mapping[str, str]) -> None:
    o: Options = source.options
    if o.answer_empty and headers.get("content-length") == "0":
        return  # a URL check with no body: answered by challenge() once proven
    content_type = headers.get("content-type", "")
    fits = {"json": is_json, "form": is_form, "xml": is_xml}[o.body](content_type)
    if not fits:
        expected = {"json": "application/json", "form": FORM, "xml": "text/xml"}[o.body]
        raise UnsupportedMedia(f"expected Content-Type: {expected}")


def parse(source: SourceSettings, request: WebhookRequest) -> Any:
    """The body as the source's `body` format says, as one tree; parsed once per request."""
    if "tree" not in request.parsed:
        o: Options = source.options
        readers: dict[str, Callable[[bytes], Any]] = {"form": parse_form, "xml": parse_xml}
        request.parsed["tree"] = readers.get(o.body, parse_json)(request.body)
    return request.parsed["tree"]


def called_url(o: Options, request: WebhookRequest) -> str:
    """The full URL the sender called, as it signs it."""
    seen = urlsplit(request.url)
    if o.public_url:
        base = urlsplit(o.public_url)
        return str(urlunsplit((base.scheme, base.netloc, base.path, seen.query, "")))
    scheme, host = seen.scheme, seen.netloc
    if o.trust_proxy:
        scheme = (request.header("x-forwarded-proto") or scheme).split(",")[0].strip()
        host = (request.header("x-forwarded-host") or host).split(",")[0].strip()
    return str(urlunsplit((scheme, host, seen.path, seen.query, "")))


def _signature(source: SourceSettings, request: WebhookRequest, tolerance_s: int) -> None:
    o: Options = source.options
    header = o.signature_header.lower()
    given = require_header(request, header).strip()
    listed = header_list(given) if o.signature_list_key else None
    if listed is not None:
        candidates = listed.get(str(o.signature_list_key), [])
    else:
        if not given.startswith(o.signature_prefix):
            raise SignatureError(f"{header}: expected {o.signature_prefix}<signature>")
        candidates = [given[len(o.signature_prefix) :].strip()]
    stamp = ""
    if o.timestamp_header or o.timestamp_list_key:
        where = (o.timestamp_header or header).lower()
        stamp, sent_at = read_timestamp(
            request, where, listed, o.timestamp_list_key, o.timestamp_unit
        )
        check_window(sent_at, request, tolerance_s, where)
    decoded = [decode_signature(c, o.signature_encoding) for c in candidates]
    signatures = [d for d in decoded if d]
    if not signatures:
        raise SignatureError(f"{header}: no {o.signature_encoding} signature found")
    message = signed_bytes(o.signed, request, called_url(o, request), stamp)
    if not signature_matches(
        o.signature_algorithm, source.secret, message, signatures, o.signature_encoding
    ):
        raise SignatureError(f"{header} does not match")


def verify(source: SourceSettings, request: WebhookRequest, tolerance_s: int) -> None:
    o: Options = source.options
    if o.proof in ("hmac", "public_key"):
        _signature(source, request, tolerance_s)
    elif o.proof == "basic":
        basic_auth(request, source.secret)
    elif o.proof == "bearer":
        bearer(request, source.secret)
    elif o.proof == "header":
        if not same(source.secret, require_header(request, o.token_header.lower())):
            raise SignatureError(f"{o.token_header.lower()} does not match the shared secret")
    elif o.proof == "query":
        query_token(request, o.token_param, source.secret)
    else:  # body_field: the secret travels in the body (the sender cannot sign)
        try:
            value = o.compiled["token_field"].search(parse(source, request))
        except PayloadError:
            value = None
        if not isinstance(value, str) or not same(source.secret, value):
            raise SignatureError(f"body field {o.token_field} does not match the secret")


def challenge(source: SourceSettings, request: WebhookRequest) -> Answer | None:
    """A sender's set-up request (Slack's url_verification…): echo the value the
    `challenge` expression finds in the body, or the `challenge_param` query parameter,
    200 text/plain; nothing is queued."""
    o: Options = source.options
    if o.answer_empty and _no_events(source, request):
        counts = {"accepted": 0, "duplicates": 0, "ignored": 0, "unroutable": 0}
        if o.answer_body is not None:
            return Answer(o.answer_body, o.answer_status, o.answer_media_type)
        return Answer(orjson.dumps(counts).decode(), o.answer_status, "application/json")
    if o.challenge_param is not None:
        values = [v for k, v in parse_qsl(urlsplit(request.url).query) if k == o.challenge_param]
        if values and values[0]:
            return Answer(values[0])
    expr = o.compiled.get("challenge")
    if expr is None:
        return None
    value = expr.search(parse(source, request))
    if isinstance(value, str) and value:
        return Answer(value)
    return None


def _no_events(source: SourceSettings, request: WebhookRequest) -> bool:
    """An empty body, or one that is only `[]` or `{}`."""
    body = request.body.strip()
    if not body:
        return True
    if len(body) > 16 or body[:1] not in (b"[", b"{"):  # an event is longer: not parsed twice
        return False
    try:
        return parse(source, request) in ([], {})
    except PayloadError:
        return False


def acknowledge(source: SourceSettings, counts: Mapping[str, int]) -> Answer | None:
    o: Options = source.options
    if o.answer_body is not None:
        return Answer(o.answer_body, o.answer_status, o.answer_media_type)
    if o.answer_status != 202:
        return Answer(orjson.dumps(dict(counts)).decode(), o.answer_status, "application/json")
    return None


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
    if not (wire.get("set") or wire.get("handoff") or any(wire.get("tags", {}).values())):
        # nothing to change: ignored, whatever its ids (a map may give no external id for
        # the events it does not read, e.g. a thread event whose `id` is not the ticket's)
        return SourceEvent(event_id, None, item)
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
    o: Options = source.options
    events = o.compiled.get("events")
    if events is not None:  # the body holds its events somewhere: map each
        found = events.search(payload)
        payload = [] if found is None else found if isinstance(found, list) else [found]
        return [_mapped(source, item, f"{digest}:{i}", received) for i, item in enumerate(payload)]
    if isinstance(payload, list):
        if not payload:
            raise PayloadError("body: expected an object or a non-empty array")
        return indexed(
            list(enumerate(payload)),
            lambda p: _mapped(source, p[1], f"{digest}:{p[0]}", received),
        )
    return [_mapped(source, payload, digest, received)]
