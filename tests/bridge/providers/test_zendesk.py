"""Zendesk's "Test webhook" request, made while a webhook is created, is signed with
Zendesk's published test secret: a correctly set bridge refuses it, and says why."""

from __future__ import annotations

import time

import pytest

from bridge.config import _source
from bridge.errors import SignatureError
from bridge.providers import zendesk
from bridge.providers.base import WebhookRequest
from tests.signing import sign_as


def test_zendesks_test_webhook_request_is_refused_saying_why() -> None:
    now = time.time()
    body = b'{"type":"zen:event-type:ticket.created"}'
    headers = sign_as("zendesk", zendesk.TEST_SECRET, body, "", now=now)
    source = _source("z", {"kind": "zendesk", "secret_env": "S"}, {"S": "the-real-secret"})
    request = WebhookRequest("POST", "https://b.example/webhooks/z", headers, body, now)
    with pytest.raises(SignatureError, match="Zendesk's test secret"):
        zendesk.verify(source, request, 300)
    other = sign_as("zendesk", "someone-else", body, "", now=now)
    forged = WebhookRequest("POST", "https://b.example/webhooks/z", other, body, now)
    with pytest.raises(SignatureError, match="does not match"):
        zendesk.verify(source, forged, 300)
