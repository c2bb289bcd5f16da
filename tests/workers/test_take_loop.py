"""The worker's take loop asks Redis for work only when some may be due: after a take that
got less than it asked for, with nothing more due now, it waits for a wake (whatever becomes
due pushes one) instead of taking again at once, which would cost a script call per PATCH."""

import time

import httpx
import pytest

from bridge.store.client import Store
from tests.conftest import SECRET, convo, wait_until
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000


@pytest.fixture
def calls(monkeypatch):
    """Every take (with how many it got and when the next is due) and every wait, in order."""
    seen: list[tuple[str, int, int | None]] = []
    take, wait = Store.take, Store.wait_for_work

    async def counted_take(self, n, **kw):
        work, next_due = await take(self, n, **kw)
        seen.append(("take", len(work), next_due))
        return work, next_due

    async def counted_wait(self, conn, timeout_s):
        seen.append(("wait", 0, None))
        await wait(self, conn, timeout_s)

    monkeypatch.setattr(Store, "take", counted_take)
    monkeypatch.setattr(Store, "wait_for_work", counted_wait)
    return seen


def test_after_a_partial_take_with_nothing_else_due_the_worker_waits_for_a_wake(
    calls, start_worker, ingest_url, sandbox_url
):
    start_worker()
    for i in range(3):
        payload = {"agent_id": "a", "convo_id": f"c{i}", "occurred_at": T0, "set": {"title": "t"}}
        body, headers = signed(SECRET, payload)
        assert httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers).is_success
        wait_until(lambda i=i: (convo(sandbox_url, "a", f"c{i}") or {}).get("title") == "t")
    seen = list(calls)
    partial = [i for i, (kind, got, nxt) in enumerate(seen) if kind == "take" and got and nxt != 0]
    assert partial, seen
    assert all(seen[i + 1][0] == "wait" for i in partial if i + 1 < len(seen)), seen


def test_an_idle_worker_asks_redis_for_work_only_every_idle_wait(calls, start_worker) -> None:
    start_worker()
    time.sleep(0.5)
    before = sum(kind == "take" for kind, _, _ in calls)
    time.sleep(3.0)
    takes = sum(kind == "take" for kind, _, _ in calls) - before
    # IDLE_WAIT_S = 5: at most one bound ends within 3 s (it took 25 in 2.5 s while polling
    # every 0.1 s, then 3 while waiting 1 s)
    assert takes <= 1, calls
    assert calls and calls[-1][0] == "wait", calls  # waiting, not spinning


def test_an_idle_worker_waits_until_the_next_conversation_is_due(
    calls, start_worker, ingest_url, rclient
) -> None:
    """Something due in 2 s: the worker waits for it (no take every 0.1 s meanwhile), then
    takes it when due."""
    start_worker()
    time.sleep(0.5)
    soon = int(time.time() * 1000) + 2_000
    rclient.hset("cb:hw:a/c1", "_t", soon)  # PATCHed "just now": coalescing holds the next
    payload = {"agent_id": "a", "convo_id": "c1", "occurred_at": T0, "set": {"title": "t"}}
    body, headers = signed(SECRET, payload)
    before = len(calls)
    assert httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers).is_success
    wait_until(lambda: rclient.zscore("cb:due", "a/c1") is None, timeout_s=8)
    taken_at = time.time() * 1000
    assert soon <= taken_at < soon + 3_000, taken_at - soon  # not the 5 s idle bound
    takes = [c for c in calls[before:] if c[0] == "take"]
    assert len(takes) <= 4, takes  # woken, found it due in ~2 s, waited for it
