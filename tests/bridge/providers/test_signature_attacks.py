"""Signature attacks on every sender kind: no signature, a truncated or altered one, one
made for another body, a replay outside the time window, a weaker scheme than the sender
uses. Each is 401, names no secret, and queues nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import httpx
import pytest
import redis

from tests.fuzzing import KINDS, sign, vector_cases, webhook_url
from tests.servers import keys_but_the_log

SIGNATURE = {
    "standard": "webhook-signature",
    "zendesk": "x-zendesk-webhook-signature",
    "intercom": "x-hub-signature",
    "hubspot": "x-hubspot-signature-v3",
    "front": "x-front-signature",
    "freshdesk": "x-bridge-secret",
    "helpscout": "x-helpscout-signature",
    "generic": "x-signature",
}
TIMED = ["standard", "zendesk", "hubspot", "front"]  # the kinds whose signature covers a time

Attack = Callable[[dict[str, str], str], None]


def truncate(h: dict[str, str], name: str) -> None:
    h[name] = h[name][:-4]


def flip(h: dict[str, str], name: str) -> None:
    v = h[name]
    h[name] = v[:-3] + ("A" if v[-3] != "A" else "B") + v[-2:]


def drop(h: dict[str, str], name: str) -> None:
    del h[name]


def empty(h: dict[str, str], name: str) -> None:
    h[name] = ""


ATTACKS: dict[str, Attack] = {
    "truncated": truncate,
    "altered": flip,
    "missing": drop,
    "empty": empty,
}


def send(kind: str, url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(webhook_url(url, kind), content=body, headers=headers)


def valid(kind: str, url: str, secret: str, body: bytes, **kw: float) -> dict[str, str]:
    return sign(kind, secret, body, webhook_url(url, kind), **kw)


def refused(
    kind: str, url: str, secret: str, body: bytes, headers: dict[str, str], redis_url: str
) -> None:
    r = redis.Redis.from_url(redis_url)
    try:
        before = len(keys_but_the_log(r))
        answer = send(kind, url, body, headers)
        assert answer.status_code == 401, (kind, answer.status_code, answer.text)
        assert secret not in answer.text
        assert len(keys_but_the_log(r)) == before
    finally:
        r.close()


def body_of(kind: str) -> bytes:
    cases, _ = vector_cases(kind)
    return str(cases[0]["body"]).encode()


@pytest.mark.parametrize("source", KINDS, indirect=True)
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_broken_signature_is_401(
    source: tuple[str, str, str], attack: str, redis_url: str
) -> None:
    kind, url, secret = source
    body = body_of(kind)
    assert send(kind, url, body, valid(kind, url, secret, body)).status_code == 202  # baseline
    headers = valid(kind, url, secret, body)
    ATTACKS[attack](headers, SIGNATURE[kind])
    refused(kind, url, secret, body, headers, redis_url)


# Freshdesk sends a shared secret in a header, not a signature of the body:
# a request with the right secret and any body is accepted, so it is not in this test.
@pytest.mark.parametrize("source", [k for k in KINDS if k != "freshdesk"], indirect=True)
def test_a_signature_for_another_body_is_401(source: tuple[str, str, str], redis_url: str) -> None:
    kind, url, secret = source
    body = body_of(kind)
    other = json.dumps(
        {**json.loads(body), "extra": 1} if body.startswith(b"{") else [*json.loads(body), {}]
    ).encode()
    refused(kind, url, secret, other, valid(kind, url, secret, body), redis_url)


@pytest.mark.parametrize("source", TIMED, indirect=True)
def test_a_replay_outside_the_time_window_is_401(
    source: tuple[str, str, str], redis_url: str
) -> None:
    kind, url, secret = source
    body = body_of(kind)
    for skew in (-3600, +3600):
        refused(
            kind,
            url,
            secret,
            body,
            valid(kind, url, secret, body, now=time.time() + skew),
            redis_url,
        )


def weaker(kind: str, secret: str, body: bytes) -> tuple[str, str]:
    """A signature made with a different hash than the sender uses, in the same header."""
    key = secret.encode()
    if kind == "intercom":  # sha1 expected
        return "x-hub-signature", "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    if kind == "helpscout":  # sha1 expected
        return "x-helpscout-signature", base64.b64encode(
            hmac.new(key, body, hashlib.sha256).digest()
        ).decode()
    if kind == "generic":  # sha256 configured
        return "x-signature", "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()
    return "x-zendesk-webhook-signature", base64.b64encode(
        hmac.new(key, body, hashlib.sha1).digest()
    ).decode()


@pytest.mark.parametrize("source", ["intercom", "helpscout", "generic", "zendesk"], indirect=True)
def test_a_signature_with_another_hash_is_401(source: tuple[str, str, str], redis_url: str) -> None:
    kind, url, secret = source
    body = body_of(kind)
    headers = valid(kind, url, secret, body)
    name, value = weaker(kind, secret, body)
    headers[name] = value
    refused(kind, url, secret, body, headers, redis_url)
