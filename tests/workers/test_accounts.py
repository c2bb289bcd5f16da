"""Several Convocore accounts in one deployment: a conversation goes to the account of its
agent id or of its source, each account with its own circuit, so one account's outage does
not stop another's conversations; a missing token is named per account."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from bridge.app import build_app
from bridge.config import Settings, require_worker_token
from bridge.errors import ConfigError
from bridge.local import sandbox
from tests.conftest import SECRET, convo, wait_until
from tests.servers import serve_app_in_thread
from tests.signing import signed

T = 1_794_999_000_000


def post(ingest: str, source: str, agent: str, convo_id: str, title: str) -> None:
    intent = {"agent_id": agent, "convo_id": convo_id, "occurred_at": T, "set": {"title": title}}
    body, headers = signed(SECRET, intent)
    answer = httpx.post(f"{ingest}/webhooks/{source}", content=body, headers=headers)
    assert answer.status_code == 202, answer.text


def accounts(name: str, url: str, more: str = "") -> str:
    return (
        f'[convocore.accounts.{name}]\nbase_url = "{url}"\n'
        f'token_env = "{name.upper()}_TOKEN"\n{more}'
    )


def test_one_accounts_outage_does_not_stop_another(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., Any],
    sandbox_url: str,
    redis_url: str,
) -> None:
    with serve_app_in_thread(sandbox.build_app(fail_rate=1.0, auto_create=True)) as down:
        settings = make_settings(
            "circuit_window = 2\ncircuit_cooldown_s = 60\n"
            + accounts("na", down, 'agents = ["agent-na"]\n'),
            env={"NA_TOKEN": "na"},
        )
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        with serve_app_in_thread(build_app(settings)) as ingest:
            start_worker(settings)
            for i in range(3):
                post(ingest, "demo", "agent-na", f"na-{i}", "lost for now")
            wait_until(lambda: r.hget("cb:acct:na:circuit", "state") == "open", 15)
            post(ingest, "demo", "agent-1", "convo-1", "still delivered")
            data = wait_until(lambda: convo(sandbox_url, "agent-1", "convo-1"), 15)
            assert data["title"] == "still delivered"
            assert r.hget("cb:circuit", "state") in (None, "closed")
        r.close()


def test_a_source_names_its_account_and_its_conversations_go_there(
    make_settings: Callable[..., Settings],
    start_worker: Callable[..., Any],
    sandbox_url: str,
) -> None:
    with serve_app_in_thread(sandbox.build_app(auto_create=True)) as eu:
        settings = make_settings(
            accounts("eu", eu)
            + '[sources.eu]\nkind = "standard"\nsecret_env = "DEMO_SECRET"\naccount = "eu"\n',
            env={"EU_TOKEN": "eu"},
        )
        with serve_app_in_thread(build_app(settings)) as ingest:
            start_worker(settings)
            post(ingest, "eu", "agent-2", "convo-2", "to the eu account")
            data = wait_until(lambda: convo(eu, "agent-2", "convo-2"), 15)
            assert data["title"] == "to the eu account"
            assert "title" not in (convo(sandbox_url, "agent-2", "convo-2") or {})


def test_a_missing_token_is_named_per_account(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(accounts("na", "https://na.example.test"))
    with pytest.raises(ConfigError) as err:
        require_worker_token(settings)
    assert err.value.key == "convocore.accounts.na.token_env"
    assert "NA_TOKEN" in err.value.problem


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('[convocore.accounts.na]\ntoken_env = "T"\n', "convocore.accounts.na.base_url"),
        (
            '[convocore.accounts.na]\nbase_url = "ftp://x"\ntoken_env = "T"\n',
            "convocore.accounts.na.base_url",
        ),
        (
            accounts("na", "https://na.test", 'agents = ["a"]\n')
            + accounts("eu", "https://eu.test", 'agents = ["a"]\n'),
            "convocore.accounts.eu.agents",
        ),
        (
            '[sources.x]\nkind = "standard"\nsecret_env = "DEMO_SECRET"\naccount = "nope"\n',
            "sources.x.account",
        ),
        (
            '[convocore.accounts.na]\nbase_url = "https://x"\ntoken_env = "T"\nregion = 1\n',
            "convocore.accounts.na.region",
        ),
    ],
)
def test_account_settings_that_do_not_fit_name_their_key(
    make_settings: Callable[..., Settings], extra: str, key: str
) -> None:
    with pytest.raises(ConfigError) as err:
        make_settings(extra)
    assert err.value.key == key
