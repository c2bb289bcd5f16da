"""The standard kind derives its HMAC key from a `whsec_` secret exactly as the reference
library (`standardwebhooks`, which `svix` wraps) does, so every request that library signs
verifies, and a request signed with any other key does not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from bridge.config import _source
from bridge.errors import SignatureError
from bridge.providers import standard
from bridge.providers.base import WebhookRequest

NOW = 1_795_000_000
BODY = '{"agent_id":"a","convo_id":"c","occurred_at":1794999990000,"set":{"title":"x"}}'


def signed_by_reference(secret: str, msg_id: str = "msg_1") -> WebhookRequest:
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(NOW, tz=UTC), BODY)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(NOW), "webhook-signature": signature}
    return WebhookRequest("POST", "https://b.example/webhooks/s", headers, BODY.encode(), NOW)


def source_with(secret: str):  # type: ignore[no-untyped-def]
    return _source("s", {"kind": "standard", "secret_env": "S"}, {"S": secret})


@pytest.mark.parametrize(
    "secret",
    [
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # padded base64 (the spec's example)
        "whsec_c2VjcmV0LWtleS0yMC1ieXRlcyE",  # its "=" dropped
        "whsec_MfKQ9r8GKYqr-TwjUPD8_ILPZIo2LaLaSw",  # URL-safe characters: the library skips them
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",  # a trailing newline from a secrets file
    ],
)
def test_what_the_reference_library_signs_verifies(secret: str) -> None:
    standard.verify(source_with(secret), signed_by_reference(secret), 300)


def test_a_key_the_reference_library_would_not_derive_is_refused() -> None:
    secret = "whsec_MfKQ9r8GKYqr-TwjUPD8_ILPZIo2LaLaSw"
    request = signed_by_reference(secret)
    with pytest.raises(SignatureError):
        standard.verify(source_with("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSX"), request, 300)
