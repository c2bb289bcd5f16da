"""Every PATCH is an event-log entry (conversation, body sent, status, answer, duration,
attempt) linked to the webhook events it carried: from an event to its PATCHes."""

import httpx
import orjson

from tests.conftest import SECRET, wait_until
from tests.signing import signed

T0 = 1_764_000_000_000
ADMIN = {"Authorization": "Bearer admin-token"}


def send(url, payload, **kw):
    body, headers = signed(SECRET, payload, **kw)
    assert httpx.post(f"{url}/webhooks/demo", content=body, headers=headers).status_code == 202


def intent(title, convo="c1"):
    return {
        "type": "conversation.update",
        "agent_id": "a1",
        "convo_id": convo,
        "occurred_at": T0,
        "set": {"title": title},
    }


def patches(url, **params):
    answer = httpx.get(f"{url}/admin/events", params={"kind": "patch", **params}, headers=ADMIN)
    return answer.json()["events"]


def test_each_attempt_is_logged_and_found_from_its_event(ingest_url, sandbox_url, start_worker):
    httpx.post(f"{sandbox_url}/_sandbox/faults", json={"script": [503]})
    start_worker()
    send(ingest_url, intent("hello"), msg_id="msg_p1")
    done = wait_until(
        lambda: [p for p in patches(ingest_url, event_id="msg_p1") if p["verdict"] == "applied"]
    )
    applied = done[0]
    (failed,) = patches(ingest_url, event_id="msg_p1", verdict="retry")
    assert (failed["status"], failed["attempt"]) == ("503", 1)
    assert applied["attempt"] == 2 and applied["status"] == "2xx"
    assert orjson.loads(applied["body"]) == {"conversation": {"title": "hello"}}
    assert applied["conversations"] == [{"agent_id": "a1", "convo_id": "c1"}]
    assert applied["duration_ms"] >= 0 and applied["sources"] == ["demo"]
    # the event's whole story, newest first: the PATCHes, then the request
    story = httpx.get(
        f"{ingest_url}/admin/events", params={"event_id": "msg_p1"}, headers=ADMIN
    ).json()["events"]
    assert [(e["kind"], e["verdict"]) for e in story] == [
        ("patch", "applied"),
        ("patch", "retry"),
        ("webhook", "accepted"),
    ]


def test_a_dead_lettered_patch_names_its_dead_letter(make_settings, start_worker):
    from bridge.app import build_app
    from bridge.local import sandbox as sb
    from tests.servers import serve_app_in_thread

    with serve_app_in_thread(sb.build_app(auto_create=False)) as target:
        settings = make_settings(env={"CONVOCORE_BASE_URL": target})
        with serve_app_in_thread(build_app(settings)) as ingest:
            start_worker(settings)
            send(ingest, intent("x"), msg_id="msg_dead")
            (dead,) = wait_until(lambda: patches(ingest, verdict="dead_lettered"))
            letters = httpx.get(f"{ingest}/admin/dlq", headers=ADMIN).json()
            assert dead["dead_letter"] == letters[0]["id"]
            assert dead["status"] == "404" and "not found" in dead["answer"].lower()


def test_the_per_patch_log_line_is_debug_while_the_event_log_holds_the_patch(
    make_settings, sandbox_url, start_worker, caplog
):
    """As ingest's `accepted`: the event log's entry says what the `patched` line says and
    more, so the line is INFO only when the event log is off."""
    from bridge.app import build_app
    from tests.servers import serve_app_in_thread

    caplog.set_level("INFO", logger="convo_bridge.worker")
    lines = {}
    for name, extra in (("on", ""), ("off", "[eventlog]\nenabled = false\n")):
        caplog.clear()
        settings = make_settings(extra)
        with serve_app_in_thread(build_app(settings)) as ingest:
            worker = start_worker(settings)
            send(ingest, intent(name, convo=f"c_{name}"), msg_id=f"msg_line_{name}")
            wait_until(
                lambda n=name: (
                    httpx.get(f"{sandbox_url}/_sandbox/stats").json()["by_status"].get("200", 0)
                    >= (1 if n == "on" else 2)
                )
            )
            worker.stop()
        lines[name] = [r for r in caplog.records if r.getMessage() == "patched"]
    assert lines["on"] == []
    assert [r.levelname for r in lines["off"]] == ["INFO"]
