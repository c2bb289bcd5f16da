"""Chaos soak: signed events through several `serve` and `worker` processes while the target
fails and holds some PATCHes past the client's timeout before applying them (in-doubt
writes), workers are killed with kill -9 or paused (SIGSTOP) past their leases and resumed
(SIGCONT), and Redis is killed with kill -9 and restarted.

    .venv/bin/python benchmarks/chaos_soak.py            # 20,000 events, 500 conversations
    .venv/bin/python benchmarks/chaos_soak.py --events 1500 --convos 60   # what CI runs
    .venv/bin/python benchmarks/chaos_soak.py --cluster   # on a 3-primary Redis Cluster

With --cluster, Redis is a local 3-primary cluster (tests/cluster.py, a replica each,
`[redis] durability = "replica"`) with RQ on a Redis of its own, and "Redis kill -9" kills a
primary: its replica is promoted, and the old one comes back as the new one's replica.

Senders behave like real ones: they retry until they get a 2xx (a 503 while Redis is down,
a refused connection), and some events are delivered twice, to the other ingest process.
At the end it checks, against the sandbox: every conversation holds its newest values and
tags, every handoff step is in handoffHistory exactly once, no two PATCHes of one
conversation overlapped, and nothing is left queued. Prints the figures; exits 1 on a
violation.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench import rss_mb, wait_http
from bridge.changes import version
from bridge.config import load_settings
from bridge.errors import StoreUnavailable
from bridge.local.redis_server import RedisServer, free_port
from bridge.store import Store
from tests.servers import cli, stop
from tests.signing import standard_headers

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FIELDS = ("title", "userName", "notes")


@dataclass
class Event:
    event_id: str
    payload: dict[str, Any]
    accepted: bool = False


@dataclass
class Chaos:
    worker_kills: int = 0
    worker_pauses: int = 0
    redis_restarts: int = 0
    send_retries: int = 0
    answers: Counter[int] = field(default_factory=Counter)
    peak_rss: dict[str, float] = field(default_factory=lambda: {"serve": 0.0, "worker": 0.0})


def make_events(n: int, convos: int, run: str, rng: random.Random) -> list[Event]:
    t0 = int(time.time() * 1000) - 86_400_000
    out = []
    for i in range(n):
        convo = f"c{rng.randrange(convos)}"
        at = t0 + rng.randrange(0, 50_000_000)  # arrival order unrelated to occurred_at
        p: dict[str, Any] = {"agent_id": run, "convo_id": convo, "occurred_at": at}
        roll = rng.random()
        if roll < 0.7:
            p["set"] = {rng.choice(FIELDS): f"v{i}"}
        elif roll < 0.9:
            tag = f"t{rng.randrange(6)}"
            p["tags"] = {"add": [tag]} if rng.random() < 0.6 else {"remove": [tag]}
        else:
            p["handoff"] = {"event": "requested", "team_key": "billing", "at": at}
        out.append(Event(f"{run}-{i}", p))
    return out


class Cluster:
    def __init__(self, tmp: Path, args: argparse.Namespace) -> None:
        self.tmp = tmp
        self.args = args
        self.redis: Any = RedisServer(tmp / "redis", appendfsync="always")
        self.rq: RedisServer | None = None
        self.redis_url = ""
        if args.cluster:
            from tests.cluster import RedisCluster

            self.redis = RedisCluster(tmp / "cluster")
            self.rq = RedisServer(tmp / "rq", appendfsync="always")
        self.sandbox_port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.config = tmp / "config.toml"
        self.config.write_text(
            '[sources.demo]\nkind = "standard"\nsecret_env = "DEMO_SECRET"\n'
            "[delivery]\nlease_s = 5\nrequest_timeout_s = 2\nin_doubt_quiet_s = 2\n"
            "backoff_initial_s = 0.2\nbackoff_max_s = 2\n"
            "coalesce_ms = 100\nmax_attempts = 12\n"
            '[log]\nlevel = "WARNING"\n'
            + (
                '[redis]\ndurability = "replica"\nreplica_timeout_ms = 1000\n'
                if args.cluster
                else ""
            )
        )
        self.serves: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.others: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []

    @property
    def env(self) -> dict[str, str]:
        return {
            "DEMO_SECRET": SECRET,
            "REDIS_URL": self.redis_url,
            "RQ_REDIS_URL": self.rq.url if self.rq else self.redis_url,
            "CONVOCORE_BASE_URL": self.sandbox_url,
            "CONVOCORE_API_TOKEN": "soak",
            "BRIDGE_CONFIG": str(self.config),
        }

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return cli(*args, env=self.env)

    def start(self) -> None:
        self.redis.start()
        self.redis_url = self.redis.url
        if self.rq is not None:
            self.rq.start()
        self.others.append(self.spawn("sandbox", "--port", str(self.sandbox_port), "--auto-create"))
        wait_http(f"{self.sandbox_url}/_sandbox/stats")
        httpx.post(
            f"{self.sandbox_url}/_sandbox/faults",
            json={
                "fail_rate": self.args.fail_rate,
                "throttle_rate": self.args.throttle_rate,
                "hold_rate": self.args.hold_rate,
                "hold_s": self.args.hold_s,
            },
        )
        for _ in range(self.args.serves):
            port = free_port()
            self.serves.append(self.spawn("serve", "--port", str(port)))
            self.urls.append(f"http://127.0.0.1:{port}")
        for _ in range(self.args.workers):
            self.workers.append(self.spawn("worker"))
        for url in self.urls:
            wait_http(f"{url}/healthz")

    def kill_a_worker(self, rng: random.Random) -> None:
        victim = self.workers.pop(rng.randrange(len(self.workers)))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.workers.append(self.spawn("worker"))

    def pause_a_worker(self, rng: random.Random) -> subprocess.Popen[bytes]:
        victim = self.workers[rng.randrange(len(self.workers))]
        victim.send_signal(signal.SIGSTOP)
        return victim

    def stop(self) -> None:
        for p in self.workers:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
        stop(self.serves + self.workers + self.others)
        self.redis.stop()
        if self.rq is not None:
            self.rq.stop()

    def kill_redis(self, rng: random.Random) -> None:
        """kill -9 Redis and start it again; on a cluster, a primary, started again (as its
        promoted replica's replica) once the cluster has failed over."""
        if self.rq is None:
            self.redis.kill()
            time.sleep(1.5)
            self.redis.start()
            return
        primaries = self.redis.primaries()
        victim = primaries[rng.randrange(len(primaries))]
        self.redis.kill(victim)
        self.redis.wait_promoted(victim)
        self.redis.restart(victim)

    def store(self) -> Store:
        settings = load_settings(self.config, self.env)
        return Store(settings.redis_url, durability=settings.redis, rq_url=settings.rq_url)


async def send_all(
    cluster: Cluster, events: list[Event], redeliver: float, chaos: Chaos, rng: random.Random
) -> None:
    plan = [(e, 0) for e in events] + [(e, 1) for e in events if rng.random() < redeliver]
    rng.shuffle(plan)
    queue: asyncio.Queue[tuple[Event, int]] = asyncio.Queue()
    for item in plan:
        queue.put_nowait(item)

    async def sender(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            event, copy = queue.get_nowait()
            body = orjson.dumps(event.payload)
            headers = standard_headers(SECRET, body, msg_id=event.event_id)
            url = cluster.urls[(hash(event.event_id) + copy) % len(cluster.urls)]
            deadline = time.time() + 120
            while True:
                try:
                    answer = await client.post(
                        f"{url}/webhooks/demo", content=body, headers=headers
                    )
                    chaos.answers[answer.status_code] += 1
                    if answer.status_code == 202:
                        event.accepted = True
                        break
                    if answer.status_code != 503:
                        raise SystemExit(f"unexpected answer {answer.status_code}: {answer.text}")
                except httpx.HTTPError:
                    chaos.answers[0] += 1
                if time.time() > deadline:
                    break  # never acknowledged: the sender would keep it; we do not count it
                chaos.send_retries += 1
                headers = standard_headers(SECRET, body, msg_id=event.event_id)  # fresh timestamp
                await asyncio.sleep(0.2)

    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(sender(client) for _ in range(cluster.args.concurrency)))


def chaos_loop(
    cluster: Cluster, chaos: Chaos, stop: threading.Event, rng: random.Random, redis_at: float
) -> None:
    started = time.time()
    next_kill = started + cluster.args.kill_every
    next_pause = started + cluster.args.pause_every
    paused: list[tuple[float, subprocess.Popen[bytes]]] = []  # (resume at, process)
    redis_done = False
    while not stop.wait(0.2):
        now = time.time()
        for at, p in [x for x in paused if x[0] <= now]:
            paused.remove((at, p))
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
        if now >= next_pause and not paused:  # past its lease: the others take over
            paused.append((now + cluster.args.pause_s, cluster.pause_a_worker(rng)))
            chaos.worker_pauses += 1
            next_pause = now + cluster.args.pause_every
        for p in cluster.serves:
            chaos.peak_rss["serve"] = max(
                chaos.peak_rss["serve"], rss_mb(p.pid) if p.poll() is None else 0
            )
        for p in cluster.workers:
            chaos.peak_rss["worker"] = max(
                chaos.peak_rss["worker"], rss_mb(p.pid) if p.poll() is None else 0
            )
        if now >= next_kill:
            cluster.kill_a_worker(rng)
            chaos.worker_kills += 1
            next_kill = now + cluster.args.kill_every
        if not redis_done and now - started >= redis_at:  # once, about a third of the way
            cluster.kill_redis(rng)
            chaos.redis_restarts += 1
            redis_done = True
    for _, p in paused:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)


def queue(cluster: Cluster) -> tuple[bool, set[str]]:
    """Whether nothing is queued or held, and the conversations with dead letters (the
    store's own reads: every shard, whatever the layout)."""

    async def read() -> tuple[bool, set[str]]:
        store = cluster.store()
        try:
            status = await store.status()
            done = status.queue_depth == 0 and status.in_flight == 0
            dead = {d.convo_id for d in await store.dead_letters(1_000_000) if d.convo_id}
            return done, dead
        finally:
            await store.close()

    return asyncio.run(read())


def _settled_now(cluster: Cluster) -> bool:
    try:
        return queue(cluster)[0]
    except StoreUnavailable:  # Redis restarting
        return False


def expected(
    events: list[Event],
) -> tuple[dict[tuple[str, str], Any], dict[tuple[str, str], bool], dict[str, int]]:
    """Newest value per field, tag state, and history length per conversation. History
    entries are keyed by requestedAt, in seconds here (time_unit "s"): two
    requests of one conversation in the same second are one entry."""
    values: dict[tuple[str, str], tuple[str, Any]] = {}
    tags: dict[tuple[str, str], tuple[str, bool]] = {}
    requested: dict[str, set[int]] = {}
    for e in events:
        if not e.accepted:
            continue
        p = e.payload
        ver = version(p["occurred_at"], "demo", e.event_id)
        convo = p["convo_id"]
        for f, v in p.get("set", {}).items():
            if (convo, f) not in values or values[(convo, f)][0] < ver:
                values[(convo, f)] = (ver, v)
        for op, names in p.get("tags", {}).items():
            for t in names:
                if (convo, t) not in tags or tags[(convo, t)][0] < ver:
                    tags[(convo, t)] = (ver, op == "add")
        if "handoff" in p:
            requested.setdefault(convo, set()).add(p["handoff"]["at"] // 1000)
    handoffs = {c: len(seconds) for c, seconds in requested.items()}
    return {k: v for k, (_, v) in values.items()}, {k: v for k, (_, v) in tags.items()}, handoffs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--convos", type=int, default=500)
    ap.add_argument("--serves", type=int, default=2)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=24, help="senders at once")
    ap.add_argument("--fail-rate", type=float, default=0.2, help="share of PATCHes answered 503")
    ap.add_argument(
        "--throttle-rate", type=float, default=0.05, help="share answered 429 + Retry-After"
    )
    ap.add_argument("--kill-every", type=float, default=3.0, help="seconds between worker kill -9s")
    ap.add_argument(
        "--pause-every", type=float, default=5.0, help="seconds between worker SIGSTOPs"
    )
    ap.add_argument(
        "--pause-s", type=float, default=7.0, help="how long a worker stays stopped (lease: 5 s)"
    )
    ap.add_argument(
        "--hold-rate",
        type=float,
        default=0.03,
        help="share of PATCHes the target holds past the client's 2 s timeout, then applies",
    )
    ap.add_argument("--hold-s", type=float, default=3.0, help="how long (≤ 2 s + quiet 2 s)")
    ap.add_argument("--redeliver", type=float, default=0.05, help="share of events sent twice")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--cluster", action="store_true", help="a local 3-primary Redis Cluster, not one server"
    )
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    run = f"soak{int(time.time())}"
    events = make_events(args.events, args.convos, run, rng)
    chaos = Chaos()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp), args)
        stop = threading.Event()
        try:
            cluster.start()
            # Redis dies about a third of the way through sending (estimated at ~600 events/s)
            redis_at = max(1.0, args.events / 600 / 3)
            chaos_thread = threading.Thread(
                target=chaos_loop,
                args=(cluster, chaos, stop, random.Random(args.seed + 1), redis_at),
                daemon=True,
            )
            chaos_thread.start()
            asyncio.run(send_all(cluster, events, args.redeliver, chaos, rng))
            sent_at = time.time()
            if chaos.redis_restarts == 0:  # sending finished first: Redis still dies once
                time.sleep(max(0.0, redis_at - (sent_at - started)) + 0.5)
            # the chaos goes on while the workers deliver, until the queue first empties
            # (or half a minute); then the last killed worker's lease expires and all settles
            chaos_until = time.time() + 30
            while time.time() < chaos_until and not _settled_now(cluster):
                time.sleep(0.25)
            stop.set()
            chaos_thread.join()
            deadline = time.time() + 180
            drained = False
            while time.time() < deadline and not drained:
                drained = _settled_now(cluster)
                time.sleep(0.25)
            _, dead = queue(cluster)
            convos = httpx.get(f"{cluster.sandbox_url}/_sandbox/convos", timeout=30).json()
            stats = httpx.get(f"{cluster.sandbox_url}/_sandbox/stats", timeout=30).json()
        finally:
            stop.set()
            cluster.stop()
    values, tags, handoffs = expected(events)
    stale = [
        k
        for k, v in values.items()
        if k[0] not in dead and convos.get(f"{run}/{k[0]}", {}).get(k[1]) != v
    ]
    wrong_tags = [
        k for k, present in tags.items()
        if k[0] not in dead and (k[1] in convos.get(f"{run}/{k[0]}", {}).get("tags", [])) is not present
    ]  # fmt: skip
    history = {c: len(convos.get(f"{run}/{c}", {}).get("handoffHistory", [])) for c in handoffs}
    missing_handoffs = sum(max(0, n - history[c]) for c, n in handoffs.items() if c not in dead)
    duplicate_handoffs = sum(max(0, history[c] - n) for c, n in handoffs.items())
    accepted = sum(e.accepted for e in events)
    lost = len(stale) + len(wrong_tags) + missing_handoffs
    rows = [
        ("events sent / accepted (2xx)", f"{len(events)} / {accepted}"),
        ("conversations", f"{args.convos} ({len(dead)} with dead letters)"),
        (
            "sender answers",
            ", ".join(f"{k or 'conn error'}: {v}" for k, v in sorted(chaos.answers.items())),
        ),
        (
            "PATCHes by status",
            ", ".join(f"{k}: {v}" for k, v in sorted(stats["by_status"].items())),
        ),
        ("PATCHes held past the client timeout, applied late", str(stats["held"])),
        (
            "worker kill -9s / SIGSTOP+SIGCONTs / Redis kill -9 + restarts",
            f"{chaos.worker_kills} / {chaos.worker_pauses} / {chaos.redis_restarts}",
        ),
        ("lost (accepted, neither applied nor dead-lettered)", str(lost)),
        ("stale values / wrong tags", f"{len(stale)} / {len(wrong_tags)}"),
        ("handoff entries missing / duplicated", f"{missing_handoffs} / {duplicate_handoffs}"),
        ("overlapping PATCHes of one conversation", str(stats["overlaps"])),
        ("queue drained", str(drained)),
        (
            "peak RSS serve / worker",
            f"{chaos.peak_rss['serve']:.0f} / {chaos.peak_rss['worker']:.0f} MB",
        ),
        ("duration", f"{time.time() - started:.0f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    ok = (
        accepted == len(events)
        and lost == 0
        and duplicate_handoffs == 0
        and stats["overlaps"] == 0
        and drained
    )
    print("verdict:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
