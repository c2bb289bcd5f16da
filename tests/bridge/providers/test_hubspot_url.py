"""HubSpot signs the URL it called: public_url, or the request URL (proxy headers only when
trust_proxy is set)."""

import pytest

from bridge.config import _source
from bridge.errors import SignatureError
from bridge.providers import hubspot
from bridge.providers.base import WebhookRequest
from tests.signing import sign_as

SECRET = "hs-secret"
BODY = b'[{"eventId":1,"subscriptionId":2,"objectId":3,"occurredAt":1794999960000}]'


def request(url, headers):
    return WebhookRequest(
        "POST",
        url,
        {k.lower(): v for k, v in headers.items()},
        BODY,
        received_at=__import__("time").time(),
    )


def source(**options):
    return _source("hs", {"kind": "hubspot", "secret_env": "S", **options}, {"S": SECRET})


def test_public_url_is_what_is_signed_behind_a_proxy():
    public = "https://bridge.example.com/webhooks/hs"
    headers = sign_as("hubspot", SECRET, BODY, public + "?portal=1")
    hubspot.verify(
        source(public_url=public),
        request("http://10.0.0.5:8080/webhooks/hs?portal=1", headers),
        300,
    )


def test_forwarded_headers_are_ignored_unless_trusted():
    public = "https://bridge.example.com/webhooks/hs"
    headers = sign_as("hubspot", SECRET, BODY, public)
    headers |= {"x-forwarded-proto": "https", "x-forwarded-host": "bridge.example.com"}
    seen = "http://10.0.0.5:8080/webhooks/hs"
    with pytest.raises(SignatureError):
        hubspot.verify(source(), request(seen, headers), 300)
    hubspot.verify(source(trust_proxy=True), request(seen, headers), 300)


def test_a_signature_for_another_url_is_refused():
    headers = sign_as("hubspot", SECRET, BODY, "https://evil.example.com/webhooks/hs")
    with pytest.raises(SignatureError):
        hubspot.verify(source(), request("https://bridge.example.com/webhooks/hs", headers), 300)
