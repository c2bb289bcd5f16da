"""A signed time that is not a time is a 401, never a 500 (issue 14): huge, negative,
non-ASCII digits ('²'.isdigit() is true, int() takes Arabic-Indic digits), signs, spaces, control
characters, through the real server for every kind that signs a time; nothing is queued."""

from __future__ import annotations

import httpx
import pytest
import redis

from bridge.errors import SignatureError
from bridge.providers import provider
from bridge.providers.base import WebhookRequest
from tests.fuzzing import sign, vector_cases, webhook_url
from tests.servers import keys_but_the_log

STAMP = {
    "standard": "webhook-timestamp",
    "hubspot": "x-hubspot-request-timestamp",
    "front": "x-front-request-timestamp",
    "zendesk": "x-zendesk-webhook-signature-timestamp",
}
HOSTILE = [
    "9" * 400,
    "-1",
    "+1795000000",
    "1795000000.5",
    "1_795_000_000",
    "\u00b2",
    "\u0661\u0667\u0669\u0665",
    "1795000000\u00b2",
    "\uff11\uff17\uff19\uff15",
    "9999-99-99T99:99:99Z",
    "99999-01-01T00:00:00+00:00",
    "2026-11-18T11:06:20",  # no zone
    "NaN",
]
UNSENDABLE = ["1795000000\x00", "17950\x0700000", "\x7f"]  # HTTP clients refuse these


@pytest.mark.parametrize("source", list(STAMP), indirect=True)
def test_a_signed_time_that_is_not_a_time_is_401_and_queues_nothing(
    source: tuple[str, str, str], redis_url: str
) -> None:
    kind, url, secret = source
    body = str(vector_cases(kind)[0][0]["body"]).encode()
    target = webhook_url(url, kind)
    r = redis.Redis.from_url(redis_url)
    try:
        for stamp in HOSTILE:
            headers = {**sign(kind, secret, body, target), STAMP[kind]: stamp}
            encoded = {k: v.encode("utf-8") for k, v in headers.items()}
            answer = httpx.post(target, content=body, headers=encoded)
            assert answer.status_code == 401, (kind, stamp, answer.status_code, answer.text)
            assert answer.json()["error"] == "invalid_signature"
        assert keys_but_the_log(r, "cb:*") == []
    finally:
        r.close()


@pytest.mark.parametrize("kind", list(STAMP))
@pytest.mark.parametrize("stamp", UNSENDABLE + HOSTILE)
def test_verify_raises_a_signature_error_for_any_hostile_time(kind: str, stamp: str) -> None:
    from tests.bridge.providers.test_vectors import source_for

    case = vector_cases(kind)[0][0]
    target = webhook_url("https://bridge.example.com", kind)
    headers = {**sign(kind, case["secret"], case["body"].encode(), target), STAMP[kind]: stamp}
    request = WebhookRequest("POST", target, headers, case["body"].encode(), 1_795_000_000.0)
    with pytest.raises(SignatureError):
        provider(kind).verify(source_for(kind, case), request, 300)
