"""Senders declared as the generic kind with shipped settings, through the real ingest server
and Redis: each takes the body its sender sends (SOAP XML, a form), answers as its sender
needs (Salesforce: 200 with the SOAP Ack), and a refused request is never acknowledged and
queues nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bridge.app import build_app
from bridge.config import load_settings
from tests.fuzzing import VECTORS
from tests.servers import keys_but_the_log, serve_app_in_thread


def cases(kind: str) -> list[dict[str, Any]]:
    return list(json.loads((VECTORS / f"{kind}.json").read_text())["cases"])


@pytest.fixture
def serve(tmp_path: Path, redis_url: str, sandbox_url: str) -> Iterator[Any]:
    def start(kind: str, extra: str = "") -> Any:
        path = tmp_path / f"{kind}.toml"
        path.write_text(
            f'[sources.{kind}]\nkind = "{kind}"\nsecret_env = "SENDER_SECRET"\n'
            f'default_agent_id = "agent-1"\n{extra}'
        )
        env = {
            "SENDER_SECRET": cases(kind)[0]["secret"] if kind != "generic" else "s3cret",
            "REDIS_URL": redis_url,
            "CONVOCORE_BASE_URL": sandbox_url,
            "CONVOCORE_API_TOKEN": "t",
        }
        return serve_app_in_thread(build_app(load_settings(path, env)))

    yield start


def post(url: str, kind: str, case: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{url}/webhooks/{kind}", content=case["body"].encode(), headers=case["headers"]
    )


def test_salesforce_is_acknowledged_with_the_soap_ack_and_a_refused_message_is_not(
    serve: Any, redis_url: str
) -> None:
    good, forged = cases("salesforce")
    with serve("salesforce") as url:
        answer = post(url, "salesforce", good)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/xml")
        assert "<Ack>true</Ack>" in answer.text
        r = redis.Redis.from_url(redis_url)
        before = r.dbsize()
        refused = post(url, "salesforce", forged)
        assert refused.status_code == 401 and "Ack" not in refused.text
        assert r.dbsize() == before
        r.close()


def test_twilio_form_bodies_are_taken_and_verified_over_the_public_url(serve: Any) -> None:
    closed, ignored, changed, _ = cases("twilio")
    with serve("twilio", f'public_url = "{closed["url"]}"\n') as url:
        answer = post(url, "twilio", closed)
        assert answer.status_code == 202, answer.text
        assert answer.json()["accepted"] == 1
        assert post(url, "twilio", ignored).json()["ignored"] == 1
        assert post(url, "twilio", changed).status_code == 401
        as_json = {**closed, "headers": {**closed["headers"], "content-type": "application/json"}}
        assert post(url, "twilio", as_json).status_code == 415


def test_livechat_proves_its_secret_in_the_body(serve: Any) -> None:
    *good, wrong = cases("livechat")
    with serve("livechat") as url:
        assert post(url, "livechat", good[0]).json()["accepted"] == 1
        answer = post(url, "livechat", wrong)
        assert answer.status_code == 401
        assert wrong["secret"] not in answer.text and "guessed" not in answer.text


@pytest.mark.parametrize("kind", ["livechat", "salesforce"])
def test_a_secret_proven_in_the_body_is_redacted_in_the_event_log(
    serve: Any, redis_url: str, kind: str
) -> None:
    good = cases(kind)[0]
    with serve(kind) as url:
        assert post(url, kind, good).status_code in (200, 202)
    r = redis.Redis.from_url(redis_url)
    logged = b"".join(v for _, entry in r.xrange("cb:events") for v in entry.values())
    r.close()
    assert good["secret"].encode() in good["body"].encode()
    assert good["secret"].encode() not in logged and b"(redacted)" in logged


HOSTILE = [
    b"",
    b"\xff\xfe\x00<",
    b"<a>" * 100_000 + b"</a>" * 100_000,
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><l>&b;</l>',
    b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>',
    b"<a><b></a>",
    b"a=%ZZ&b=\xff",
    b"=&&=&a",
    b"%00=%00",
    b"a=" + b"x" * 200_000,
]


@pytest.mark.parametrize("body_kind", ["xml", "form"])
def test_hostile_xml_and_form_bodies_get_a_4xx_and_queue_nothing(
    serve: Any, redis_url: str, body_kind: str
) -> None:
    content_type = {"xml": "text/xml", "form": "application/x-www-form-urlencoded"}[body_kind]
    extra = (
        f'body = "{body_kind}"\nproof = "header"\n'
        '[sources.generic.map]\nexternal_id = "a"\n"handoff.event" = "\'completed\'"\n'
    )
    r = redis.Redis.from_url(redis_url)
    with serve("generic", extra) as url:
        before = keys_but_the_log(r)
        for body in HOSTILE:
            answer = httpx.post(
                f"{url}/webhooks/generic",
                content=body,
                headers={"content-type": content_type, "x-bridge-secret": "s3cret"},
            )
            assert answer.status_code in (202, 400), (body[:40], answer.status_code, answer.text)
            if answer.status_code == 400:
                assert "Traceback" not in answer.text
        assert keys_but_the_log(r) == before
    r.close()


def test_kustomer_signed_envelopes_are_queued_once_by_their_id(serve: Any) -> None:
    accepted, *_, forged = cases("kustomer")
    with serve("kustomer") as url:
        answer = post(url, "kustomer", accepted)
        assert answer.status_code == 202, answer.text
        assert answer.json()["accepted"] == 1
        again = post(url, "kustomer", accepted)  # Kustomer delivers at least once
        assert again.json()["duplicates"] == 1 and again.json()["accepted"] == 0
        refused = post(url, "kustomer", forged)
        assert refused.status_code == 401
        assert forged["secret"] not in refused.text


def post_case(url: str, case: dict[str, Any]) -> httpx.Response:
    """A Zoho Desk vector's request, its token in the query as in the vector's URL."""
    query = case["url"].split("?", 1)[1]
    return httpx.post(
        f"{url}/webhooks/zohodesk?{query}", content=case["body"].encode(), headers=case["headers"]
    )


def test_zohodesk_is_answered_200_and_proves_its_token_in_the_url(
    serve: Any, redis_url: str
) -> None:
    good = next(c for c in cases("zohodesk") if c["name"].startswith("zohodesk: two events"))
    wrong = cases("zohodesk")[-1]
    with serve("zohodesk") as url:
        answer = post_case(url, good)
        assert answer.status_code == 200, answer.text  # Zoho Desk counts any other as failed
        assert answer.json()["accepted"] == 1 and answer.json()["ignored"] == 1
        r = redis.Redis.from_url(redis_url)
        before = r.dbsize()
        refused = httpx.post(
            f"{url}/webhooks/zohodesk?{wrong['url'].split('?', 1)[1]}",
            content=wrong["body"].encode(),
            headers=wrong["headers"],
        )
        assert refused.status_code == 401 and "guessed" not in refused.text
        assert r.dbsize() == before
        r.close()


def test_zohodesk_url_check_get_is_answered_200_and_other_kinds_stay_405(serve: Any) -> None:
    """Zoho Desk saves a webhook only once a GET of its URL is answered 200."""
    token = cases("zohodesk")[0]["url"].split("?", 1)[1]
    with serve("zohodesk") as url:
        answer = httpx.get(f"{url}/webhooks/zohodesk?{token}")
        assert answer.status_code == 200, answer.text
        assert "zohodesk" in answer.text
        assert httpx.get(f"{url}/webhooks/zohodesk").status_code == 200  # no secret told
        assert httpx.get(f"{url}/webhooks/nosuch").status_code == 404
    with serve("kustomer") as url:
        refused = httpx.get(f"{url}/webhooks/kustomer")
        assert refused.status_code == 405 and "POST" in refused.headers["allow"]


@pytest.mark.parametrize("body", [b"[]", b"{}", b""])
def test_zohodesk_url_check_post_with_no_events_is_answered_200_and_queues_nothing(
    serve: Any, redis_url: str, body: bytes
) -> None:
    """Zoho Desk also POSTs to the URL when the webhook is saved (no event in it)."""
    token = cases("zohodesk")[0]["url"].split("?", 1)[1]
    r = redis.Redis.from_url(redis_url)
    with serve("zohodesk") as url:
        before = keys_but_the_log(r)
        headers = {"content-type": "application/json"}
        answer = httpx.post(f"{url}/webhooks/zohodesk?{token}", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == 0
        assert keys_but_the_log(r) == before
        wrong = httpx.post(f"{url}/webhooks/zohodesk?token=guessed", content=body, headers=headers)
        assert wrong.status_code == 401
    r.close()


def test_zohodesk_thread_events_are_ignored_not_routed_by_the_thread_id(serve: Any) -> None:
    thread = next(c for c in cases("zohodesk") if "Ticket_Thread_Add" in c["name"])
    with serve("zohodesk") as url:
        answer = post_case(url, thread)
        assert answer.status_code == 200, answer.text
        assert answer.json()["ignored"] == 1 and answer.json()["unroutable"] == 0


def test_kustomer_update_with_null_changes_is_ignored(serve: Any) -> None:
    empty = next(c for c in cases("kustomer") if "changes null" in c["name"])
    with serve("kustomer") as url:
        answer = post(url, "kustomer", empty)
        assert answer.status_code == 202, answer.text
        assert answer.json()["ignored"] == 1
