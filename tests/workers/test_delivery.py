"""Webhook in, PATCH out: ingest, Redis and workers against the sandbox over sockets."""

import time

import httpx

from tests.conftest import SECRET, convo, wait_until
from tests.signing import signed

T0 = int(time.time() * 1000) - 60_000


def send(ingest_url, payload, **kw):
    body, headers = signed(SECRET, payload, **kw)
    answer = httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    return answer.json()


def intent(convo_id="c1", at=T0, **parts):
    return {"agent_id": "a1", "convo_id": convo_id, "occurred_at": at, **parts}


def sandbox_log(url):
    return httpx.get(f"{url}/_sandbox/log").json()


def test_signed_webhook_becomes_one_patch_with_bearer_token(ingest_url, sandbox_url, start_worker):
    start_worker()
    send(
        ingest_url,
        intent(
            set={"title": "Refund", "userEmail": "a@b.c"},
            tags={"add": ["vip"]},
            handoff={"event": "requested", "team_key": "billing"},
        ),
    )
    data = wait_until(lambda: (c := convo(sandbox_url, "a1", "c1")) and "state" in c and c)
    assert data["title"] == "Refund" and data["userEmail"] == "a@b.c"
    assert data["state"] == "requested_chat" and data["tags"] == ["vip"]
    assert data["handoffHistory"] == [{"requestedAt": T0 // 1000, "requestedTeamKey": "billing"}]
    [patch] = [p for p in sandbox_log(sandbox_url) if p["status"] == 200]
    assert set(patch["body"]) == {"conversation"}


def test_worker_sends_the_configured_bearer_token(make_settings, sandbox_url, start_worker):
    from bridge.app import build_app
    from bridge.local import sandbox as sb
    from tests.servers import serve_app_in_thread

    with serve_app_in_thread(sb.build_app(auto_create=True, token="s3cret")) as target:
        settings = make_settings(
            env={"CONVOCORE_BASE_URL": target, "CONVOCORE_API_TOKEN": "s3cret"}
        )
        with serve_app_in_thread(build_app(settings)) as ingest:
            start_worker(settings)
            send(ingest, intent(set={"title": "x"}))
            wait_until(lambda: convo_with_token(target))


def convo_with_token(target):
    answer = httpx.get(f"{target}/agents/a1/convos/c1", headers={"authorization": "Bearer s3cret"})
    return answer.status_code == 200 and answer.json()["data"].get("title") == "x"


def test_older_event_arriving_later_does_not_overwrite(ingest_url, sandbox_url, start_worker):
    send(ingest_url, intent(at=T0 + 10, set={"title": "new"}))
    send(ingest_url, intent(at=T0, set={"title": "old", "userName": "Ada"}))
    start_worker()
    wait_until(lambda: (convo(sandbox_url, "a1", "c1") or {}).get("userName") == "Ada")
    assert convo(sandbox_url, "a1", "c1")["title"] == "new"


def test_retryable_failures_are_retried_until_applied(ingest_url, sandbox_url, start_worker):
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": [503, 429, 502]})
    start_worker()
    send(ingest_url, intent(set={"title": "eventually"}))
    wait_until(lambda: (convo(sandbox_url, "a1", "c1") or {}).get("title") == "eventually")
    statuses = [p["status"] for p in sandbox_log(sandbox_url)]
    assert statuses == [503, 429, 502, 200]


def test_permanent_rejection_is_dead_lettered_with_its_answer(make_settings, start_worker):
    from bridge.app import build_app
    from bridge.local import sandbox as sb
    from tests.servers import serve_app_in_thread

    with serve_app_in_thread(sb.build_app(auto_create=False)) as target:
        settings = make_settings(env={"CONVOCORE_BASE_URL": target})
        with serve_app_in_thread(build_app(settings)) as ingest:
            start_worker(settings)
            send(ingest, intent(set={"title": "x"}), msg_id="msg_dead")
            headers = {"authorization": "Bearer admin-token"}
            letters = wait_until(lambda: httpx.get(f"{ingest}/admin/dlq", headers=headers).json())
            assert letters[0]["reason"] == "rejected_404"
            assert letters[0]["agent_id"] == "a1" and letters[0]["convo_id"] == "c1"
            shown = httpx.get(f"{ingest}/admin/dlq/{letters[0]['id']}", headers=headers).json()
            assert shown["events"][0]["event_id"] == "msg_dead"
            assert shown["attempt_log"][0]["status"] == 404
            assert "not found" in shown["attempt_log"][0]["answer"].lower()
            # create the conversation, replay: it applies
            httpx.put(f"{target}/_sandbox/agents/a1/convos/c1")
            replay = httpx.post(f"{ingest}/admin/dlq/{letters[0]['id']}/replay", headers=headers)
            assert replay.status_code == 200
            wait_until(lambda: convo_title(target) == "x")
            assert httpx.get(f"{ingest}/admin/dlq", headers=headers).json() == []


def convo_title(target):
    answer = httpx.get(f"{target}/agents/a1/convos/c1")
    return answer.json()["data"].get("title") if answer.status_code == 200 else None


def test_updates_queued_behind_a_slow_patch_go_out_as_one(
    ingest_url, sandbox_url, start_worker, make_settings
):
    """The first PATCH is held 4 s (well within the request deadline, on a loaded machine
    too); the 29 updates sent meanwhile, 8 at a time, go out together in the second."""
    from concurrent.futures import ThreadPoolExecutor

    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"latency_ms": 4000})
    start_worker(make_settings("request_timeout_s = 10\nlease_s = 12\n"))
    send(ingest_url, intent(at=T0, set={"messagesNum": 0}))
    wait_until(lambda: httpx.get(f"{sandbox_url}/_sandbox/stats").json()["max_inflight"] == 1)
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:  # all of these arrive while the first PATCH is in flight
        list(
            pool.map(
                lambda i: send(
                    ingest_url, intent(at=T0 + i, set={"messagesNum": i}, tags={"add": [f"t{i}"]})
                ),
                range(1, 30),
            )
        )
    assert time.monotonic() - started < 3.5, "the sends did not fit in the slow PATCH"
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"latency_ms": 0})
    data = wait_until(
        lambda: (c := convo(sandbox_url, "a1", "c1")) and c.get("messagesNum") == 29 and c,
        timeout_s=20,
    )
    stats = httpx.get(f"{sandbox_url}/_sandbox/stats").json()
    assert stats["overlaps"] == 0
    assert stats["patches"] == 2
    assert data["tags"] == [f"t{i}" for i in range(1, 30)]


def test_a_trickling_target_frees_its_slots_within_the_request_deadline(
    make_settings, ingest_url, start_worker
):
    """Two conversations whose target answers one byte every 0.5 s hold both slots of a
    worker with concurrency 2; each PATCH ends at request_timeout_s (1 s) and the other due
    conversations are delivered meanwhile, not after the trickle."""
    from tests.servers import TricklingTarget

    with TricklingTarget(every_s=0.5, limit_s=12) as target:
        settings = make_settings(
            "request_timeout_s = 1\nconcurrency = 2\nin_doubt_quiet_s = 2\n",
            env={"CONVOCORE_BASE_URL": target.url},
        )
        start_worker(settings)
        for slow in ("slow1", "slow2"):
            send(ingest_url, intent(convo_id=slow, set={"title": "x"}))
        wait_until(lambda: len(target.paths()) >= 2, timeout_s=10)
        started = time.monotonic()
        for i in range(4):
            send(ingest_url, intent(convo_id=f"fast{i}", set={"title": "y"}))
        wait_until(
            lambda: {f"/agents/a1/convos/fast{i}" for i in range(4)} <= set(target.paths()),
            timeout_s=10,
        )
        assert time.monotonic() - started < 8  # the trickle alone would hold them 12 s
        slow = [r for r in list(target.requests) if "slow" in r["path"] and r["ended"]]
        assert slow and all(r["complete"] is False for r in slow)
        assert all(r["ended"] - r["at"] < 3.5 for r in slow)  # 1 s deadline, wide margin
