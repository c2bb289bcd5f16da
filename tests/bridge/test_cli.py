"""The command line a newcomer meets: --config before or after the command, help on every
option, and the environment variables named in --help."""

import argparse
import subprocess
import sys

import pytest

from bridge.cli import parser


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


@pytest.mark.parametrize("command", [[], ["status"], ["dlq", "list"], ["worker"]])
def test_help_names_the_environment_it_reads(command):
    done = run(*command, "--help")
    assert done.returncode == 0
    for name in ("REDIS_URL", "BRIDGE_CONFIG", "BRIDGE_ADMIN_TOKEN"):
        assert name in done.stdout


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
