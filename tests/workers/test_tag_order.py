"""Tags in occurred_at order, whatever the arrival order, across whole lists (set.tags) and
single operations (tags.add / tags.remove)."""

import time

import httpx

from tests.conftest import SECRET, convo, wait_until
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000


def send(url, at, **parts):
    payload = {"agent_id": "a", "convo_id": "c", "occurred_at": at, **parts}
    body, headers = signed(SECRET, payload)
    assert httpx.post(f"{url}/webhooks/demo", content=body, headers=headers).status_code == 202


def patches(url):
    return len(httpx.get(f"{url}/_sandbox/log").json())


def test_an_add_older_than_an_applied_whole_list_is_gone(ingest_url, sandbox_url, start_worker):
    start_worker()
    send(ingest_url, T0 + 2000, set={"tags": ["a"]})
    wait_until(lambda: (convo(sandbox_url, "a", "c") or {}).get("tags") == ["a"])
    send(ingest_url, T0 + 1000, tags={"add": ["x"]})
    send(ingest_url, T0 + 3000, set={"title": "later"})  # something newer still goes out
    wait_until(lambda: (convo(sandbox_url, "a", "c") or {}).get("title") == "later")
    time.sleep(0.3)
    assert convo(sandbox_url, "a", "c")["tags"] == ["a"]


def test_an_add_newer_than_a_late_whole_list_stays_on_top_of_it(
    ingest_url, sandbox_url, start_worker
):
    start_worker()
    send(ingest_url, T0 + 2000, tags={"add": ["x"]})
    wait_until(lambda: (convo(sandbox_url, "a", "c") or {}).get("tags") == ["x"])
    send(ingest_url, T0 + 1000, set={"tags": ["a"]})
    wait_until(lambda: patches(sandbox_url) == 2)
    time.sleep(0.3)
    assert convo(sandbox_url, "a", "c")["tags"] == ["a", "x"]


def test_a_remove_newer_than_a_late_whole_list_removes_from_it(
    ingest_url, sandbox_url, start_worker
):
    start_worker()
    send(ingest_url, T0 + 2000, tags={"remove": ["b"]})
    send(ingest_url, T0 + 2500, tags={"add": ["y"]})
    wait_until(lambda: (convo(sandbox_url, "a", "c") or {}).get("tags") == ["y"])
    send(ingest_url, T0 + 1000, set={"tags": ["a", "b"]})
    wait_until(lambda: patches(sandbox_url) == 2)
    time.sleep(0.3)
    assert convo(sandbox_url, "a", "c")["tags"] == ["a", "y"]


def test_a_tag_event_that_changes_nothing_does_not_renew_the_cached_arrays(
    ingest_url, sandbox_url, start_worker, rclient
):
    """The cached arrays are trusted for array_cache_s from the answer that carried them. A
    tag add the cache already holds sends no PATCH, so nothing new is learnt: before, its
    settle wrote the cache back with a fresh expiry, and repeated such events kept a stale
    copy (a tag removed in Convocore's own UI) alive for ever."""
    start_worker()
    send(ingest_url, T0, set={"tags": ["vip"]})
    wait_until(lambda: rclient.exists("cb:arr:a/c"))  # from the PATCH's answer
    rclient.pexpire("cb:arr:a/c", 40_000)
    send(ingest_url, T0 + 1000, tags={"add": ["vip"]})
    wait_until(lambda: not rclient.exists("cb:p:a/c") and rclient.zcard("cb:inflight") == 0)
    assert patches(sandbox_url) == 1  # nothing to send
    assert 0 < rclient.pttl("cb:arr:a/c") <= 40_000
