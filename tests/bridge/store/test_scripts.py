"""The Lua scripts as Redis receives them: one file each, shared parts included, constants
from their Python definition."""

from __future__ import annotations

import redis

from bridge.changes import VERSION_LEN, version
from bridge.store import scripts


def test_every_script_compiles_in_redis(rclient: redis.Redis) -> None:
    for name in scripts.INCLUDES:
        sha = rclient.script_load(scripts.source(name))
        assert rclient.script_exists(sha) == [True]


def test_version_width_comes_from_python_not_from_lua() -> None:
    assert len(version(1_764_000_000_000, "s", "e")) == VERSION_LEN
    for name in scripts.INCLUDES:
        text = scripts.source(name)
        assert text.startswith(f"#!lua\nlocal VERSION_LEN = {VERSION_LEN}\n")
        assert "27" not in text.replace(f"= {VERSION_LEN}", "")


def test_each_script_opens_with_its_argv_contract() -> None:
    for name in scripts.INCLUDES:
        own = scripts._read(name)
        assert own.startswith(f"-- {name}:"), name
        assert "ARGV" in own.split("\n\n")[0] or "No arguments" in own.split("\n\n")[0], name
