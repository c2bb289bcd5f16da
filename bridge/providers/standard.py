"""Standard Webhooks (standardwebhooks.com): the body is an intent, or an array of them.

Signed bytes `{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 keyed with the base64
part of a `whsec_` secret (its dropped `=` padding restored, as the reference library does);
the header may carry several space-separated `v1,<base64>`. Senders hosted on Svix send the
same headers named `svix-id`, `svix-timestamp`, `svix-signature`: either set is accepted.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from bridge.errors import PayloadError, SignatureError
from bridge.intents import parse_intent
from bridge.providers.base import (
    NoOptions,
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
    options_reader,
    require_header,
    same,
    signed_epoch,
)

Options = NoOptions  # no keys of its own
options = options_reader(Options)
accepts = json_only
parse = json_body
challenge = no_challenge  # its senders have no set-up handshake
acknowledge = default_answer


def signing_key(secret: str) -> bytes:
    """The HMAC key, derived as the reference library derives it: the part after `whsec_`,
    base64-decoded leniently (characters outside the alphabet skipped, dropped padding
    restored), so whatever it signs verifies here."""
    encoded = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded + "==")
    except (binascii.Error, ValueError):
        key = b""
    # The reference library refuses such a secret outright; the bridge uses its bytes as-is
    # (Standard Webhooks' "raw" secrets) rather than fail every request.
    return key or encoded.encode()


def header_set(request: WebhookRequest) -> str:
    """`webhook` (Standard Webhooks' names) or `svix` (a sender hosted on Svix)."""
    if request.header("webhook-signature") is None and request.header("svix-signature"):
        return "svix"
    return "webhook"


def verify(source: SourceSettings, request: WebhookRequest, tolerance_s: int) -> None:
    prefix = header_set(request)
    msg_id = require_header(request, f"{prefix}-id")
    stamp, sent_at = signed_epoch(request, f"{prefix}-timestamp", milliseconds=False)
    given = require_header(request, f"{prefix}-signature")
    check_window(sent_at, request, tolerance_s, f"{prefix}-timestamp")
    signed = f"{msg_id}.{stamp}.".encode() + request.body
    expected = base64.b64encode(mac(signing_key(source.secret), signed)).decode()
    matched = False
    for part in given.split():
        scheme, _, value = part.partition(",")
        if scheme == "v1" and same(expected, value):
            matched = True  # keep looping: the time taken does not tell which one matched
    if not matched:
        raise SignatureError(f"{prefix}-signature: no v1 signature matches")


def normalize(source: SourceSettings, request: WebhookRequest, payload: Any) -> list[SourceEvent]:
    msg_id = request.header(f"{header_set(request)}-id") or ""
    if isinstance(payload, list):
        if not payload:
            raise PayloadError("expected an intent or a non-empty array of intents")
        return indexed(
            list(enumerate(payload)),
            lambda p: SourceEvent(f"{msg_id}:{p[0]}", parse_intent(p[1]), p[1]),
        )
    return [SourceEvent(msg_id, parse_intent(payload), payload)]
