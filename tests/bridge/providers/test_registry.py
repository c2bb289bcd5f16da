"""The registry of sender kinds is the one list config, the app and the tests share."""

import pytest

from bridge.config import _source
from bridge.errors import ConfigError
from bridge.providers import KINDS, PROVIDERS, provider
from bridge.providers.base import WebhookRequest


def test_config_refuses_a_kind_not_in_the_registry_and_names_every_registered_one():
    with pytest.raises(ConfigError) as err:
        _source("x", {"kind": "zendeskk", "secret_env": "S"}, {"S": "s"})
    assert err.value.key == "sources.x.kind"
    assert all(kind in err.value.problem for kind in KINDS)


def test_only_front_answers_a_set_up_challenge_and_zohodesk_its_url_check():
    request = WebhookRequest(
        "POST", "https://b.example/webhooks/x", {"x-front-challenge": "chl_1"}, b"{}", 0.0
    )
    answers = {}
    for kind in PROVIDERS:
        answer = provider(kind).challenge(_source(kind, _table(kind), {"S": "s"}), request)
        answers[kind] = answer.body if answer is not None else None
    url_check = '{"accepted":0,"duplicates":0,"ignored":0,"unroutable":0}'  # `{}`: no event
    expected = {"front": "chl_1", "zohodesk": url_check}
    assert answers == {kind: expected.get(kind) for kind in KINDS}


def _table(kind):
    table = {"kind": kind, "secret_env": "S"}
    if kind == "generic":
        table["map"] = {"external_id": "id"}
    return table


def test_an_unknown_kind_is_a_key_error():
    with pytest.raises(KeyError):
        provider("nope")
