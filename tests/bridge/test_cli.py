"""The command line a newcomer meets: --config before or after the command, help on every
option, and the environment variables named in --help."""

import argparse
import asyncio
import json
import os
import subprocess
import sys

import pytest

from bridge.cli import main, parser
from tests.servers import free_port


def run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def parsers(p: argparse.ArgumentParser, path: str = "convo-bridge"):
    yield path, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, f"{path} {name}")


def test_every_command_and_option_has_help_text():
    missing = []
    for path, p in parsers(parser()):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                listed = {a.dest for a in action._choices_actions}
                missing += [f"{path} {n}" for n in action.choices if n not in listed]
                listed_help = [a for a in action._choices_actions if not a.help]
                missing += [f"{path} {a.dest}" for a in listed_help]
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


@pytest.mark.parametrize(
    ("command", "names"),
    [
        ([], ("REDIS_URL", "BRIDGE_CONFIG", "BRIDGE_ADMIN_TOKEN", "CONVOCORE_API_TOKEN")),
        (["status"], ("REDIS_URL", "BRIDGE_CONFIG")),
        (["dlq", "list"], ("REDIS_URL", "BRIDGE_CONFIG")),
        (["events"], ("REDIS_URL", "BRIDGE_CONFIG")),
        (
            ["worker"],
            [
                "REDIS_URL",
                "BRIDGE_CONFIG",
                "CONVOCORE_API_TOKEN",
                "CONVOCORE_SANDBOX",
                "[convocore.accounts.X] token_env",
                "BRIDGE_METRICS_PORT",
                "PROMETHEUS_MULTIPROC_DIR",
            ],
        ),
        (["serve"], ("REDIS_URL", "BRIDGE_ADMIN_TOKEN", "PROMETHEUS_MULTIPROC_DIR")),
    ],
)
def test_help_names_the_environment_it_reads(command, names):
    done = run(*command, "--help")
    assert done.returncode == 0
    for name in names:
        assert name in done.stdout, name


@pytest.mark.parametrize(
    "command",
    [["status"], ["dlq", "list"], ["links", "list"], ["config", "check"], ["worker"], ["serve"]],
)
def test_config_may_follow_the_command(tmp_path, command):
    """The file given after the command is the one read: its bad key is what stops it."""
    path = tmp_path / "c.toml"
    path.write_text("[delivery]\nmax_atempts = 3\n")
    done = run(*command, "--config", str(path))
    assert done.returncode == 2
    assert "delivery.max_atempts" in done.stderr, done.stderr


def test_config_after_the_command_wins_over_the_one_before(tmp_path):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text("")
    bad.write_text("[delivery]\nmax_atempts = 3\n")
    assert run("--config", str(good), "config", "check", "--for", "serve").returncode == 0
    done = run("--config", str(good), "config", "check", "--config", str(bad))
    assert done.returncode == 2 and "delivery.max_atempts" in done.stderr
    done = run("--config", str(bad), "config", "check", "--for", "serve", "--config", str(good))
    assert done.returncode == 0, done.stderr


def test_links_set_refuses_a_conversation_id_with_a_slash_with_exit_2(tmp_path, redis_url):
    import os

    import redis

    from tests.conftest import SECRET, write_config

    env = {**os.environ, "REDIS_URL": redis_url, "DEMO_SECRET": SECRET}
    config = str(write_config(tmp_path))
    done = run("--config", config, "links", "set", "demo", "x", "agent-1", "c/d", env=env)
    assert done.returncode == 2, done
    assert done.stderr.startswith("convo-bridge: CONVO_ID: '/' is not allowed"), done.stderr
    r = redis.Redis.from_url(redis_url)
    assert r.keys("cb:*") == []
    r.close()


def test_version_prints_the_package_version():
    from bridge.openapi import VERSION

    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"convo-bridge {VERSION}"


def test_top_level_help_says_what_it_is_and_where_to_start():
    done = run("--help")
    assert "receives webhooks" in done.stdout and "dev starts" in done.stdout


def _env(redis_url, **extra):
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("CONVOCORE_", "BRIDGE_"))}
    return {**keep, "REDIS_URL": redis_url, **extra}


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["dlq", "list"],
        ["links", "list"],
        ["trace", "agent-1", "convo-1"],
        ["events"],
        ["fields", "future", "agent-1", "convo-1"],
    ],
)
def test_commands_that_read_redis_need_no_webhook_secret(tmp_path, redis_url, command):
    """A config naming secret variables this shell does not have (as after `dev --config`)."""
    path = tmp_path / "c.toml"
    path.write_text('[sources.zendesk]\nkind = "zendesk"\nsecret_env = "NOT_SET_HERE"\n')
    done = run(*command, "--config", str(path), env=_env(redis_url))
    assert done.returncode == 0, done.stderr
    assert "NOT_SET_HERE" not in done.stderr


def test_serve_still_names_a_missing_secret(tmp_path, redis_url):
    path = tmp_path / "c.toml"
    path.write_text('[sources.zendesk]\nkind = "zendesk"\nsecret_env = "NOT_SET_HERE"\n')
    done = run("config", "check", "--for", "serve", "--config", str(path), env=_env(redis_url))
    assert done.returncode == 2 and "NOT_SET_HERE" in done.stderr


def test_a_bad_metrics_port_variable_is_named(redis_url):
    env = _env(
        redis_url,
        BRIDGE_METRICS_PORT="abc",
        CONVOCORE_SANDBOX="1",
        CONVOCORE_BASE_URL="http://127.0.0.1:9",
    )
    done = run("worker", "--burst", env=env)
    assert done.returncode == 2
    assert "BRIDGE_METRICS_PORT" in done.stderr and "'abc'" in done.stderr, done.stderr


def test_a_burst_worker_with_redis_down_exits_1_with_one_line():
    env = _env(
        f"redis://127.0.0.1:{free_port()}/0",
        CONVOCORE_SANDBOX="1",
        CONVOCORE_BASE_URL="http://127.0.0.1:9",
    )
    done = run("worker", "--burst", env=env)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "REDIS_URL" in done.stderr, done.stderr


def _seed_dead_letters(redis_url):
    """One unroutable dead letter from `demo`, one rejected_404 from `other`."""
    from bridge.intents import Intent
    from bridge.store import Outcome, Store
    from tests.bridge.store.test_store import T0, D, accept, routed, take_one

    async def go():
        store = Store(redis_url)
        try:
            await accept(store, routed(Intent(T0, external_id="T-1", set={"title": "x"}), "e1"))
            await accept(store, routed(Intent(T0, "a", "c", set={"title": "y"}), "e2", "other"))
            [work] = await take_one(store)
            attempt = {"at": T0, "status": 404, "answer": "not found"}
            gone = Outcome("dead", attempt=attempt, reason="rejected_404", status="404")
            await store.settle(work, gone, settings=D)
        finally:
            await store.close()

    asyncio.run(go())


def test_dlq_list_filters_by_reason_source_and_since(redis_url, monkeypatch, capsys):
    _seed_dead_letters(redis_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("BRIDGE_CONFIG", raising=False)

    def listed(*filters):
        assert main(["dlq", "list", "--json", *filters]) == 0
        return sorted(d["reason"] for d in json.loads(capsys.readouterr().out))

    assert listed() == ["rejected_404", "unroutable"]
    assert listed("--reason", "unroutable") == ["unroutable"]
    assert listed("--source", "other") == ["rejected_404"]
    assert listed("--since", "1h") == ["rejected_404", "unroutable"]
    assert listed("--since", "2099-01-01T00:00Z") == []
    assert main(["dlq", "list", "--since", "yesterday"]) == 1
    assert "--since" in capsys.readouterr().err


def test_links_list_prints_json_when_asked(tmp_path, redis_url, monkeypatch, capsys):
    path = tmp_path / "c.toml"
    path.write_text('[sources.zendesk]\nkind = "zendesk"\nsecret_env = "NOT_SET_HERE"\n')
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert (
        main(["links", "set", "zendesk", "T-9", "agent-1", "convo-9", "--config", str(path)]) == 0
    )
    capsys.readouterr()
    assert main(["links", "list", "--json", "--config", str(path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {"source": "zendesk", "external_id": "T-9", "agent_id": "agent-1", "convo_id": "convo-9"}
    ]


def test_dlq_show_reads_as_text_and_prints_json_on_request(redis_url, monkeypatch, capsys):
    import re

    _seed_dead_letters(redis_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.delenv("BRIDGE_CONFIG", raising=False)
    assert main(["dlq", "list", "--json", "--reason", "rejected_404"]) == 0
    [letter] = json.loads(capsys.readouterr().out)
    assert main(["dlq", "show", letter["id"]]) == 0
    text = capsys.readouterr().out
    assert "reason        rejected_404" in text and "conversation  a/c" in text
    assert 'title = "y"  from other:e2  occurred 20' in text
    assert re.search(r"  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z  404  not found", text), text
    assert re.findall(r"\b[fth]:[\w-]", text) == []
    assert main(["dlq", "show", letter["id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == letter["id"]
