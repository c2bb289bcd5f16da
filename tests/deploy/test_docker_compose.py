"""docker-compose.yml, validated by docker-compose itself (`.ci/run` installs it): no public
default secret, health checks that work without curl, restart policies, pinned images, ports
on 127.0.0.1, and a worker that runs against the sandbox service without a token."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import wait_until, write_config
from tests.servers import cli, free_port, stop

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def compose(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("docker-compose") is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing: .ci/run installs Debian's docker-compose")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONVOCORE_", "BRIDGE_"))}
    clean.pop("DEMO_WEBHOOK_SECRET", None)
    return subprocess.run(
        ["docker-compose", "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"), *args],
        capture_output=True, text=True, timeout=60, env={**clean, **env}, cwd=ROOT,
    )  # fmt: skip


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    done = compose("config", DEMO_WEBHOOK_SECRET=SECRET)
    assert done.returncode == 0, done.stderr
    return dict(yaml.safe_load(done.stdout)["services"])


def test_docker_compose_accepts_the_file():
    done = compose("config", "-q", DEMO_WEBHOOK_SECRET=SECRET)
    assert done.returncode == 0, done.stderr


def test_there_is_no_default_webhook_secret_and_the_error_says_what_to_set():
    done = compose("config", "-q")
    assert done.returncode != 0
    assert "set DEMO_WEBHOOK_SECRET" in done.stderr


def test_every_service_has_a_health_check_and_a_restart_policy(resolved):
    default = {n for n, s in resolved.items() if not s.get("profiles")}  # `ha`: its own test
    assert default == {"redis", "sandbox", "serve", "worker"}
    for name, service in resolved.items():
        assert service.get("restart") == "unless-stopped", name
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and "curl" not in " ".join(test), name


def test_images_are_pinned(resolved):
    for name, service in resolved.items():
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", image), f"{name}: {image}"
    base = (ROOT / "Dockerfile").read_text().splitlines()[0]
    assert re.fullmatch(r"FROM python:\d+\.\d+\.\d+-slim-\w+", base), base


def test_published_ports_listen_on_loopback_unless_told_otherwise(resolved):
    published = [p for s in resolved.values() for p in s.get("ports", [])]
    assert published and all(str(p).startswith("127.0.0.1:") for p in published), published
    done = compose("config", DEMO_WEBHOOK_SECRET=SECRET, BRIDGE_PUBLISH_ADDRESS="0.0.0.0")
    services = yaml.safe_load(done.stdout)["services"]
    assert all(str(p).startswith("0.0.0.0:") for s in services.values() for p in s.get("ports", []))


def test_the_compose_worker_runs_against_the_sandbox_service_without_a_token(resolved, redis_url):
    env = {k: str(v) for k, v in resolved["worker"]["environment"].items()}
    assert env["CONVOCORE_BASE_URL"] == "http://sandbox:8081" and not env["CONVOCORE_API_TOKEN"]
    env.update(BRIDGE_CONFIG=str(ROOT / "deploy" / "config.toml"), REDIS_URL=redis_url)
    env = {k: v for k, v in env.items() if v} | {"PATH": os.environ.get("PATH", "")}
    for command in (["config", "check", "--for", "worker"], ["worker", "--burst"]):
        done = subprocess.run(
            [sys.executable, "-m", "bridge.cli", *command],
            capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)


def probe(service: dict[str, Any], url: str, local: str) -> int:
    """Run a service's health-check command here, aimed at `url` instead of `local`."""
    test = [
        sys.executable if part == "python" else part.replace(local, url)
        for part in service["healthcheck"]["test"][1:]
    ]
    return subprocess.run(test, capture_output=True, timeout=30).returncode


def test_the_sandbox_and_serve_health_checks_pass_when_up_and_fail_when_down(
    resolved, sandbox_url, ingest_url
):
    assert probe(resolved["sandbox"], sandbox_url, "http://127.0.0.1:8081") == 0
    assert probe(resolved["serve"], ingest_url, "http://127.0.0.1:8080") == 0
    down = f"http://127.0.0.1:{free_port()}"
    assert probe(resolved["sandbox"], down, "http://127.0.0.1:8081") != 0
    assert probe(resolved["serve"], down, "http://127.0.0.1:8080") != 0


def test_the_worker_health_check_passes_on_a_running_worker(resolved, bridge_env, tmp_path):
    port = free_port()
    config = str(write_config(tmp_path))
    worker = cli("--config", config, "worker", "--metrics-port", str(port), env=bridge_env)
    url, local = f"http://127.0.0.1:{port}", "http://127.0.0.1:9101"
    try:
        wait_until(lambda: probe(resolved["worker"], url, local) == 0, timeout_s=30)
    finally:
        stop([worker], 30)
    assert probe(resolved["worker"], url, local) != 0


@pytest.fixture(scope="module")
def resolved_ha() -> dict[str, Any]:
    done = compose("--profile", "ha", "config", DEMO_WEBHOOK_SECRET=SECRET)
    assert done.returncode == 0, done.stderr
    return dict(yaml.safe_load(done.stdout)["services"])


def test_the_ha_profile_is_three_redis_three_sentinels_and_the_bridge_on_sentinel(resolved_ha):
    from bridge.config import load_settings
    from bridge.store.connect import parse_redis_url

    ha = {n: s for n, s in resolved_ha.items() if "ha" in s.get("profiles", [])}
    assert set(ha) == {f"redis-{i}" for i in (1, 2, 3)} | {f"sentinel-{i}" for i in (1, 2, 3)} | {
        "serve-ha",
        "worker-ha",
    }
    for name, service in ha.items():
        assert service.get("restart") == "unless-stopped", name
        assert service["healthcheck"]["test"][0] == "CMD", name
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", service["image"]), name
    for i in (1, 2, 3):
        args = " ".join(ha[f"redis-{i}"]["command"])
        assert "--appendonly yes" in args and "--appendfsync always" in args
        assert "--min-replicas-to-write 1" in args
    for name in ("serve-ha", "worker-ha"):
        env = {k: str(v) for k, v in ha[name]["environment"].items()}
        address = parse_redis_url(env["REDIS_URL"])
        assert address.kind == "sentinel" and len(address.sentinels) == 3
        [mount] = ha[name]["volumes"]
        source = mount["source"] if isinstance(mount, dict) else mount.split(":")[0]
        settings = load_settings(source, {**env, "DEMO_WEBHOOK_SECRET": SECRET})
        assert settings.redis.durability == "replica"
