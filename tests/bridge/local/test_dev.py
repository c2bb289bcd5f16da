"""`convo-bridge dev` on a machine with no REDIS_URL: it starts its own Redis, the sandbox,
serve and a worker; the command it prints really changes the conversation; Ctrl-C (and
SIGTERM) stop every child, the embedded Redis included."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

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


@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM])
def test_dev_runs_everything_and_its_sample_changes_the_conversation(
    tmp_path: Path, stop_with: signal.Signals
) -> None:
    port, sandbox_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CONVOCORE_API_TOKEN")}
    out_path = tmp_path / "dev.out"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "dev", "--port", str(port),
             "--sandbox-port", str(sandbox_port), "--dir", str(tmp_path / "dev")],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        printed = wait_until(
            lambda: "Ctrl-C stops everything." in (t := out_path.read_text()) and t, timeout_s=60
        )
        assert "(embedded server" in printed and f"http://127.0.0.1:{port}/admin/" in printed
        spawned = children_of(proc.pid)
        assert len(spawned) >= 4  # redis-server, sandbox, serve, worker
        sample = re.search(r"Send a signed sample webhook.*?\n\n  (.+?)\n", printed, re.S)
        assert sample is not None
        answer = subprocess.run(["bash", "-c", sample.group(1)], capture_output=True, text=True)
        assert '"accepted":1' in answer.stdout, answer
        convo = f"http://127.0.0.1:{sandbox_port}/agents/demo-agent/convos/demo-convo"
        data = wait_until(
            lambda: "state" in (d := httpx.get(convo).json().get("data", {})) and d, timeout_s=20
        )
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
