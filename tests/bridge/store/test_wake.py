"""A conversation added to an empty `due` wakes an idle worker even when it is due later
(coalescing, a retry, a swept lease): workers that last found nothing wait for a wake,
and the one woken learns when the next conversation is due."""

import time

import httpx

from tests.conftest import SECRET
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000


def test_a_change_scheduled_for_later_into_an_empty_due_wakes_a_worker(ingest_url, rclient):
    later = int(time.time() * 1000) + 60_000
    rclient.hset("cb:hw:a/c1", "_t", later)  # PATCHed "just now": coalescing holds the next
    payload = {"agent_id": "a", "convo_id": "c1", "occurred_at": T0, "set": {"title": "later"}}
    body, headers = signed(SECRET, payload)
    assert httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers).is_success
    assert float(rclient.zscore("cb:due", "a/c1")) >= later
    assert rclient.llen("cb:wake") == 1


def test_a_change_scheduled_for_later_beside_other_due_work_wakes_nobody(ingest_url, rclient):
    rclient.zadd("cb:due", {"a/other": int(time.time() * 1000) + 60_000})
    rclient.hset("cb:hw:a/c1", "_t", int(time.time() * 1000) + 60_000)
    payload = {"agent_id": "a", "convo_id": "c1", "occurred_at": T0, "set": {"title": "later"}}
    body, headers = signed(SECRET, payload)
    assert httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers).is_success
    assert rclient.zscore("cb:due", "a/c1") is not None
    assert rclient.llen("cb:wake") == 0
