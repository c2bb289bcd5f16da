"""Configuration stops start-up naming the key; `config check` exits 2 with that message."""

import subprocess
import sys

import pytest

from bridge.config import load_settings
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
        env={"S": "x", "PATH": ""},
    )
    assert done.returncode == 0, done.stderr


def test_front_takes_a_rule_variant(tmp_path):
    settings = check(tmp_path, "[sources.x]\nkind = 'front'\nsecret_env = 'S'\nvariant = 'rule'\n")
    assert settings.sources["x"].options["variant"] == "rule"
