"""Each sender kind through the real ingest server, Redis, a worker and the sandbox: a mapped
event becomes the right PATCH (routed through the link registry), a redelivery is a
duplicate, a forged request is 401 and queues nothing, an unmapped event is ignored."""

import json

import httpx
import pytest

from bridge.app import build_app
from bridge.config import load_settings
from tests.conftest import convo, wait_until
from tests.fuzzing import VECTORS, config_text, sign, vector_cases, webhook_url
from tests.servers import keys_but_the_log, serve_app_in_thread
from tests.signing import sign_as

DELIVERY = "[delivery]\ncoalesce_ms = 10\nlease_s = 3\nrequest_timeout_s = 2\n"


@pytest.fixture
def sender(tmp_path, redis_url, sandbox_url, request):
    kind = request.param
    cases, config = vector_cases(kind)
    case = cases[0]
    path = tmp_path / "config.toml"
    path.write_text(config_text(kind, config, default_agent=False) + DELIVERY)
    env = {
        "SENDER_SECRET": case["secret"],
        "REDIS_URL": redis_url,
        "CONVOCORE_BASE_URL": sandbox_url,
        "CONVOCORE_API_TOKEN": "t",
        "BRIDGE_ADMIN_TOKEN": "admin-token",
    }
    settings = load_settings(path, env)
    with serve_app_in_thread(build_app(settings)) as url:
        yield kind, case, settings, url


def post(kind, case, url, body=None, secret=None):
    body = (body if body is not None else case["body"]).encode()
    target = webhook_url(url, kind)
    return httpx.post(
        target, content=body, headers=sign(kind, secret or case["secret"], body, target)
    )


KINDS = ["zendesk", "intercom", "hubspot", "front", "freshdesk", "helpscout", "generic"]


@pytest.mark.parametrize("sender", KINDS, indirect=True)
def test_mapped_event_is_patched_once_through_its_link(sender, start_worker, sandbox_url):
    kind, case, settings, url = sender
    ext = case["intents"][0]["external_id"]
    admin = {"authorization": "Bearer admin-token"}
    put = httpx.put(
        f"{url}/admin/links/{kind}/{ext}",
        headers=admin,
        json={"agent_id": "agent-x", "convo_id": f"convo-{kind}"},
    )
    assert put.status_code == 200
    answer = post(kind, case, url)
    assert answer.status_code == 202, answer.text
    mapped = len(case["intents"])
    assert answer.json() == {
        "accepted": mapped,
        "duplicates": 0,
        "ignored": len(case["event_ids"]) - mapped,
        "unroutable": 0,
    }
    again = post(kind, case, url)
    assert again.json()["duplicates"] == mapped and again.json()["accepted"] == 0
    start_worker(settings)
    data = wait_until(lambda: convo(sandbox_url, "agent-x", f"convo-{kind}"))
    last = case["intents"][-1]
    if "handoff" in last:
        expected = {
            "requested": "requested_chat",
            "accepted": "human-chatting",
            "completed": "ended_chat",
        }[last["handoff"]["event"]]
        assert data["state"] == expected
    if "tags" in last:
        assert set(last["tags"].get("add", [])) <= set(data["tags"])
    patches = httpx.get(f"{sandbox_url}/_sandbox/log").json()
    assert len(patches) == 1


@pytest.mark.parametrize("sender", KINDS, indirect=True)
def test_forged_request_is_401_and_queues_nothing(sender, rclient):
    kind, case, _, url = sender
    answer = post(kind, case, url, secret="not-the-secret-at-all")
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_signature"
    assert "not-the-secret" not in answer.text and case["secret"] not in answer.text
    assert keys_but_the_log(rclient, "cb:*") == []


@pytest.mark.parametrize("sender", KINDS, indirect=True)
def test_event_without_a_link_waits_as_unroutable_then_replays(sender, start_worker, sandbox_url):
    kind, case, settings, url = sender
    assert post(kind, case, url).status_code == 202
    admin = {"authorization": "Bearer admin-token"}
    [letter] = httpx.get(f"{url}/admin/dlq", headers=admin).json()
    assert letter["reason"] == "unroutable"
    start_worker(settings)
    ext = case["intents"][0]["external_id"]
    httpx.put(
        f"{url}/admin/links/{kind}/{ext}",
        headers=admin,
        json={"agent_id": "agent-y", "convo_id": "c"},
    )
    wait_until(lambda: convo(sandbox_url, "agent-y", "c"))
    assert httpx.get(f"{url}/admin/dlq", headers=admin).json() == []


UNMAPPED = {
    "zendesk": '{"id":"u1","type":"zen:event-type:ticket.priority_changed","time":"2026-11-18T11:06:20Z","detail":{"id":"1"},"event":{}}',
    "intercom": '{"type":"notification_event","id":"notif_ping","topic":"ping","created_at":1794999970,"data":{"item":{}}}',
    "hubspot": '[{"eventId":1,"subscriptionId":9,"objectId":3,"occurredAt":1794999960000,"subscriptionType":"contact.creation"}]',
    "front": '{"id":"evt_s","type":"sync","emitted_at":1794999984.75,"conversation":{"id":"cnv_1"}}',
    "freshdesk": '{"ticket_id":"1","event":"updated","status":"Open","agent_email":"","tags":""}',
    "helpscout": '{"id":1,"status":"active"}',
}


@pytest.mark.parametrize("sender", list(UNMAPPED), indirect=True)
def test_unmapped_event_is_ignored_with_202(sender, rclient):
    kind, case, _, url = sender
    answer = post(kind, case, url, body=UNMAPPED[kind])
    assert answer.status_code == 202, answer.text
    assert answer.json()["ignored"] == 1 and answer.json()["accepted"] == 0
    assert rclient.keys("cb:p:*") == [] and rclient.keys("cb:dl*") == []


def test_front_challenge_is_echoed_as_text(tmp_path, redis_url, sandbox_url):
    doc = json.loads((VECTORS / "front.json").read_text())
    case = next(c for c in doc["cases"] if "expect_response" in c)
    path = tmp_path / "config.toml"
    path.write_text(config_text("front", {}, default_agent=False))
    settings = load_settings(path, {"SENDER_SECRET": case["secret"], "REDIS_URL": redis_url})
    with serve_app_in_thread(build_app(settings)) as url:
        body = case["body"].encode()
        headers = sign_as("front", case["secret"], body, "")
        headers["x-front-challenge"] = "chl_abc"
        answer = httpx.post(f"{url}/webhooks/front", content=body, headers=headers)
        forged = httpx.post(
            f"{url}/webhooks/front", content=body, headers={**headers, "x-front-signature": "AAAA"}
        )
    assert answer.status_code == 200 and answer.text == "chl_abc"
    assert answer.headers["content-type"].startswith("text/plain")
    assert forged.status_code == 401


def vector(kind, name):
    doc = json.loads((VECTORS / f"{kind}.json").read_text())
    return next(c for c in doc["cases"] if c["name"] == name)


@pytest.mark.parametrize("sender", ["zendesk"], indirect=True)
def test_an_unassignment_after_an_assignment_leaves_the_conversation_waiting(
    sender, start_worker, sandbox_url
):
    kind, case, settings, url = sender
    admin = {"authorization": "Bearer admin-token"}
    httpx.put(
        f"{url}/admin/links/zendesk/35436",
        headers=admin,
        json={"agent_id": "agent-z", "convo_id": "c-z"},
    )
    unassigned = json.loads(vector("zendesk", "zendesk: agent unassigned (current null)")["body"])
    unassigned["time"] = "2026-11-18T11:07:00Z"  # after the assignment
    assert post(kind, case, url).status_code == 202
    assert post(kind, case, url, body=json.dumps(unassigned)).json()["accepted"] == 1
    start_worker(settings)
    data = wait_until(lambda: convo(sandbox_url, "agent-z", "c-z"))
    assert data["state"] == "requested_chat"
    assert data["chatAssignedTo"] == ""
    assert data["handoffHistory"] == [
        {"acceptedAt": 1794999980, "acceptedBy": "1001"},
        {"requestedAt": 1795000020},
    ]


def test_front_rule_webhook_is_accepted_and_a_forged_one_refused(tmp_path, redis_url, rclient):
    case = vector("front", "front: rule webhook (HMAC-SHA1 of the body, no timestamp), unassigned")
    path = tmp_path / "config.toml"
    path.write_text(config_text("front", case["config"]))
    settings = load_settings(path, {"SENDER_SECRET": case["secret"], "REDIS_URL": redis_url})
    with serve_app_in_thread(build_app(settings)) as url:
        body = case["body"].encode()
        headers = {**case["headers"], "content-type": "application/json"}
        answer = httpx.post(f"{url}/webhooks/front", content=body, headers=headers)
        forged = httpx.post(
            f"{url}/webhooks/front",
            content=body,
            headers={
                **headers,
                "x-front-signature": sign_as("front_rule", "x", body, "")["x-front-signature"],
            },
        )
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"accepted": 1, "duplicates": 0, "ignored": 0, "unroutable": 0}
    assert forged.status_code == 401
