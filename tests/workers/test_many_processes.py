"""Scaling out: two `serve` and three `worker` processes on one Redis, fed shuffled and
redelivered events (each redelivery through the other ingest process) while the target
answers some 503s and 429s. The guarantees must hold across processes: every event applied
once, newest value per field, tags and handoff history without doubles, never two PATCHes
of one conversation at a time."""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from bridge.changes import version
from tests.conftest import SECRET, wait_until, write_config
from tests.servers import cli, free_port, ready, stop
from tests.signing import signed

T0 = int(time.time() * 1000) - 3_600_000
CONVOS = [f"m{i}" for i in range(12)]
FIELDS = ["title", "userName", "notes"]


class Cluster:
    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.config = write_config(tmp_path)
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ingest_urls: list[str] = []

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        self.procs.append(cli("--config", str(self.config), *args, env=self.env))
        return self.procs[-1]

    def start(self, serves: int, workers: int) -> None:
        for _ in range(serves):
            port = free_port()
            self.spawn("serve", "--port", str(port))
            self.ingest_urls.append(f"http://127.0.0.1:{port}")
        for _ in range(workers):
            self.spawn("worker")
        for url in self.ingest_urls:
            wait_until(lambda u=url: ready(u), timeout_s=20)

    def stop(self) -> None:
        stop(self.procs)


@pytest.fixture
def cluster(tmp_path: Path, bridge_env: dict[str, str]) -> Iterator[Cluster]:
    c = Cluster(tmp_path, bridge_env)
    try:
        c.start(serves=2, workers=3)
        yield c
    finally:
        c.stop()


def test_two_ingest_and_three_worker_processes_keep_every_guarantee(
    cluster: Cluster, sandbox_url: str, redis_url: str
) -> None:
    rng = random.Random(7)
    run = f"s{time.monotonic_ns()}"
    events = []
    for i in range(240):
        convo = rng.choice(CONVOS)
        at = T0 + rng.randrange(0, 100_000)
        payload: dict[str, object] = {"agent_id": run, "convo_id": convo, "occurred_at": at}
        kind = rng.random()
        if kind < 0.7:
            payload["set"] = {rng.choice(FIELDS): f"v{i}"}
        elif kind < 0.9:
            payload["tags"] = (
                {"add": [f"t{i % 5}"]} if rng.random() < 0.6 else {"remove": [f"t{i % 5}"]}
            )
        else:
            payload["handoff"] = {"event": "requested", "team_key": "billing", "at": at}
        events.append((f"{run}-{i}", payload))
    # every event once, a third of them twice, in shuffled order; each redelivery goes to
    # the other ingest process (dedup must hold across processes)
    sends = [(ev, 0) for ev in events] + [(ev, 1) for ev in rng.sample(events, k=80)]
    rng.shuffle(sends)
    httpx.post(
        f"{sandbox_url}/_sandbox/faults",
        json={"script": [rng.choice([200, 200, 200, 503, 429]) for _ in range(40)]},
    )
    counts = {"accepted": 0, "duplicates": 0}
    with httpx.Client(timeout=10) as client:
        for (event_id, payload), copy in sends:
            url = cluster.ingest_urls[(hash(event_id) + copy) % 2]
            body, headers = signed(SECRET, payload, msg_id=event_id)
            answer = client.post(f"{url}/webhooks/demo", content=body, headers=headers)
            assert answer.status_code == 202, answer.text
            for k in counts:
                counts[k] += answer.json()[k]
    assert counts == {"accepted": 240, "duplicates": 80}

    r = redis.Redis.from_url(redis_url)
    try:
        wait_until(
            lambda: not r.keys(f"cb:p:{run}/*") and r.zcard("cb:inflight") == 0, timeout_s=60
        )
        assert r.zcard("cb:dlq") == 0
    finally:
        r.close()

    convos = httpx.get(f"{sandbox_url}/_sandbox/convos").json()
    newest: dict[tuple[str, str], tuple[str, object]] = {}
    tags: dict[tuple[str, str], tuple[str, bool]] = {}
    handoffs: dict[str, int] = {}
    for event_id, p in events:
        ver = version(int(p["occurred_at"]), "demo", event_id)  # type: ignore[call-overload]
        convo = str(p["convo_id"])
        for field, value in dict(p.get("set", {})).items():  # type: ignore[call-overload]
            if (convo, field) not in newest or newest[(convo, field)][0] < ver:
                newest[(convo, field)] = (ver, value)
        for op, names in dict(p.get("tags", {})).items():  # type: ignore[call-overload]
            for tag in names:
                if (convo, tag) not in tags or tags[(convo, tag)][0] < ver:
                    tags[(convo, tag)] = (ver, op == "add")
        if "handoff" in p:
            handoffs[convo] = handoffs.get(convo, 0) + 1
    for (convo, field), (_, value) in newest.items():
        assert convos[f"{run}/{convo}"][field] == value, (convo, field)
    for (convo, tag), (_, present) in tags.items():
        assert (tag in convos[f"{run}/{convo}"].get("tags", [])) is present, (convo, tag)
    for convo, n in handoffs.items():
        assert len(convos[f"{run}/{convo}"].get("handoffHistory", [])) == n, convo
    stats = httpx.get(f"{sandbox_url}/_sandbox/stats").json()
    assert stats["overlaps"] == 0
    assert stats["by_status"].get("503", 0) + stats["by_status"].get("429", 0) > 0
