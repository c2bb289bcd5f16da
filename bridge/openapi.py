"""The OpenAPI 3.1 document of convo-bridge's HTTP API, served at /openapi.json.

Written by hand next to the routes; tests/bridge/test_openapi.py keeps it true (every route
documented, nothing documented that is not routed) and runs schemathesis against a live
server (no 5xx, no answer outside the documented ones).
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from bridge.catalogue import json_schemas
from bridge.eventlog import VERDICTS
from bridge.intents import HANDOFF_EVENTS

try:
    VERSION = version("convo-bridge")
except PackageNotFoundError:  # running from a checkout that is not installed
    VERSION = "0.0.0"

JSON = "application/json"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _text(description: str, media: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "string"},
    }
}


def _retry(response: dict[str, Any]) -> dict[str, Any]:
    """A 503: it says when to try again."""
    return {**response, "headers": RETRY_AFTER}


ADMIN_ERRORS = {
    "400": _error("The request body or a parameter is not what was expected (detail says which)."),
    "401": _error("Missing or wrong admin token."),
    "403": _error("Signed in by cookie, but the X-CSRF-Token header is missing or wrong."),
    "404": _error(
        "No such item; or no admin token is configured (the admin API then does not exist)."
    ),
    "503": _retry(_error("Redis is unreachable.")),
}
PAUSED = {
    "type": "object",
    "required": ["delivery_paused"],
    "properties": {"delivery_paused": {"type": "boolean"}},
}
PATH_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
PATH_SOURCE = {"name": "source", "in": "path", "required": True, "schema": {"type": "string"}}


def _webhook_source(sources: list[str]) -> dict[str, Any]:
    """The configured source names, so generated requests reach a real source."""
    schema: dict[str, Any] = {"type": "string"}
    if sources:
        schema["enum"] = sorted(sources)
    return {"name": "source", "in": "path", "required": True, "schema": schema}


PATH_CONVERSATION = [
    {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
    for n in ("agent_id", "convo_id")
]
PATH_EXT = {"name": "external_id", "in": "path", "required": True, "schema": {"type": "string"}}
SELECT = {
    "required": True,
    "content": {
        JSON: {
            "schema": {
                "type": "object",
                "description": 'One of {"ids": [...]}, {"all": true}, or a filter: any of '
                '{"source": "NAME", "reason": "REASON", "since": "2h"} (all given must hold).',
                "properties": {
                    "ids": {"type": "array", "items": {"type": "string"}},
                    "all": {"type": "boolean"},
                    "source": {"type": "string"},
                    "reason": {"type": "string"},
                    "since": {"type": "string"},
                },
            }
        }
    },
}


def _query(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


def _admin(summary: str, ok: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": ["admin"],
        "security": [{"bearer": []}, {"cookie": []}],
        "responses": {"200": ok, **ADMIN_ERRORS},
        **extra,
    }


def _page(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "tags": ["admin page"], "responses": responses, **extra}


FORM = {
    "required": False,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {"type": "object", "properties": {"csrf": {"type": "string"}}}
        }
    },
}
PAGE_ANSWERS = {
    "303": {"description": "Done (or not signed in): back to /admin/."},
    "403": _text("Missing or wrong CSRF token."),
    "404": _text("No admin token is configured."),
    "503": _retry(_text("Redis is unreachable.")),
}


# Each sender kind's headers: what a request must carry to be verified (and, for some, its
# dedup key or event name). Every header is documented once, naming the kinds that read it.
SIGNATURE_HEADERS: dict[str, tuple[tuple[str, str], ...]] = {
    "standard": (
        ("webhook-id", "Message id; the dedup key."),
        ("webhook-timestamp", "Epoch seconds, within signature_tolerance_s."),
        (
            "webhook-signature",
            "Space-separated `v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>`.",
        ),
        ("svix-id", "As webhook-id, from a sender hosted on Svix."),
        ("svix-timestamp", "As webhook-timestamp, from a sender hosted on Svix."),
        ("svix-signature", "As webhook-signature, from a sender hosted on Svix."),
    ),
    "zendesk": (
        (
            "X-Zendesk-Webhook-Signature",
            "Base64 HMAC-SHA256 of {timestamp header}{body}, keyed with the signing secret.",
        ),
        ("X-Zendesk-Webhook-Signature-Timestamp", "ISO 8601, within signature_tolerance_s."),
        ("X-Zendesk-Webhook-Invocation-Id", "Trigger webhooks: the dedup key (optional)."),
    ),
    "intercom": (
        ("X-Hub-Signature", "`sha1=<hex HMAC-SHA1 of the body>`, keyed with the client secret."),
    ),
    "hubspot": (
        (
            "X-HubSpot-Signature-v3",
            "Base64 HMAC-SHA256 of {method}{URL}{body}{timestamp}, keyed with the client secret.",
        ),
        ("X-HubSpot-Request-Timestamp", "Epoch milliseconds, within signature_tolerance_s."),
    ),
    "front": (
        (
            "X-Front-Signature",
            "App webhooks: base64 HMAC-SHA256 of {timestamp}:{body}; rule webhooks: base64 "
            "HMAC-SHA1 of the body.",
        ),
        ("X-Front-Request-Timestamp", "App webhooks: epoch milliseconds, within the tolerance."),
        ("X-Front-Challenge", "App webhooks' set-up request: echoed with 200 once verified."),
    ),
    "helpscout": (
        ("X-HelpScout-Signature", "Base64 HMAC-SHA1 of the body, keyed with the webhook secret."),
        ("X-HelpScout-Event", "The event, e.g. convo.assigned."),
    ),
    "freshdesk": (
        (
            "X-Bridge-Secret",
            "The shared secret itself, compared in constant time (freshdesk: the source's "
            '`header` renames it; generic `proof = "header"`: `token_header`).',
        ),
    ),
    "generic": (
        (
            "X-Signature",
            '`proof = "hmac"` (the default): `signature_prefix` (default `sha256=`) + the '
            'HMAC of what `signed` says (default the body); `proof = "public_key"`: an '
            "Ed25519 or RSA-SHA256 signature; the source's `signature_header` renames it, "
            "`timestamp_header` names a signed time.",
        ),
        ("X-Bridge-Secret", "As for freshdesk."),
        (
            "Content-Type",
            "The body the kind takes: JSON (generic's default, crisp, livechat, zohodesk), "
            'application/x-www-form-urlencoded (twilio, generic `body = "form"`) or XML, '
            'text/xml or application/xml (salesforce, generic `body = "xml"`); else 415. '
            "Kinds that cannot sign prove the secret elsewhere: salesforce, the body's "
            "OrganizationId; livechat, the body's secret_key; crisp, the `key` query "
            "parameter; zohodesk, the `token` query parameter; generic, `proof` = basic, bearer, query or body_field.",
        ),
    ),
    "salesforce": (("Content-Type", "As for generic."),),
    "twilio": (
        (
            "X-Twilio-Signature",
            "Base64 HMAC-SHA1 of the full URL then each form parameter sorted by name (name, "
            "then value), keyed with the auth token.",
        ),
        ("Content-Type", "As for generic."),
    ),
    "livechat": (("Content-Type", "As for generic."),),
    "freshchat": (
        (
            "X-Freshchat-Signature",
            "Base64 RSA-SHA256 (PKCS#1 v1.5) of the body, checked with Freshchat's public key.",
        ),
    ),
    "crisp": (("Content-Type", "As for generic."),),
    "gorgias": (("X-Bridge-Secret", "As for freshdesk."),),
    "kustomer": (
        (
            "X-Kustomer-Webhook-Signature",
            "Lowercase hex HMAC-SHA256 of the body, keyed with the webhook's token.",
        ),
    ),
    "zohodesk": (("Content-Type", "As for generic."),),
}


def _signature_headers() -> list[dict[str, Any]]:
    kinds_of: dict[str, list[str]] = {}
    said: dict[str, str] = {}
    for kind, headers in SIGNATURE_HEADERS.items():
        for name, description in headers:
            kinds_of.setdefault(name, []).append(kind)
            said.setdefault(name, description)
    return [
        {
            "name": name,
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": f"Kind {', '.join(kinds)}: {said[name]}",
        }
        for name, kinds in kinds_of.items()
    ]


# Client generators name their functions after these; a route without one here gets
# `<method>_<path>` (test_openapi checks they are unique).
OPERATION_IDS = {
    ("/webhooks/{source}", "post"): "receive_webhook",
    ("/webhooks/{source}", "get"): "check_webhook_url",
    ("/healthz", "get"): "check_alive",
    ("/readyz", "get"): "check_ready",
    ("/metrics", "get"): "get_metrics",
    ("/openapi.json", "get"): "get_openapi_document",
    ("/admin/status", "get"): "get_status",
    ("/admin/delivery/pause", "post"): "pause_delivery",
    ("/admin/delivery/resume", "post"): "resume_delivery",
    ("/admin/dlq", "get"): "list_dead_letters",
    ("/admin/dlq/replay", "post"): "replay_dead_letters",
    ("/admin/dlq/purge", "post"): "purge_dead_letters",
    ("/admin/dlq/{id}", "get"): "get_dead_letter",
    ("/admin/dlq/{id}", "delete"): "purge_dead_letter",
    ("/admin/dlq/{id}/replay", "post"): "replay_dead_letter",
    ("/admin/conversations/{agent_id}/{convo_id}", "get"): "trace_conversation",
    ("/admin/links", "get"): "list_links",
    ("/admin/links/{source}/{external_id}", "get"): "get_link",
    ("/admin/links/{source}/{external_id}", "put"): "set_link",
    ("/admin/links/{source}/{external_id}", "delete"): "delete_link",
    ("/admin", "get"): "redirect_to_admin_page",
    ("/admin/", "get"): "admin_page",
    ("/admin/login", "post"): "sign_in",
    ("/admin/logout", "post"): "sign_out",
    ("/admin/ui/conversation", "get"): "conversation_page",
    ("/admin/ui/dlq/replay-all", "post"): "page_replay_all_dead_letters",
    ("/admin/ui/dlq/purge-all", "post"): "page_purge_all_dead_letters",
    ("/admin/ui/dlq/{id}/replay", "post"): "page_replay_dead_letter",
    ("/admin/ui/dlq/{id}/purge", "post"): "page_purge_dead_letter",
}


def _name_operations(paths: dict[str, dict[str, dict[str, Any]]]) -> None:
    for path, operations in paths.items():
        for method, operation in operations.items():
            fallback = method + "_" + "_".join(re.findall(r"[a-z0-9]+", path.lower()))
            operation.setdefault("operationId", OPERATION_IDS.get((path, method), fallback))


def document(sources: list[str] | None = None) -> dict[str, Any]:
    """The document; `sources` (this deployment's source names) become the choices for
    /webhooks/{source}."""
    field_schemas = json_schemas()
    intent = {
        "type": "object",
        "description": "A conversation-update intent. Routed by agent_id + "
        "convo_id, or by external_id through the link registry.",
        "properties": {
            "type": {"const": "conversation.update"},
            "agent_id": {"type": "string"},
            "convo_id": {"type": "string"},
            "external_id": {"type": "string"},
            "occurred_at": {
                "description": "Epoch milliseconds or RFC 3339.",
                "oneOf": [{"type": "integer"}, {"type": "string"}],
            },
            "set": {"type": "object", "properties": field_schemas, "additionalProperties": False},
            "tags": {
                "type": "object",
                "properties": {
                    "add": {"type": "array", "items": {"type": "string"}},
                    "remove": {"type": "array", "items": {"type": "string"}},
                },
            },
            "handoff": {
                "type": "object",
                "required": ["event"],
                "properties": {
                    "event": {"enum": list(HANDOFF_EVENTS)},
                    "at": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
                    "by": {"type": "string"},
                    "team_key": {"type": "string"},
                    "team_ids": {"type": "array", "items": {"type": "string"}},
                    "team_keys": {"type": "array", "items": {"type": "string"}},
                    "organization_id": {"type": "string"},
                },
            },
        },
        "required": ["occurred_at"],
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "convo-bridge",
            "version": VERSION,
            "description": "Webhooks from helpdesks and CRMs in, Convocore conversation PATCHes out.",
        },
        "paths": {
            "/webhooks/{source}": {
                "post": {
                    "summary": "Receive a signed webhook from the configured source",
                    "description": "Each source's `kind` decides the signature scheme (the "
                    "headers below, each naming its kinds) and the payload; for `standard` the "
                    "body is an intent or an array of them. 202 only once every event is in "
                    "Redis.",
                    "parameters": [_webhook_source(sources or []), *_signature_headers()],
                    "requestBody": {
                        "required": True,
                        "content": {
                            JSON: {
                                "schema": {"oneOf": [intent, {"type": "array", "items": intent}]}
                            },
                            # kinds that take them: generic `body = "form"`, twilio. XML
                            # (salesforce, generic `body = "xml"`) is described under the
                            # Content-Type header only: client generators take no XML bodies.
                            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                        },
                    },
                    "responses": {
                        "202": _json("Queued.", {"$ref": "#/components/schemas/Receipt"}),
                        "200": {
                            "description": "A sender's set-up challenge echoed (Front, a "
                            "generic source's `challenge`), or once queued, the answer a kind "
                            "declares (Salesforce: the SOAP Ack; a generic source's "
                            "answer_status / answer_body).",
                            "content": {
                                m: {"schema": {"type": "string"}}
                                for m in ("text/plain", "text/xml", JSON)
                            },
                        },
                        "400": _error(
                            "Not valid JSON, or an event the kind cannot read (detail names the field)."
                        ),
                        "401": _error("Signature missing, wrong or outside the time window."),
                        "404": _error("No source of that name in the config."),
                        "408": _error("The body did not arrive within read_timeout_s."),
                        "413": _error("The body is over max_body_bytes (once decoded)."),
                        "415": _error(
                            "A Content-Type the source's kind does not take, or a "
                            "Content-Encoding other than gzip or deflate."
                        ),
                        "431": _error("The request head is over max_header_bytes."),
                        "503": _retry(
                            _error(
                                "Redis is unreachable, or every connection is busy: nothing "
                                "was queued; retry."
                            )
                        ),
                    },
                },
                "get": {
                    "summary": "Check a webhook URL (senders that do so before saving it)",
                    "description": "200 for a source whose kind checks its URL with a GET "
                    "(zohodesk; a generic source's `answer_get`): nothing is read or queued. "
                    "405 for the other sources.",
                    "parameters": [_webhook_source(sources or [])],
                    "responses": {
                        "200": {
                            "description": "The endpoint is alive.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "404": _error("No source of that name in the config."),
                        "405": _error("This source's kind takes POST only."),
                    },
                },
            },
            "/healthz": {
                "get": {
                    "summary": "Alive",
                    "responses": {"200": _json("Alive.", {"type": "object"})},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Ready: Redis reachable",
                    "responses": {
                        "200": _json("Ready.", {"type": "object"}),
                        "503": _json("Redis unreachable.", {"type": "object"}),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": _text("Prometheus text exposition format.")},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json("OpenAPI 3.1.", {"type": "object"})},
                }
            },
            "/admin/status": {
                "get": _admin(
                    "Queue, retries, dead letters, circuit, workers",
                    _json("Status.", {"type": "object"}),
                )
            },
            "/admin/delivery/pause": {
                "post": _admin(
                    "Pause delivery (RQ's suspension, as `rq suspend`); webhooks are still queued",
                    _json("Paused.", PAUSED),
                )
            },
            "/admin/delivery/resume": {
                "post": _admin("Resume delivery (as `rq resume`)", _json("Resumed.", PAUSED))
            },
            "/admin/dlq": {
                "get": _admin(
                    "Dead letters",
                    _json("Summaries.", {"type": "array", "items": {"type": "object"}}),
                    parameters=[
                        {
                            "name": "source",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                        }
                    ],
                )
            },
            "/admin/dlq/replay": {
                "post": _admin(
                    "Replay dead letters",
                    _json("Per id: replayed | unroutable | missing.", {"type": "object"}),
                    requestBody=SELECT,
                )
            },
            "/admin/dlq/purge": {
                "post": _admin(
                    "Purge dead letters",
                    _json("How many were purged.", {"type": "object"}),
                    requestBody=SELECT,
                )
            },
            "/admin/dlq/{id}": {
                "get": _admin(
                    "One dead letter, with its events and attempts",
                    _json("Dead letter.", {"type": "object"}),
                    parameters=[PATH_ID],
                ),
                "delete": _admin(
                    "Purge one dead letter",
                    _json("Purged.", {"type": "object"}),
                    parameters=[PATH_ID],
                ),
            },
            "/admin/dlq/{id}/replay": {
                "post": _admin(
                    "Replay one dead letter",
                    _json("Replayed.", {"type": "object"}),
                    parameters=[PATH_ID],
                )
            },
            "/admin/events": {
                "get": _admin(
                    "The event log: each webhook request and each PATCH, newest first",
                    _json(
                        "Entries, and the id to pass as `before` for the next page (null when "
                        "this page is the last).",
                        {
                            "type": "object",
                            "properties": {
                                "events": {"type": "array", "items": {"type": "object"}},
                                "next_before": {"type": ["string", "null"]},
                            },
                        },
                    ),
                    parameters=[
                        _query(n, description)
                        for n, description in (
                            ("source", "Only this source's requests and the PATCHes they led to."),
                            ("convo", "AGENT_ID/CONVO_ID: only this conversation."),
                            ("external_id", "Only requests naming this sender's ticket id."),
                            ("event_id", "Only this event: its requests and PATCHes."),
                            ("verdict", f"One of {', '.join(VERDICTS)}."),
                            ("status", "Only this HTTP status (202, 401, 200, no_answer…)."),
                            ("kind", "webhook or patch."),
                            ("since", "Only newer: 15m, 2h, 1d, epoch ms or ISO 8601."),
                            ("before", "An entry id: only older entries (the next page)."),
                            ("limit", "At most this many, 1 to 1000 (default 50)."),
                        )
                    ],
                )
            },
            "/admin/conversations/{agent_id}/{convo_id}": {
                "get": _admin(
                    "Trace one conversation: pending changes, applied values with their source, "
                    "event id and times, attempts, dead letters, waiting / in flight / in doubt, "
                    "and why it is (not) up to date",
                    _json("Trace.", {"type": "object"}),
                    parameters=PATH_CONVERSATION,
                )
            },
            "/admin/conversations/{agent_id}/{convo_id}/future": {
                "get": _admin(
                    "Applied values of one conversation dated in the future (a sender's bad "
                    "clock): events for them dated before that are dropped until then",
                    _json(
                        "The entries, with Redis's time now (epoch ms).",
                        {
                            "type": "object",
                            "required": ["agent_id", "convo_id", "now", "entries"],
                            "properties": {
                                "agent_id": {"type": "string"},
                                "convo_id": {"type": "string"},
                                "now": {"type": "integer"},
                                "entries": {"type": "array", "items": {"type": "object"}},
                            },
                        },
                    ),
                    parameters=PATH_CONVERSATION,
                )
            },
            "/admin/conversations/{agent_id}/{convo_id}/clear": {
                "post": _admin(
                    "Forget when applied values happened, so the next event for them wins: "
                    "one field's, or every one dated in the future (the target is not touched)",
                    _json(
                        "The change names dropped.",
                        {
                            "type": "object",
                            "required": ["cleared"],
                            "properties": {
                                "cleared": {"type": "array", "items": {"type": "string"}}
                            },
                        },
                    ),
                    parameters=PATH_CONVERSATION,
                    requestBody={
                        "required": True,
                        "content": {
                            JSON: {
                                "schema": {
                                    "oneOf": [
                                        {
                                            "type": "object",
                                            "required": ["field"],
                                            "properties": {"field": {"type": "string"}},
                                            "description": "a Convocore field name (title, "
                                            "tags, handoffHistory) or a change name as the "
                                            "trace shows it (f:title, t:vip)",
                                        },
                                        {
                                            "type": "object",
                                            "required": ["future"],
                                            "properties": {"future": {"const": True}},
                                        },
                                    ]
                                }
                            }
                        },
                    },
                )
            },
            "/admin/links": {
                "get": _admin(
                    "Every link", _json("Links.", {"type": "array", "items": {"type": "object"}})
                )
            },
            "/admin/links/{source}/{external_id}": {
                "get": _admin(
                    "One link",
                    _json("Link.", {"type": "object"}),
                    parameters=[PATH_SOURCE, PATH_EXT],
                ),
                "put": _admin(
                    "Set a link (replays the source's unroutable events for it)",
                    _json("Link.", {"type": "object"}),
                    parameters=[PATH_SOURCE, PATH_EXT],
                    requestBody={
                        "required": True,
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "required": ["agent_id", "convo_id"],
                                    "properties": {
                                        "agent_id": {"type": "string"},
                                        "convo_id": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                ),
                "delete": _admin(
                    "Delete a link",
                    _json("Deleted.", {"type": "object"}),
                    parameters=[PATH_SOURCE, PATH_EXT],
                ),
            },
            "/admin": {
                "get": _page("Redirect to /admin/", {"308": {"description": "To /admin/."}})
            },
            "/admin/": {
                "get": _page(
                    "The admin page (or its sign-in form)",
                    {
                        "200": _text("HTML.", "text/html"),
                        "404": _text("No admin token is configured."),
                        "503": _retry(_text("Redis is unreachable.", "text/html")),
                    },
                )
            },
            "/admin/login": {
                "post": _page(
                    "Sign in with the admin token (sets an HttpOnly cookie)",
                    {
                        "303": {"description": "Signed in."},
                        "401": _text("Wrong token.", "text/html"),
                        "404": _text("No admin token is configured."),
                    },
                    requestBody={
                        "required": True,
                        "content": {
                            "application/x-www-form-urlencoded": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"token": {"type": "string"}},
                                }
                            }
                        },
                    },
                )
            },
            "/admin/logout": {"post": _page("Sign out", PAGE_ANSWERS, requestBody=FORM)},
            "/admin/ui/conversation": {
                "get": _page(
                    "One conversation's trace, for people",
                    {
                        "200": _text("HTML.", "text/html"),
                        "303": {"description": "Not signed in: to /admin/."},
                        "400": _text("A missing or bad id.", "text/html"),
                        "404": _text("No admin token is configured."),
                        "503": _text("Redis is unreachable."),
                    },
                    parameters=[
                        {"name": n, "in": "query", "required": True, "schema": {"type": "string"}}
                        for n in ("agent_id", "convo_id")
                    ],
                )
            },
            "/admin/ui/events": {
                "get": _page(
                    "The event log, for people: search form and entries",
                    {
                        "200": _text("HTML.", "text/html"),
                        "303": {"description": "Not signed in: to /admin/."},
                        "400": _text("A bad filter (the page names it).", "text/html"),
                        "404": _text("No admin token is configured."),
                        "503": _text("Redis is unreachable."),
                    },
                    parameters=[
                        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                        for n in (
                            "source",
                            "convo",
                            "external_id",
                            "event_id",
                            "verdict",
                            "status",
                            "kind",
                            "since",
                            "before",
                            "limit",
                        )
                    ],
                )
            },
            "/admin/ui/pause": {
                "post": _page("Pause delivery (RQ suspension)", PAGE_ANSWERS, requestBody=FORM)
            },
            "/admin/ui/resume": {"post": _page("Resume delivery", PAGE_ANSWERS, requestBody=FORM)},
            "/admin/ui/links": {
                "post": _page(
                    "Set a link (source, external_id, agent_id, convo_id); what waited replays",
                    {**PAGE_ANSWERS, "400": _text("A missing or bad field (named).")},
                    requestBody=FORM,
                )
            },
            "/admin/ui/retry-now": {
                "post": _page(
                    "A conversation's scheduled retry, now (agent_id, convo_id)",
                    {**PAGE_ANSWERS, "400": _text("A missing or bad id (named).")},
                    requestBody=FORM,
                )
            },
            "/admin/ui/dlq/replay-matching": {
                "post": _page(
                    "Replay the dead letters matching reason, source and since",
                    {**PAGE_ANSWERS, "400": _text("A bad filter (named).")},
                    requestBody=FORM,
                )
            },
            "/admin/ui/dlq/purge-matching": {
                "post": _page(
                    "Purge the dead letters matching reason, source and since",
                    {**PAGE_ANSWERS, "400": _text("A bad filter (named).")},
                    requestBody=FORM,
                )
            },
            "/admin/ui/dlq/{id}": {
                "get": _page(
                    "One dead letter, for people: events, attempts, replay history",
                    {
                        "200": _text("HTML.", "text/html"),
                        "303": {"description": "Not signed in: to /admin/."},
                        "404": _text("No such dead letter, or no admin token is configured."),
                        "503": _text("Redis is unreachable."),
                    },
                    parameters=[PATH_ID],
                )
            },
            "/admin/ui/dlq/replay-all": {
                "post": _page(
                    "Replay every dead letter (queued as an RQ job)", PAGE_ANSWERS, requestBody=FORM
                )
            },
            "/admin/ui/dlq/purge-all": {
                "post": _page("Purge every dead letter", PAGE_ANSWERS, requestBody=FORM)
            },
            "/admin/ui/dlq/{id}/replay": {
                "post": _page(
                    "Replay one dead letter", PAGE_ANSWERS, parameters=[PATH_ID], requestBody=FORM
                )
            },
            "/admin/ui/dlq/{id}/purge": {
                "post": _page(
                    "Purge one dead letter", PAGE_ANSWERS, parameters=[PATH_ID], requestBody=FORM
                )
            },
        },
        "components": {
            "schemas": {
                "Receipt": {
                    "type": "object",
                    "required": ["accepted", "duplicates", "ignored", "unroutable"],
                    "properties": {
                        "accepted": {"type": "integer", "minimum": 0},
                        "duplicates": {"type": "integer", "minimum": 0},
                        "ignored": {"type": "integer", "minimum": 0},
                        "unroutable": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Of the accepted, how many name no conversation "
                            "yet: they wait as `unroutable` dead letters until a link is set.",
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "BRIDGE_ADMIN_TOKEN"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "cb_admin"},
            },
        },
    }
    _name_operations(doc["paths"])
    return doc
