"""Fuzzing every sender kind through the real ingest server and Redis: hostile bodies with
valid signatures get a documented 4xx (or 202), never a 5xx, and queue nothing when refused;
a batch with one bad element is refused whole, naming the element."""

from __future__ import annotations

import json

import httpx
import pytest
import redis

from tests.fuzzing import (
    KINDS,
    PRESETS,
    accepted_status,
    fuzz,
    sign,
    still_up,
    vector_cases,
    webhook_url,
)
from tests.servers import keys_but_the_log

EXAMPLES = 120  # per kind here; benchmarks/fuzz_soak.py runs 10,000+


@pytest.mark.parametrize("source", KINDS + PRESETS, indirect=True)
def test_hostile_bodies_get_documented_answers_and_queue_nothing(
    source: tuple[str, str, str], redis_url: str
) -> None:
    kind, url, secret = source
    seen = fuzz(kind, url, secret, redis_url, EXAMPLES)
    print(kind, dict(seen))
    assert still_up(url)
    assert seen[400] > 0 and sum(seen.values()) >= EXAMPLES
    if kind != "generic":  # generic's map makes most mutations a 400 or ignored
        assert seen[accepted_status(kind)] > 0


def post_batch(kind: str, url: str, secret: str, batch: list[object]) -> httpx.Response:
    body = json.dumps(batch).encode()
    target = webhook_url(url, kind)
    return httpx.post(target, content=body, headers=sign(kind, secret, body, target))


@pytest.mark.parametrize("source", ["standard", "hubspot"], indirect=True)
def test_a_batch_with_one_bad_element_is_refused_whole(
    source: tuple[str, str, str], redis_url: str
) -> None:
    kind, url, secret = source
    cases, _ = vector_cases(kind)
    good = json.loads(cases[0]["body"])
    items = good if isinstance(good, list) else [good]
    bad = dict(items[0])
    bad["occurred_at" if kind == "standard" else "occurredAt"] = "not a time"
    batch = [*items, dict(items[0]), bad]
    r = redis.Redis.from_url(redis_url)
    before = len(keys_but_the_log(r))
    answer = post_batch(kind, url, secret, batch)
    assert answer.status_code == 400, answer.text
    assert f"[{len(batch) - 1}]" in answer.json()["detail"]
    assert len(keys_but_the_log(r)) == before
    r.close()
