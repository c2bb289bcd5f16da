"""What an event costs Redis: `bench.py --only redis`.

Three runs at a steady rate on the bench rig (one `serve`, Redis with AOF everysec):

- ingest alone (no worker running): Redis CPU per accepted event;
- ingest and delivery together (two workers): Redis CPU per event, from which the ingest
  figure is subtracted to give delivery's;
- the same again with a MONITOR connection attached, counting each command a client sent
  (a round trip) and each command a script ran, per script; MONITOR costs Redis CPU of its
  own, so no CPU figure is read from that run.

Plus idle workers: Redis CPU per second per worker with no traffic (serve alone subtracted).
CPU is `INFO cpu` used_cpu_sys + used_cpu_user, the whole server process (AOF included),
less Redis's own idle CPU (measured first, with only `serve` running) over each run's time.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_args

import httpx
import orjson
import redis

from bridge.store.scripts import ScriptName, source
from tests.signing import standard_headers

if TYPE_CHECKING:
    from benchmarks.bench import Rig

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
INGEST_SCRIPTS = {"accept"}


def script_us(conn: redis.Redis) -> float:
    """Time spent running scripts (commandstats' EVALSHA + EVAL usec, their commands
    included; network reads and writes are not)."""
    stats = conn.info("commandstats")
    return sum(float(stats.get(f"cmdstat_{c}", {}).get("usec", 0)) for c in ("evalsha", "eval"))


def cpu_seconds(conn: redis.Redis) -> float:
    info = conn.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def send_steady(
    serve_url: str,
    rate: float,
    count: int,
    convo: Any,
    sent: dict[str, float] | None = None,
) -> None:
    """POST `count` signed intents at `rate` per second; intent i goes to `convo(i)` and sets
    messagesNum = i. `sent` gets each event's send time by event id `e<i>`. Answers are
    checked as they come and not kept, and the collector is off while sending: a full
    collection over a growing heap pauses the sender, and a late send would count as the
    bridge's latency (it grew by ~75 ms a minute over a 6-minute soak)."""
    wrong: list[str] = []
    pending: set[asyncio.Task[httpx.Response]] = set()

    def answered(task: asyncio.Task[httpx.Response]) -> None:
        pending.discard(task)
        if task.cancelled() or task.exception() is not None:
            wrong.append(repr(task.exception()))
        elif task.result().status_code != 202:
            wrong.append(task.result().text)

    collecting = gc.isenabled()
    gc.disable()
    try:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64)) as client:
            t0 = time.time()
            for i in range(count):
                await asyncio.sleep(max(0.0, t0 + i / rate - time.time()))
                payload = {
                    "agent_id": "bench",
                    "convo_id": convo(i),
                    "occurred_at": 1_764_000_000_000 + i,
                    "set": {"messagesNum": i},
                }
                body = orjson.dumps(payload)
                if sent is not None:
                    sent[f"e{i}"] = time.time()
                headers = standard_headers(SECRET, body, msg_id=f"e{i}")
                task = asyncio.create_task(
                    _post(client, f"{serve_url}/webhooks/demo", body, headers)
                )
                pending.add(task)
                task.add_done_callback(answered)
            while pending:
                await asyncio.wait(set(pending))
    finally:
        if collecting:
            gc.enable()
    assert not wrong, f"{len(wrong)} of {count} not answered 202, e.g. {wrong[0]}"


async def _post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    """POST as a sender does: sent again, same webhook id, when the connection failed under
    it. A kept-alive connection the server closes for idleness as the request goes out is
    a race every HTTP client meets now and then (httpx does not resend a POST); the resend
    is deduplicated if the first had arrived."""
    for _ in range(2):
        try:
            return await client.post(url, content=body, headers=headers)
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            continue
    return await client.post(url, content=body, headers=headers)


@dataclass
class Monitor:
    """Counts what Redis runs, from a MONITOR connection in a thread: commands sent by
    clients (round trips) and commands run inside scripts, each by name; script commands
    are put on the script whose EVALSHA precedes them (Redis 7 and Valkey show a script,
    then its commands: a script runs alone)."""

    url: str
    sent: Counter[str] = field(default_factory=Counter)
    inside: Counter[str] = field(default_factory=Counter)  # "<script> <COMMAND>"
    scripts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._names = {
            hashlib.sha1(source(n).encode()).hexdigest(): n  # Redis names a script by its SHA-1
            for n in get_args(ScriptName)
        }
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Monitor:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        redis.Redis.from_url(self.url).ping()  # one more line wakes the reader
        self._thread.join(10)

    def _run(self) -> None:
        conn = redis.Redis.from_url(self.url)
        script = "?"
        with conn.monitor() as m:
            self._ready.set()
            for line in m.listen():
                if self._stop.is_set():
                    break
                words = line["command"].split(" ", 2)
                name = words[0].upper()
                if line.get("client_type") == "lua":
                    self.inside[f"{script} {name}"] += 1
                    continue
                self.sent[name] += 1
                if name in ("EVALSHA", "EVAL") and len(words) > 1:
                    script = self._names.get(words[1], "other") if name == "EVALSHA" else "eval"
                    self.scripts[script] += 1
        conn.close()


@dataclass
class Saturated:
    """Redis CPU under wrk (64 connections), where concurrent calls share script calls:
    what a core carries. Ingest alone, then with two workers delivering meanwhile."""

    webhooks_per_s: float
    ingest_us: float  # per webhook, ingest alone
    patches_per_s: float  # with the workers
    delivery_us: float  # per PATCH: the run's CPU less its webhooks' ingest figure

    def rows(self) -> list[tuple[str, str, str, str]]:
        per_core = 1e6 / (
            self.ingest_us + self.delivery_us * self.patches_per_s / self.webhooks_per_s
        )
        return [
            (
                "Redis CPU µs at saturation (wrk): ingest/webhook | delivery/PATCH",
                f"{self.ingest_us:.0f} | {self.delivery_us:.0f}",
                f"{self.webhooks_per_s:,.0f} webhooks/s, {self.patches_per_s:,.0f} PATCHes/s; "
                f"one core: ~{per_core:,.0f} webhooks/s",
                "",
            )
        ]


def saturated(rig: Rig, script: Any, seconds: int) -> Saturated:
    """`script`: a wrk script of signed requests (bench.wrk_lua)."""
    from benchmarks.bench import wrk

    conn = redis.Redis.from_url(rig.redis.url)
    rig.reset()
    before = cpu_seconds(conn)
    alone, _ = wrk(rig.serve_url, script, seconds)
    ingest = (cpu_seconds(conn) - before) / (alone * seconds)
    rig.reset()
    rig.start_workers(2)
    time.sleep(2)
    patched = httpx.get(f"{rig.sandbox_url}/_sandbox/stats").json()["patches"]
    before = cpu_seconds(conn)
    rate, _ = wrk(rig.serve_url, script, seconds)
    used = cpu_seconds(conn) - before
    patches = (httpx.get(f"{rig.sandbox_url}/_sandbox/stats").json()["patches"] - patched) / seconds
    rig.stop_workers()
    conn.close()
    delivery = (used - ingest * rate * seconds) / max(patches * seconds, 1)
    return Saturated(rate, ingest * 1e6, patches, delivery * 1e6)


@dataclass
class RedisCost:
    ingest_us: float
    total_us: float
    ingest_script_us: float
    total_script_us: float
    idle_ms_per_s: float
    events: int
    monitor: Monitor

    @property
    def delivery_us(self) -> float:
        return self.total_us - self.ingest_us

    def rows(self, rate: float) -> list[tuple[str, str, str, str]]:
        n = self.events
        m = self.monitor
        ingest_in = sum(v for k, v in m.inside.items() if k.split()[0] in INGEST_SCRIPTS)
        delivery_in = sum(m.inside.values()) - ingest_in
        trips = sum(m.sent.values())
        accept_trips = sum(v for k, v in m.scripts.items() if k in INGEST_SCRIPTS)
        top = ", ".join(f"{k} {v / n:.2f}" for k, v in m.sent.most_common(5))
        heavy = ", ".join(
            f"{k} {v / n:.2f}" for k, v in m.inside.most_common(6) if k.split()[0] != "accept"
        )
        return [
            (
                f"Redis CPU µs/event at {rate:g}/s: ingest | delivery",
                f"{self.ingest_us:.0f} | {self.delivery_us:.0f}",
                f"{n:,} events, total {self.total_us:.0f}",
                "≤ 25 | ≤ 75",
            ),
            (
                "  of which inside scripts (commandstats)",
                f"{self.ingest_script_us:.0f} | {self.total_script_us - self.ingest_script_us:.0f}",
                "",
                "",
            ),
            (
                "commands/event inside scripts: ingest | delivery",
                f"{ingest_in / n:.1f} | {delivery_in / n:.1f}",
                heavy,
                "",
            ),
            (
                "round trips/event: all | accept | rest",
                f"{trips / n:.2f} | {accept_trips / n:.2f} | {(trips - accept_trips) / n:.2f}",
                top,
                "",
            ),
            (
                "idle worker Redis CPU ms/s",
                f"{self.idle_ms_per_s:.2f}",
                "per worker, serve's idle subtracted",
                "≤ 1",
            ),
        ]


def _wait_delivered(rig: Rig, n: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        stats = httpx.get(f"{rig.sandbox_url}/_sandbox/stats").json()
        if stats["by_status"].get("200", 0) >= n:
            return
        time.sleep(0.05)
    raise SystemExit(f"only {stats} of {n} patched")


def measure(rig: Rig, rate: float = 150, seconds: float = 10, idle_s: float = 5) -> RedisCost:
    conn = redis.Redis.from_url(rig.redis.url)
    n = int(rate * seconds)
    gc.collect()
    gc.freeze()

    # idle: serve alone (Redis's own background work: the baseline every figure leaves out),
    # then with two workers
    rig.reset()
    base = cpu_seconds(conn)
    time.sleep(idle_s)
    baseline = (cpu_seconds(conn) - base) / idle_s  # CPU s per s
    rig.start_workers(2)
    time.sleep(2)
    base = cpu_seconds(conn)
    time.sleep(idle_s)
    with_workers = (cpu_seconds(conn) - base) / idle_s
    rig.stop_workers()
    idle = max(0.0, with_workers - baseline) * 1000 / 2

    def run(prefix: str, workers: bool) -> tuple[float, float]:
        rig.reset()
        if workers:
            rig.start_workers(2)
            time.sleep(2)
        before, started, scripts = cpu_seconds(conn), time.monotonic(), script_us(conn)
        asyncio.run(send_steady(rig.serve_url, rate, n, lambda i: f"{prefix}{i}"))
        if workers:
            _wait_delivered(rig, n)
        used = cpu_seconds(conn) - before - baseline * (time.monotonic() - started)
        scripts = script_us(conn) - scripts
        if workers:
            rig.stop_workers()
        return used * 1e6 / n, scripts / n

    ingest, ingest_scripts = run("i", workers=False)
    total, total_scripts = run("t", workers=True)
    rig.reset()
    rig.start_workers(2)
    time.sleep(2)
    with Monitor(rig.redis.url) as monitor:
        asyncio.run(send_steady(rig.serve_url, rate, n, lambda i: f"m{i}"))
        _wait_delivered(rig, n)
        time.sleep(0.5)  # the last settles
    rig.stop_workers()
    monitor.sent.pop("MONITOR", None)
    monitor.sent.pop("PING", None)
    conn.close()
    return RedisCost(ingest, total, ingest_scripts, total_scripts, idle, n, monitor)
