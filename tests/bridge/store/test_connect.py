"""REDIS_URL: every form the bridge takes, each mistake named before anything starts, and
one door to Redis (no module builds its own client)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from bridge.errors import ConfigError
from bridge.store import Store
from bridge.store.connect import parse_redis_url, redact, require_store_support, sync_client

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("url", "kind", "db"),
    [
        ("redis://127.0.0.1:6379/0", "server", 0),
        ("rediss://:pw@redis.example:6380/3", "server", 3),
        ("unix:///run/redis.sock?db=2", "server", 2),
        ("redis://u:p@h", "server", 0),
        ("redis+sentinel://s1:26379,s2:26380/main", "sentinel", 0),
        ("redis+sentinel://:pw@s1:26379,s2/main/4?sentinel_password=spw", "sentinel", 4),
        ("redis+cluster://c1:7000", "cluster", 0),
        ("redis+cluster://u:pw@c1:7000,c2:7001,c3/0", "cluster", 0),
    ],
)
def test_each_documented_form_parses(url, kind, db):
    address = parse_redis_url(url)
    assert (address.kind, address.db) == (kind, db)


def test_a_sentinel_url_names_its_sentinels_service_and_both_passwords():
    a = parse_redis_url("redis+sentinel://user:pw@s1:26379,s2/main/4?sentinel_password=spw")
    assert a.sentinels == (("s1", 26379), ("s2", 26379))
    assert (a.service, a.db, a.username, a.password, a.sentinel_password) == (
        "main",
        4,
        "user",
        "pw",
        "spw",
    )


def test_a_cluster_url_names_its_startup_nodes_and_credentials():
    a = parse_redis_url("redis+cluster://user:p%40ss@c1:7000,10.0.0.2:7001,c3/0")
    assert a.kind == "cluster"
    assert a.nodes == (("c1", 7000), ("10.0.0.2", 7001), ("c3", 6379))
    assert (a.db, a.username, a.password) == (0, "user", "p@ss")
    assert parse_redis_url("redis+cluster://c1:7000/").db == 0


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+cluster://c1:7000/3", "only database 0"),
        ("redis+cluster://c1:7000,c2:7000/db", "only database 0"),
        ("redis+cluster://c1:7000/0/x", "only database 0"),
        ("redis+cluster://c1:x", "startup nodes as host:port"),
        ("redis+cluster://c1:7000,:7001", "startup nodes as host:port"),
        ("redis+cluster://c1:70000", "startup nodes as host:port"),
        ("redis+cluster://", "no startup node"),
        ("redis+cluster://u:pw@/0", "no startup node"),
        ("redis+cluster://c1:7000?ssl=1", "takes no options"),
    ],
)
@pytest.mark.parametrize("variable", ["REDIS_URL", "RQ_REDIS_URL"])
def test_a_malformed_cluster_url_is_a_config_error_naming_the_variable(url, problem, variable):
    with pytest.raises(ConfigError) as err:
        parse_redis_url(url, variable)
    assert err.value.key == variable
    assert problem in err.value.problem


def test_a_cluster_urls_password_is_redacted():
    assert (
        redact("redis+cluster://u:hunter2@c1:7000,c2:7001/0")
        == "redis+cluster://***@c1:7000,c2:7001/0"
    )
    with pytest.raises(ConfigError) as err:
        parse_redis_url("redis+cluster://u:hunter2@c1:7000/5")
    assert "hunter2" not in str(err.value)


def test_the_store_on_cluster_needs_rq_on_a_redis_of_its_own_and_says_so_before_connecting():
    """RQ 3 does not run on Redis Cluster: a cluster REDIS_URL without RQ_REDIS_URL, or an
    RQ_REDIS_URL that is a cluster, is refused naming RQ_REDIS_URL, without reaching a node
    and without the password."""
    cluster, plain = "redis+cluster://u:hunter2@127.0.0.1:1/0", "redis://127.0.0.1:1/0"
    for url, rq_url, says in [
        (cluster, "", "set RQ_REDIS_URL"),
        (cluster, cluster, "set RQ_REDIS_URL"),
        (plain, cluster, "RQ does not run on Redis Cluster"),
        (cluster, "redis+cluster://127.0.0.1:2/0", "RQ does not run on Redis Cluster"),
    ]:
        with pytest.raises(ConfigError) as err:
            Store(url, rq_url=rq_url)
        assert err.value.key == "RQ_REDIS_URL"
        assert says in err.value.problem
        assert "hunter2" not in str(err.value)
    require_store_support(cluster, rq_url=plain)  # the supported shape: no error
    Store(cluster, rq_url=plain)  # made without reaching a node (it connects on first use)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("notaurl", "expected a URL starting with one of"),
        ("http://h:6379/0", "expected a URL starting with one of"),
        ("redis://h:port/0", "Port could not be cast"),
        ("redis://h:6379/zero", "database number"),
        ("redis:///0", "no host"),
        ("unix://", "socket's path"),
        ("redis+sentinel://s1:26379", "/SERVICE"),
        ("redis+sentinel://s1:x/main", "host:port"),
        ("redis+sentinel://s1:1/main/db", "database is a number"),
        ("redis+sentinel://s1:1/main?sentinel_pasword=x", "unknown option 'sentinel_pasword'"),
    ],
)
def test_a_malformed_url_is_a_config_error_naming_redis_url(url, problem):
    with pytest.raises(ConfigError) as err:
        parse_redis_url(url)
    assert err.value.key == "REDIS_URL"
    assert problem in err.value.problem


def test_passwords_never_appear_in_the_message():
    with pytest.raises(ConfigError) as err:
        parse_redis_url("redis+sentinel://u:hunter2@s1:x/main?sentinel_password=swordfish")
    assert "hunter2" not in str(err.value) and "swordfish" not in str(err.value)
    shown = redact("redis+sentinel://u:hunter2@s1:1/m?sentinel_password=swordfish")
    assert shown == "redis+sentinel://***@s1:1/m?sentinel_password=***"


@pytest.mark.parametrize(
    ("url", "problem"),
    [("notaurl", "REDIS_URL"), ("redis+cluster://c1:7000", "set RQ_REDIS_URL")],
)
@pytest.mark.parametrize("command", [["config", "check"], ["status"], ["worker"], ["serve"]])
def test_every_command_stops_with_exit_2_on_a_bad_redis_url(command, url, problem):
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", *command],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "REDIS_URL": url, "BRIDGE_CONFIG": ""},
    )
    assert done.returncode == 2, done.stderr
    assert "REDIS_URL" in done.stderr and problem in done.stderr
    assert "Traceback" not in done.stderr


def test_a_command_stops_with_exit_2_when_rq_redis_url_is_a_cluster(redis_url):
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "REDIS_URL": redis_url,
            "RQ_REDIS_URL": "redis+cluster://c1:7000",
            "BRIDGE_CONFIG": "",
        },
    )
    assert done.returncode == 2, done.stderr
    assert "RQ_REDIS_URL" in done.stderr and "RQ does not run on Redis Cluster" in done.stderr
    assert "Traceback" not in done.stderr


def test_config_check_warns_when_redis_keeps_no_append_only_file(redis_url):
    conn = sync_client(redis_url)
    conn.config_set("appendonly", "no")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bridge.cli", "config", "check", "--for", "serve"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "REDIS_URL": redis_url, "BRIDGE_CONFIG": ""},
        )
    finally:
        conn.config_set("appendonly", "yes")
        conn.close()
    assert done.returncode == 0, done.stderr
    assert "appendonly no" in done.stderr


def test_a_plain_url_gives_a_working_client(redis_url):
    conn = sync_client(redis_url)
    try:
        assert conn.ping()
        assert isinstance(conn, redis.Redis)
    finally:
        conn.close()


def _from_url_callers() -> list[str]:
    found = []
    for base in ("bridge", "workers"):
        for path in (ROOT / base).rglob("*.py"):
            if path.name == "connect.py" or (
                "local" in path.parts and path.name == "redis_server.py"
            ):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and node.attr == "from_url":
                    found.append(str(path.relative_to(ROOT)))
    return found


def test_no_module_builds_its_own_redis_client():
    """Every process and command reaches Redis through bridge/store/connect.py, so Sentinel
    URLs work everywhere."""
    assert _from_url_callers() == []


def test_only_the_store_builds_keys_and_maps_redis_errors():
    """One door: outside bridge/store no module reads Redis keys it built itself, and
    `RedisError → StoreUnavailable` is written once (connect.store_errors)."""
    offenders = []
    for base in ("bridge", "workers"):
        for path in (ROOT / base).rglob("*.py"):
            text = path.read_text()
            inside = "store" in path.relative_to(ROOT).parts
            if not inside and ("store.redis" in text or ".key(" in text):
                offenders.append(str(path.relative_to(ROOT)))
            if path.name != "connect.py" and 'raise StoreUnavailable(f"Redis: {type(exc)' in text:
                offenders.append(f"{path.relative_to(ROOT)}: maps RedisError itself")
    assert offenders == []


def test_config_check_warns_when_redis_cannot_wait_for_replica_fsyncs(redis_url, tmp_path):
    """The tests' own redis-server may predate WAITAOF (Redis 7.2); Valkey has it."""
    conn = sync_client(redis_url)
    try:
        conn.execute_command("WAITAOF", 0, 0, 0)
        has_waitaof = True
    except redis.ResponseError:
        has_waitaof = False
    finally:
        conn.close()
    path = tmp_path / "c.toml"
    path.write_text('[redis]\ndurability = "replica"\n')
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "--config", str(path), "config", "check", "--for",
         "serve"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "REDIS_URL": redis_url},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "0 replica(s) connected" in done.stderr
    assert ("has no WAITAOF" in done.stderr) != has_waitaof
