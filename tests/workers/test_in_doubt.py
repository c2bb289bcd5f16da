"""In-doubt writes: a PATCH whose fate is unknown may still be
applied by the target later; the newest values must still be what the conversation ends with."""

import time

import httpx

from tests.conftest import SECRET, convo, wait_until
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000


def send(url, payload):
    body, headers = signed(SECRET, payload)
    assert httpx.post(f"{url}/webhooks/demo", content=body, headers=headers).status_code == 202


def sandbox_log(url):
    return httpx.get(f"{url}/_sandbox/log").json()


def test_a_timed_out_patch_applied_late_is_overtaken_by_the_newest_value(
    make_settings, ingest_url, sandbox_url, start_worker
):
    # the target holds the first PATCH 3 s and then applies it; the client gives up after 1 s
    settings = make_settings("request_timeout_s = 1\nin_doubt_quiet_s = 3\n")
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": [{"hold_s": 3}]})
    start_worker(settings)
    send(ingest_url, {"agent_id": "a", "convo_id": "c", "occurred_at": T0, "set": {"title": "v1"}})
    wait_until(lambda: httpx.get(f"{sandbox_url}/_sandbox/stats").json()["max_inflight"] == 1)
    time.sleep(1.3)  # the first PATCH has timed out at the bridge; the target still holds it
    send(
        ingest_url,
        {"agent_id": "a", "convo_id": "c", "occurred_at": T0 + 1, "set": {"title": "v2"}},
    )
    wait_until(lambda: any("held_s" in p for p in sandbox_log(sandbox_url)), timeout_s=15)
    wait_until(lambda: (convo(sandbox_url, "a", "c") or {}).get("title") == "v2", timeout_s=10)
    time.sleep(1.0)
    log = sandbox_log(sandbox_url)
    assert convo(sandbox_url, "a", "c")["title"] == "v2"
    [held] = [p for p in log if "held_s" in p]
    assert held["body"]["conversation"]["title"] == "v1"
    last = max(log, key=lambda p: p["received_at"])
    assert last["body"]["conversation"]["title"] == "v2"
    assert last["received_at"] >= held["finished_at"]  # sent after the held one landed


def test_a_tag_removed_after_an_in_doubt_add_is_gone_once_the_add_lands(
    make_settings, ingest_url, sandbox_url, start_worker
):
    settings = make_settings("request_timeout_s = 1\nin_doubt_quiet_s = 3\n")
    start_worker(settings)
    send(ingest_url, {"agent_id": "a", "convo_id": "c", "occurred_at": T0, "tags": {"add": ["k"]}})
    wait_until(lambda: (convo(sandbox_url, "a", "c") or {}).get("tags") == ["k"])  # arrays cached
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": [{"hold_s": 3}]})
    send(ingest_url, {"agent_id": "a", "convo_id": "c", "occurred_at": T0 + 1,
                      "tags": {"add": ["x"]}})  # fmt: skip
    wait_until(lambda: httpx.get(f"{sandbox_url}/_sandbox/stats").json()["held"] == 1)
    time.sleep(1.3)  # timed out at the bridge, still held by the target
    send(ingest_url, {"agent_id": "a", "convo_id": "c", "occurred_at": T0 + 2,
                      "tags": {"remove": ["x"]}})  # fmt: skip
    wait_until(lambda: any("held_s" in p for p in sandbox_log(sandbox_url)), timeout_s=10)
    wait_until(lambda: convo(sandbox_url, "a", "c")["tags"] == ["k"], timeout_s=8)
    time.sleep(1.0)
    assert convo(sandbox_url, "a", "c")["tags"] == ["k"]


def test_a_patch_that_lands_after_its_lease_was_lost_is_followed_by_the_newest_values(
    make_settings, ingest_url, sandbox_url, start_worker, rclient
):
    settings = make_settings("in_doubt_quiet_s = 0\n")
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": [{"hold_s": 1.8}]})
    start_worker(settings)
    send(ingest_url, {"agent_id": "a", "convo_id": "c", "occurred_at": T0, "set": {"title": "v1"}})
    wait_until(lambda: httpx.get(f"{sandbox_url}/_sandbox/stats").json()["max_inflight"] == 1)
    # the lease runs out while the target holds that PATCH (as a paused worker's would), the
    # conversation is taken again and a newer value goes out and lands first
    rclient.delete("cb:lease:a/c")
    rclient.zrem("cb:inflight", "a/c")
    rclient.zadd("cb:due", {"a/c": 0})
    send(ingest_url, {"agent_id": "a", "convo_id": "c", "occurred_at": T0 + 1,
                      "set": {"title": "v2"}})  # fmt: skip
    wait_until(lambda: any("held_s" in p for p in sandbox_log(sandbox_url)), timeout_s=10)
    # the held v1 landed last; its worker sees its PATCH ended without the lease: re-send
    wait_until(lambda: convo(sandbox_url, "a", "c")["title"] == "v2", timeout_s=8)
    time.sleep(1.0)
    titles = [p["body"]["conversation"]["title"] for p in sandbox_log(sandbox_url)]
    assert titles[-1] == "v2" and "v1" in titles
    assert convo(sandbox_url, "a", "c")["title"] == "v2"
