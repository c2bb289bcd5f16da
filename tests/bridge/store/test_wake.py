"""A conversation added to `due` wakes an idle worker when it is due now, or due later
(coalescing, a retry, a swept lease) but sooner than everything else there: idle workers
wait until the head they last saw is due, and the one woken learns the sooner time."""

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


def test_a_change_scheduled_sooner_than_all_other_due_work_wakes_a_worker(ingest_url, rclient):
    # before: only a change into an empty `due` woke anyone, and idle workers polled every
    # 0.1 s for as long as anything was due later (a retry in an hour: 10 takes a second)
    rclient.zadd("cb:due", {"a/other": int(time.time() * 1000) + 3_600_000})
    soon = int(time.time() * 1000) + 5_000
    rclient.hset("cb:hw:a/c1", "_t", soon)
    payload = {"agent_id": "a", "convo_id": "c1", "occurred_at": T0, "set": {"title": "soon"}}
    body, headers = signed(SECRET, payload)
    assert httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers).is_success
    assert soon <= float(rclient.zscore("cb:due", "a/c1")) < soon + 60_000
    assert rclient.llen("cb:wake") == 1


def test_a_change_scheduled_for_later_beside_sooner_due_work_wakes_nobody(ingest_url, rclient):
    rclient.zadd("cb:due", {"a/other": int(time.time() * 1000) + 60_000})
    rclient.hset("cb:hw:a/c1", "_t", int(time.time() * 1000) + 60_000)
    payload = {"agent_id": "a", "convo_id": "c1", "occurred_at": T0, "set": {"title": "later"}}
    body, headers = signed(SECRET, payload)
    assert httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers).is_success
    assert rclient.zscore("cb:due", "a/c1") is not None
    assert rclient.llen("cb:wake") == 0
