"""`convo-bridge dev` on a machine with no REDIS_URL: it starts its own Redis, the sandbox,
serve and a worker; the command it prints really changes the conversation; Ctrl-C (and
SIGTERM) stop every child, the embedded Redis included."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.local.dev import default_dir
from tests.conftest import wait_until
from tests.servers import free_port


def children_of(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    pairs = [tuple(map(int, line.split())) for line in out.splitlines() if line.strip()]
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in pairs if parent in frontier} - found
        found |= frontier
    return found


def clean_env(tmp_path: Path) -> dict[str, str]:
    """This machine's environment without anything pointing at a bridge, and a private
    state directory for dev's default folder."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "CONVOCORE_API_TOKEN", "BRIDGE_CONFIG", "CONVOCORE_BASE_URL")
    }
    return {**env, "XDG_STATE_HOME": str(tmp_path / "state")}


def dev(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", "dev", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


CUSTOM = """[delivery]
coalesce_ms = 50
[sources.demo]
kind = "standard"
secret_env = "DEMO_WEBHOOK_SECRET"
"""


@pytest.mark.parametrize(
    ("stop_with", "own_config"), [(signal.SIGINT, False), (signal.SIGTERM, True)]
)
def test_dev_runs_everything_and_its_sample_changes_the_conversation(
    tmp_path: Path, stop_with: signal.Signals, own_config: bool
) -> None:
    port, sandbox_port = free_port(), free_port()
    env = clean_env(tmp_path)
    config_args: list[str] = []
    if own_config:  # --config after the command: dev runs on the user's file
        (tmp_path / "mine.toml").write_text(CUSTOM)
        config_args = ["--config", str(tmp_path / "mine.toml")]
    out_path = tmp_path / "dev.out"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "dev", "--port", str(port),
             "--sandbox-port", str(sandbox_port), *config_args],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        printed = wait_until(
            lambda: "Ctrl-C stops everything." in (t := out_path.read_text()) and t, timeout_s=60
        )
        assert "(embedded server" in printed and f"http://127.0.0.1:{port}/admin/" in printed
        home = tmp_path / "state" / "convo-bridge" / "dev"
        assert f"files     {home}" in printed  # outside any checkout by default
        expected = f"{tmp_path / 'mine.toml'} (from --config)" if own_config else "(sample)"
        assert expected in printed
        export = re.search(r"^  (export .+)$", printed, re.M)
        assert export is not None
        for name in ("REDIS_URL=", "BRIDGE_CONFIG=", "BRIDGE_ADMIN_TOKEN="):
            assert name in export.group(1)

        # The other commands reach this bridge with the printed line, nothing else: status
        # sees dev's worker (once it has registered).
        def status() -> dict[str, int]:
            done = subprocess.run(
                ["bash", "-c", f"{export.group(1)}; {sys.executable} -m bridge.cli status --json"],
                env=clean_env(tmp_path), capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            return dict(json.loads(done.stdout))

        wait_until(lambda: status()["workers_alive"] == 1, timeout_s=30, every_s=0.5)
        spawned = children_of(proc.pid)
        assert len(spawned) >= 4  # redis-server, sandbox, serve, worker

        # The printed lines need only Python: they run with no PATH (no openssl, curl, od…).
        def pasted(heading: str) -> subprocess.CompletedProcess[str]:
            line = re.search(heading + r".*?\n\n  (.+?)\n", printed, re.S)
            assert line is not None, heading
            return subprocess.run(
                shlex.split(line.group(1)), env={"PATH": str(tmp_path / "no-tools")},
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip

        answer = pasted("Send a signed sample webhook")
        assert '"accepted":1' in answer.stdout, answer

        def convo_data() -> dict[str, object]:
            out = pasted("see the conversation").stdout  # a 404 until the first PATCH
            return dict(json.loads(out)["data"]) if out.startswith("{") else {}

        data = wait_until(lambda: "state" in (d := convo_data()) and d, timeout_s=20)
        assert data["state"] == "requested_chat" and data["tags"] == ["vip"]

        proc.send_signal(stop_with)
        assert proc.wait(30) == 0
        time.sleep(0.5)
        still = [p for p in spawned if Path(f"/proc/{p}").exists()]
        assert still == [], f"children left running: {still}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in children_of(proc.pid):
            os.kill(p, signal.SIGKILL)


@pytest.mark.parametrize("flag", ["--port", "--sandbox-port"])
def test_a_busy_port_stops_dev_before_anything_naming_the_port_and_flag(tmp_path, flag):
    busy, other = socket.socket(), free_port()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        ports = {"--port": str(other), "--sandbox-port": str(other + 1), flag: str(port)}
        done = dev(*[x for pair in ports.items() for x in pair], env=clean_env(tmp_path))
    finally:
        busy.close()
    assert done.returncode == 2
    assert done.stdout == ""  # no banner, nothing started
    assert f"{flag}: port {port}" in done.stderr and f"with {flag}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "state").exists()


def test_one_port_for_two_servers_is_refused(tmp_path):
    port = str(free_port())
    done = dev("--port", port, "--sandbox-port", port, env=clean_env(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert "--sandbox-port: port" in done.stderr and "also --port" in done.stderr


def test_dev_checks_the_given_config_before_starting(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[delivery]\nmax_atempts = 3\n")
    ports = ["--port", str(free_port()), "--sandbox-port", str(free_port())]
    done = dev(*ports, "--config", str(bad), env=clean_env(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert "delivery.max_atempts" in done.stderr


def test_a_redis_url_that_does_not_answer_stops_dev_with_what_to_do(tmp_path):
    url = f"redis://:hunter2-redis-pw@127.0.0.1:{free_port()}/0"
    env = {**clean_env(tmp_path), "REDIS_URL": url}
    done = dev("--port", str(free_port()), "--sandbox-port", str(free_port()), env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert "REDIS_URL" in done.stderr and "unset REDIS_URL" in done.stderr
    assert "hunter2" not in done.stderr  # the password is never printed


def test_devs_folder_is_outside_the_checkout_by_default(tmp_path):
    repo = Path(__file__).resolve().parents[3]
    assert repo not in default_dir({}).parents
    assert default_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "convo-bridge" / "dev"
