"""Routing and mapping expressions from the config that do not fit a payload: a 400 naming
the config key and the expression (never a 5xx a sender would retry forever), nothing
queued; the same expressions route and map a payload they fit."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest
import redis

from bridge.app import build_app
from bridge.config import Settings
from tests.servers import keys_but_the_log, serve_app_in_thread
from tests.signing import sign_as

SECRET = "generic-secret"
CONFIG = """
[sources.crm]
kind = "generic"
secret_env = "CRM_SECRET"
agent_id = "join('-', [org, team])"
convo_id = "ticket"
[sources.crm.map]
event_id = "id"
external_id = "ticket"
"set.title" = "join(' ', words)"
"set.leadScore" = "score && ceil(to_number(score))"
"""


@pytest.fixture
def crm_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    settings = make_settings(CONFIG, env={"CRM_SECRET": SECRET})
    with serve_app_in_thread(build_app(settings)) as url:
        yield url


def post(url: str, payload: object) -> httpx.Response:
    body = orjson.dumps(payload)
    target = f"{url}/webhooks/crm"
    return httpx.post(target, content=body, headers=sign_as("generic", SECRET, body, target))


def good(**over: object) -> dict[str, object]:
    return {"id": "e1", "org": "acme", "team": "blue", "ticket": "T-1", "words": ["a", "b"]} | over


def test_a_routing_expression_that_does_not_fit_is_400_naming_it(
    crm_url: str, rclient: redis.Redis
) -> None:
    answer = post(crm_url, good(team=7))
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert "sources.crm.agent_id" in detail and "join('-', [org, team])" in detail, detail
    assert "join() got a number" in detail
    assert keys_but_the_log(rclient, "cb:*") == []


def test_a_routing_expression_giving_an_id_with_a_slash_is_400_naming_it(
    crm_url: str, rclient: redis.Redis
) -> None:
    answer = post(crm_url, good(ticket="c/d"))
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith("convo_id: '/' is not allowed"), detail
    assert "JMESPath 'ticket'" in detail, detail
    assert keys_but_the_log(rclient, "cb:*") == []


@pytest.mark.parametrize(
    ("payload", "key", "expression"),
    [
        (good(words=[1, 2]), "sources.crm.map.set.title", "join(' ', words)"),
        (good(words="ab"), "sources.crm.map.set.title", "join(' ', words)"),
        (good(score="1e400"), "sources.crm.map.set.leadScore", "score && ceil(to_number(score))"),
        (good(score="nan"), "sources.crm.map.set.leadScore", "score && ceil(to_number(score))"),
    ],
)
def test_a_mapping_expression_that_does_not_fit_is_400_naming_it(
    crm_url: str, rclient: redis.Redis, payload: dict[str, object], key: str, expression: str
) -> None:
    answer = post(crm_url, payload)
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert key in detail and expression in detail, detail
    assert keys_but_the_log(rclient, "cb:*") == []


def test_in_a_batch_the_error_names_the_element(crm_url: str, rclient: redis.Redis) -> None:
    answer = post(crm_url, [good(), good(id="e2", team=[1])])
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"].startswith("[1].")
    assert keys_but_the_log(rclient, "cb:*") == []


def test_expressions_that_fit_route_and_map_the_event(crm_url: str) -> None:
    answer = post(crm_url, good(score="41.5"))
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == 1
