"""Configuration stops start-up naming the key; `config check` exits 2 with that message."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bridge.config import SECTIONS, file_keys, load_settings, require_worker_token
from bridge.errors import ConfigError


def check(tmp_path, text, env=None):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_settings(path, env if env is not None else {"S": "x"})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[delivery]\nmax_atempts = 3\n", "delivery.max_atempts"),
        ("[delivery]\nmax_attempts = 'ten'\n", "delivery.max_attempts"),
        ("[ingest]\nmax_body_bytes = -1\n", "ingest.max_body_bytes"),
        ("[convocore]\ntime_unit = 'h'\n", "convocore.time_unit"),
        ("[sources.x]\nkind = 'zendesk'\nsecret_env = 'MISSING'\n", "sources.x.secret_env"),
        ("[sources.x]\nkind = 'jira'\nsecret_env = 'S'\n", "sources.x.kind"),
        (
            "[sources.x]\nkind = 'zendesk'\nsecret_env = 'S'\npublic_url = 'https://a/b'\n",
            "sources.x.public_url",
        ),
        (
            "[sources.x]\nkind = 'generic'\nsecret_env = 'S'\n[sources.x.map]\nevent_id = 'a[['\n",
            "sources.x.map.event_id",
        ),
        (
            "[sources.x]\nkind = 'generic'\nsecret_env = 'S'\n[sources.x.map]\nfoo = 'a'\n",
            "sources.x.map.foo",
        ),
        (
            "[sources.x]\nkind = 'standard'\nsecret_env = 'S'\nagent_id = 'a'\n",
            "sources.x.convo_id",
        ),
        ("[surces]\n", "surces"),
        ("[sources.x]\nkind = 'front'\nsecret_env = 'S'\nvariant = 'rules'\n", "sources.x.variant"),
        (
            "[sources.x]\nkind = 'zendesk'\nsecret_env = 'S'\nvariant = 'rule'\n",
            "sources.x.variant",
        ),
        (
            "[sources.x]\nkind = 'hubspot'\nsecret_env = 'S'\nclosed_stages = '4'\n",
            "sources.x.closed_stages",
        ),
        (
            "[sources.x]\nkind = 'hubspot'\nsecret_env = 'S'\nreopened_stages = ['1', '4']\n",
            "sources.x.reopened_stages",
        ),
        (
            "[sources.x]\nkind = 'hubspot'\nsecret_env = 'S'\npublic_url = 'bridge.example'\n",
            "sources.x.public_url",
        ),
        ("[sources.x]\nkind = 'freshdesk'\nsecret_env = 'S'\nheader = 3\n", "sources.x.header"),
    ],
)
def test_a_bad_config_names_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        check(tmp_path, text)
    assert err.value.key == key


def test_config_check_exits_2_naming_the_key_without_a_traceback(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[delivery]\nmax_atempts = 3\n")
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "--config", str(path), "config", "check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "delivery.max_atempts" in done.stderr and "Traceback" not in done.stderr


def test_config_check_accepts_a_good_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[sources.demo]\nkind = 'standard'\nsecret_env = 'S'\n")
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "--config", str(path), "config", "check"],
        capture_output=True,
        text=True,
        env={"S": "x", "CONVOCORE_API_TOKEN": "t", "PATH": ""},
    )
    assert done.returncode == 0, done.stderr


def test_hubspot_names_its_closed_and_reopened_ticket_stages(tmp_path):
    settings = check(
        tmp_path,
        "[sources.x]\nkind = 'hubspot'\nsecret_env = 'S'\nclosed_stages = ['4', '91']\n"
        "reopened_stages = ['1']\n",
    )
    assert settings.sources["x"].options.closed_stages == ("4", "91")
    assert settings.sources["x"].options.reopened_stages == ("1",)
    assert check(tmp_path, "[sources.x]\nkind = 'hubspot'\nsecret_env = 'S'\n").sources[
        "x"
    ].options.closed_stages == ("4",)


def test_front_takes_a_rule_variant(tmp_path):
    settings = check(tmp_path, "[sources.x]\nkind = 'front'\nsecret_env = 'S'\nvariant = 'rule'\n")
    assert settings.sources["x"].options.variant == "rule"


# --- one source of truth: the settings dataclasses --------------------------------------------


def test_an_empty_file_means_every_dataclass_default(tmp_path):
    settings = check(tmp_path, "")
    for section, cls in SECTIONS.items():
        for name, f in file_keys(cls).items():
            assert getattr(getattr(settings, section), name) == f.default, f"{section}.{name}"


def test_the_readme_example_shows_the_defaults():
    """The README's config block is documentation of the dataclass defaults, kept true."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("## Configuration", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    example = tomllib.loads(block)
    for section, cls in SECTIONS.items():
        keys = file_keys(cls)
        assert set(example.get(section, {})) <= set(keys), section
        for name, value in example.get(section, {}).items():
            assert value == keys[name].default, f"README {section}.{name}"


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[delivery]\nconcurrency = 0\n", "delivery.concurrency", "at least 1"),
        (
            "[delivery]\ncircuit_failure_ratio = 1.5\n",
            "delivery.circuit_failure_ratio",
            "at most 1",
        ),
        ("[delivery]\nlease_s = true\n", "delivery.lease_s", "expected number"),
        ("[delivery]\ncoalesce_ms = 2.5\n", "delivery.coalesce_ms", "expected integer"),
        ("[convocore]\nsandbox = 'yes'\n", "convocore.sandbox", "true or false"),
        ("[convocore]\ntoken_env = ''\n", "convocore.token_env", "non-empty string"),
        ("[log]\nformat = 'xml'\n", "log.format", "'json', 'text'"),
        ("[log]\nlevel = 3\n", "log.level", "'DEBUG'"),
        ("[delivery]\nbackoff_max_s = 0.5\n", "delivery.backoff_max_s", "backoff_initial_s"),
        ("[convocore]\nbase_url = 'ftp://x'\n", "convocore.base_url", "http(s)"),
    ],
)
def test_types_and_limits_come_from_the_dataclasses(tmp_path, text, key, problem):
    with pytest.raises(ConfigError) as err:
        check(tmp_path, text)
    assert err.value.key == key
    assert problem in err.value.problem


def test_numbers_are_widened_and_choices_are_case_blind(tmp_path):
    settings = check(tmp_path, "[delivery]\nrate_limit_per_s = 5\n[log]\nlevel = 'debug'\n")
    assert settings.delivery.rate_limit_per_s == 5.0
    assert isinstance(settings.delivery.rate_limit_per_s, float)
    assert settings.log.level == "DEBUG"


def test_the_environment_overrides_the_file_and_a_bad_value_names_key_and_variable(tmp_path):
    text = "[convocore]\nbase_url = 'http://file'\n[log]\nformat = 'json'\n"
    env = {
        "CONVOCORE_BASE_URL": "http://env/",
        "BRIDGE_LOG_FORMAT": "text",
        "BRIDGE_LOG_LEVEL": "warning",
    }
    settings = check(tmp_path, text, env)
    assert settings.convocore.base_url == "http://env"
    assert (settings.log.format, settings.log.level) == ("text", "WARNING")
    with pytest.raises(ConfigError) as err:
        check(tmp_path, text, {"BRIDGE_LOG_LEVEL": "loud"})
    assert err.value.key == "log.level" and "BRIDGE_LOG_LEVEL" in err.value.problem
    with pytest.raises(ConfigError) as err:
        check(tmp_path, text, {"CONVOCORE_SANDBOX": "maybe"})
    assert err.value.key == "convocore.sandbox" and "CONVOCORE_SANDBOX" in err.value.problem


# --- the worker's token rule ------------------------------------------------------------------


def test_a_worker_needs_the_token_whatever_the_base_url_unless_it_is_a_sandbox(tmp_path):
    for url in ("http://127.0.0.1:8081", "http://localhost:8081", "https://api.example.com"):
        settings = check(tmp_path, "", {"CONVOCORE_BASE_URL": url})
        with pytest.raises(ConfigError) as err:
            require_worker_token(settings)
        assert err.value.key == "convocore.token_env"
        assert "CONVOCORE_API_TOKEN" in err.value.problem and "sandbox" in err.value.problem
    require_worker_token(check(tmp_path, "", {"CONVOCORE_API_TOKEN": "t"}))
    for text, env in (
        ("[convocore]\nsandbox = true\nbase_url = 'http://sandbox:8081'\n", {}),
        ("", {"CONVOCORE_SANDBOX": "1", "CONVOCORE_BASE_URL": "http://sandbox:8081"}),
    ):
        settings = check(tmp_path, text, env)
        assert settings.convocore.sandbox and settings.convocore.token is None
        require_worker_token(settings)


def test_the_public_api_cannot_be_declared_a_sandbox(tmp_path):
    with pytest.raises(ConfigError) as err:
        check(tmp_path, "", {"CONVOCORE_SANDBOX": "true"})
    assert err.value.key == "convocore.sandbox"


def run_cli(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", ""), **env},
        timeout=60,
    )


def test_config_check_and_worker_agree_on_a_missing_token(tmp_path, redis_url):
    env = {"REDIS_URL": redis_url, "CONVOCORE_BASE_URL": "http://127.0.0.1:9"}
    checked = run_cli("config", "check", env=env)
    worker = run_cli("worker", "--burst", env=env)
    assert (checked.returncode, worker.returncode) == (2, 2)
    for done in (checked, worker):
        assert "convocore.token_env" in done.stderr and "CONVOCORE_API_TOKEN" in done.stderr
    assert run_cli("config", "check", "--for", "serve", env=env).returncode == 0


def test_a_worker_runs_without_a_token_against_a_declared_sandbox_by_any_name(tmp_path, redis_url):
    """docker-compose's worker: `http://sandbox:8081`, no token, CONVOCORE_SANDBOX=1."""
    env = {
        "REDIS_URL": redis_url,
        "CONVOCORE_BASE_URL": "http://sandbox.invalid:8081",
        "CONVOCORE_SANDBOX": "1",
    }
    checked = run_cli("config", "check", env=env)
    assert checked.returncode == 0, checked.stderr
    assert "sandbox" in checked.stdout
    worker = run_cli("worker", "--burst", env=env)
    assert worker.returncode == 0, worker.stderr


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        (
            '[sources.demo]\nkind = "standard"\nsecret = "whsec_x"\n',
            "sources.demo.secret",
            "secret_env",
        ),
        ('[convocore]\ntoken = "t0k"\n', "convocore.token", "token_env"),
    ],
)
def test_a_secret_written_in_the_file_says_to_name_its_variable(tmp_path, text, key, says):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, {"DEMO_SECRET": "x"})
    assert err.value.key == key and says in str(err.value)
    assert "put it in an environment variable" in str(err.value)
    assert "whsec_x" not in str(err.value) and "t0k" not in str(err.value)


def test_rq_redis_url_defaults_to_redis_url_and_a_bad_one_is_named() -> None:
    env = {"REDIS_URL": "redis://store:6379/0"}
    assert load_settings(None, env).rq_url == "redis://store:6379/0"
    given = load_settings(None, {**env, "RQ_REDIS_URL": "redis+sentinel://s1:26379/rq"})
    assert given.rq_url == "redis+sentinel://s1:26379/rq"
    with pytest.raises(ConfigError) as err:
        load_settings(None, {**env, "RQ_REDIS_URL": "http://u:secret@rq:6379"})
    assert err.value.key == "RQ_REDIS_URL" and "secret" not in str(err.value)
