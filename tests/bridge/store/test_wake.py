"""A conversation added to `due` wakes an idle worker when it is due now, or due later
(coalescing, a retry, a swept lease) but sooner than everything else there: idle workers
wait until the head they last saw is due, and the one woken learns the sooner time."""

import asyncio
import time

import httpx

from bridge.config import DeliverySettings
from bridge.intents import Intent
from bridge.store import Outcome, Store
from tests.bridge.store.test_store import Runner, routed
from tests.bridge.store.test_store import accept as store_accept
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


# the wakes of the delivery side: what a take or a settle makes due sooner, or leaves behind


def _convos(store: Runner, n: int) -> None:
    async def go(s: Store) -> None:
        for i in range(n):
            intent = Intent(T0, "a", f"w{i}", set={"title": "x"})
            await store_accept(s, routed(intent, f"w{i}"))

    store.run(go)


def test_a_full_take_with_more_due_hands_the_wake_on(redis_url, rclient):
    """A worker that took all it could leaves the rest due: another idle worker is woken
    (one BLPOP wakes one worker; the one that took may stay busy past when the rest is due).
    Before, it waited for that worker or for another's idle bound."""
    store = Runner(redis_url)
    _convos(store, 5)
    rclient.delete("cb:wake")
    taken = store.run(lambda s: s.take(2, lease_ms=5000, rate_limit=0))
    assert len(taken[0]) == 2
    assert rclient.llen("cb:wake") == 1


def test_a_probe_that_closes_the_circuit_wakes_the_workers(redis_url, rclient):
    """While a probe is out, other takes are told to wait out its lease; the probe's success
    closes the circuit and wakes a worker to take the rest at once (before, up to the idle
    bound)."""
    settings = DeliverySettings(
        coalesce_ms=0, circuit_window=2, circuit_failure_ratio=0.5, circuit_cooldown_s=0.1
    )
    store = Runner(redis_url)
    _convos(store, 4)

    async def go(s: Store) -> tuple[int | None, int]:
        work, _ = await s.take(2, lease_ms=30_000, rate_limit=0)
        for w in work:
            failed = Outcome("retry", attempt={"status": 503}, retry_in_ms=0, circuit="fail")
            await s.settle(w, failed, settings=settings)
        await asyncio.sleep(0.15)  # past the cooldown: the next take is the probe
        probe, _ = await s.take(10, lease_ms=30_000, rate_limit=0)
        assert len(probe) == 1
        _, wait_ms = await s.take(10, lease_ms=30_000, rate_limit=0)  # told to wait
        rclient.delete("cb:wake")
        ok = Outcome("ok", sent=probe[0].entries, circuit="ok")
        await s.settle(probe[0], ok, settings=settings)
        return wait_ms, rclient.llen("cb:wake")

    wait_ms, wakes = store.run(go)
    assert wait_ms is not None and wait_ms > 20_000  # the probe's lease
    assert wakes >= 1


def test_a_late_settle_that_brings_a_due_conversation_sooner_wakes_a_worker(redis_url, rclient):
    """A lease ran out and the conversation went back to `due` for later (the sweep's quiet
    time); the late holder's settle asks for a retry now: the conversation moves to now and
    a worker is woken (ZADD answered 0 for a moved member, so nobody was)."""
    store = Runner(redis_url)
    _convos(store, 1)
    [work], _ = store.run(lambda s: s.take(1, lease_ms=5000, rate_limit=0))
    ck = work.ck
    rclient.delete(f"cb:lease:{ck}")  # expired and swept: back in due, an hour from now
    rclient.zrem("cb:inflight", ck)
    rclient.zadd("cb:due", {ck: int(time.time() * 1000) + 3_600_000})
    rclient.delete("cb:wake")
    retry = Outcome("retry", attempt={"status": 503}, retry_in_ms=0)
    store.run(lambda s: s.settle(work, retry, settings=DeliverySettings(coalesce_ms=0)))
    assert float(rclient.zscore("cb:due", ck)) < time.time() * 1000 + 60_000
    assert rclient.llen("cb:wake") == 1


def test_wakes_nobody_takes_stop_at_64_without_writing(redis_url, rclient):
    """While every worker is busy nobody pops the wake list: it holds at most 64 wakes, and
    a wake that finds it full writes nothing (before, an LPUSH and an LTRIM per event)."""
    store = Runner(redis_url)
    rclient.delete("cb:wake")
    _convos(store, 70)  # each due now, into a queue no worker takes from: a wake each
    assert rclient.llen("cb:wake") == 64
    rclient.config_resetstat()
    extra = Intent(T0, "a", "w-extra", set={"title": "x"})
    store.run(lambda s: store_accept(s, routed(extra, "w-extra")))
    assert rclient.zscore("cb:due", "a/w-extra") is not None  # due now: it would wake
    stats = rclient.info("commandstats")
    assert "cmdstat_lpush" not in stats and "cmdstat_ltrim" not in stats
    assert rclient.llen("cb:wake") == 64
