"""convo-bridge benchmarks: prints a table of figures. Not part of the test suite.

    .venv/bin/python benchmarks/bench.py [--quick]

Starts its own Redis (AOF everysec), sandbox, `serve` and two `worker` processes, on this
machine, and measures: ingest req/s and p99 with wrk (vs a bare HMAC+LPUSH app), delivery
rate of 2,000 intents on distinct conversations (vs one bare httpx keep-alive PATCH loop),
webhook → PATCH latency at 200 events/s, coalescing of 1,000 updates to 10 conversations
with a 20 ms target, resident memory of serve and worker, and the same delivery as one RQ
job per intent run by two `rq worker -w rq.SimpleWorker` (benchmarks/rq_patch.py).
`--only durability` (not in the default set): ingest with [redis] durability = "local" vs
"replica" on a primary + replica, side by side. `--only redis` (not in the default set): what
an event costs Redis (CPU µs for ingest and delivery, commands run inside the scripts, round
trips) and what an idle worker costs it (benchmarks/redis_cost.py).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bridge.local.redis_server import RedisServer, free_port
from tests.servers import cli, spawn, stop
from tests.signing import standard_headers

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PY = sys.executable
ROOT = Path(__file__).resolve().parents[1]


def wait_http(url: str, timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Rig:
    def __init__(self, tmp: Path, log_level: str = "INFO") -> None:
        self.tmp = tmp
        self.log_level = log_level
        self.redis = RedisServer(tmp / "redis", appendfsync="everysec")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.redis.start()
        self.sandbox_port, self.serve_port, self.bare_port = free_port(), free_port(), free_port()
        self.nolog_port = free_port()
        config = self.tmp / "config.toml"
        config.write_text(
            '[sources.demo]\nkind = "standard"\nsecret_env = "DEMO_SECRET"\n'
            f'[log]\nlevel = "{self.log_level}"\n'
        )
        nolog = self.tmp / "nolog.toml"  # the same serve with [eventlog] off, for its bench row
        nolog.write_text(config.read_text() + "[eventlog]\nenabled = false\n")
        self.env = {
            "PYTHONPATH": str(ROOT),  # the bare app is imported as benchmarks.bare_app
            "DEMO_SECRET": SECRET,
            "REDIS_URL": self.redis.url,
            "BRIDGE_CONFIG": str(config),
            "CONVOCORE_API_TOKEN": "bench",
            "CONVOCORE_BASE_URL": f"http://127.0.0.1:{self.sandbox_port}",
        }
        self.sandbox_url = self.env["CONVOCORE_BASE_URL"]
        self.serve_url = f"http://127.0.0.1:{self.serve_port}"
        self.bare_url = f"http://127.0.0.1:{self.bare_port}"
        self.own(cli("sandbox", "--port", str(self.sandbox_port), "--auto-create", env=self.env))
        self.serve = self.own(cli("serve", "--port", str(self.serve_port), env=self.env))
        self.own(
            cli(
                "serve",
                "--port",
                str(self.nolog_port),
                env={**self.env, "BRIDGE_CONFIG": str(nolog)},
            )
        )
        self.nolog_url = f"http://127.0.0.1:{self.nolog_port}"
        spawned = spawn(
            [
                PY,
                "-m",
                "uvicorn",
                "benchmarks.bare_app:app",
                "--port",
                str(self.bare_port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            self.env,
        )
        self.own(spawned)
        for url in (
            self.sandbox_url + "/_sandbox/stats",
            self.serve_url + "/healthz",
            self.nolog_url + "/healthz",
            self.bare_url + "/",
        ):
            wait_http(url)

    def own(self, proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self.procs.append(proc)
        return proc

    def start_workers(self, n: int) -> None:
        for _ in range(n):
            self.workers.append(self.own(cli("worker", env=self.env)))

    def stop_workers(self) -> None:
        stop(self.workers, 30)
        self.workers.clear()

    def reset(self) -> None:
        redis.Redis.from_url(self.redis.url).flushall()
        httpx.delete(f"{self.sandbox_url}/_sandbox/log?all=1")
        httpx.delete(f"{self.sandbox_url}/_sandbox/faults")

    def stop(self) -> None:
        stop(self.procs)
        self.redis.stop()


def intent(convo: str, at: int, **fields: object) -> dict[str, object]:
    return {"agent_id": "bench", "convo_id": convo, "occurred_at": at, "set": fields}


async def post_all(url: str, payloads: list[dict[str, object]], concurrency: int) -> list[float]:
    """POST signed intents with `concurrency` at once; returns each send time."""
    sent: list[float] = [0.0] * len(payloads)
    queue = list(enumerate(payloads))
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one() -> None:
            while queue:
                i, p = queue.pop(0)
                body = orjson.dumps(p)
                sent[i] = time.time()
                r = await client.post(
                    f"{url}/webhooks/demo", content=body, headers=standard_headers(SECRET, body)
                )
                assert r.status_code == 202, r.text

        await asyncio.gather(*(one() for _ in range(concurrency)))
    return sent


def patches(rig: Rig) -> list[dict[str, object]]:
    log: list[dict[str, object]] = httpx.get(f"{rig.sandbox_url}/_sandbox/log", timeout=30).json()
    return log


def wait_patched(rig: Rig, n: int, timeout: float = 120) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        stats = httpx.get(f"{rig.sandbox_url}/_sandbox/stats").json()
        if stats["by_status"].get("200", 0) >= n:
            return time.time()
        time.sleep(0.02)
    raise SystemExit(f"only {stats} of {n} patched")


def bench_delivery(rig: Rig, n: int) -> tuple[float, float]:
    rig.reset()
    asyncio.run(
        post_all(
            rig.serve_url, [intent(f"d{i}", 1_764_000_000_000, messagesNum=i) for i in range(n)], 32
        )
    )
    start = time.time()
    rig.start_workers(2)
    done = wait_patched(rig, n)
    # workers need ~0.4 s to start; measure from the first PATCH they send
    first = min(float(p["received_at"]) for p in patches(rig))  # type: ignore[arg-type]
    ours = n / (done - max(first, start))
    rig.stop_workers()

    async def bare() -> float:
        async with httpx.AsyncClient(base_url=rig.sandbox_url) as client:
            t = time.time()
            for i in range(n):
                await client.patch(
                    f"/agents/bench/convos/b{i}", json={"conversation": {"messagesNum": i}}
                )
            return n / (time.time() - t)

    return ours, asyncio.run(bare())


def bench_rq_jobs(rig: Rig, n: int) -> float:
    """The delivery row's n intents as n RQ jobs (one PATCH each) on their own queue, run by
    two `rq worker -w rq.SimpleWorker --burst`: PATCHes/s from the first to the last."""
    from rq import Queue

    rig.reset()
    conn = redis.Redis.from_url(rig.redis.url)
    queue = Queue("bench-rq", connection=conn)
    queue.enqueue_many(
        [
            Queue.prepare_data(
                "benchmarks.rq_patch.patch",
                (rig.sandbox_url, f"q{i}", {"messagesNum": i}),
                result_ttl=0,
            )
            for i in range(n)
        ]
    )
    conn.close()
    start = time.time()
    workers = [
        rig.own(
            spawn(
                [PY, "-m", "rq.cli", "worker", "-w", "rq.SimpleWorker", "--burst", "-q",
                 "-u", rig.redis.url, "bench-rq"],
                rig.env,
            )
        )
        for _ in range(2)
    ]  # fmt: skip
    done = wait_patched(rig, n, timeout=600)
    first = min(float(p["received_at"]) for p in patches(rig))  # type: ignore[arg-type]
    stop(workers, 30)
    return n / (done - max(first, start))


def bench_latency(rig: Rig, rate: int, seconds: float) -> tuple[float, float]:
    """Webhook → PATCH at a steady `rate`: the sender runs one unmeasured second first, so
    first connections and first script loads do not count as steady state."""
    rig.reset()
    rig.start_workers(2)
    time.sleep(1.5)
    warmup, total = rate, int(rate * seconds)
    sent: dict[str, float] = {}

    async def run() -> None:
        async with httpx.AsyncClient() as client:
            t0 = time.time()
            tasks = []
            for i in range(warmup + total):
                due = t0 + i / rate
                await asyncio.sleep(max(0.0, due - time.time()))
                convo = f"w{i}" if i < warmup else f"l{i}"
                body = orjson.dumps(intent(convo, 1_764_000_000_000, messagesNum=i))
                sent[convo] = time.time()
                tasks.append(
                    asyncio.create_task(
                        client.post(
                            f"{rig.serve_url}/webhooks/demo",
                            content=body,
                            headers=standard_headers(SECRET, body),
                        )
                    )
                )
            await asyncio.gather(*tasks)

    gc.collect()
    gc.freeze()  # the sender's own collector pauses would count as the bridge's latency
    asyncio.run(run())
    wait_patched(rig, warmup + total)
    lat = sorted(
        (float(p["received_at"]) - sent[str(p["convo"])]) * 1000  # type: ignore[arg-type]
        for p in patches(rig)
        if str(p["convo"]).startswith("l")
    )
    rig.stop_workers()
    return statistics.median(lat), lat[int(len(lat) * 0.99) - 1]


def bench_coalescing(rig: Rig) -> tuple[int, bool]:
    rig.reset()
    httpx.post(f"{rig.sandbox_url}/_sandbox/faults", json={"latency_ms": 20})
    rig.start_workers(2)
    time.sleep(1.5)
    payloads = [intent(f"k{i % 10}", 1_764_000_000_000 + i, messagesNum=i) for i in range(1000)]
    asyncio.run(post_all(rig.serve_url, payloads, 16))
    deadline = time.time() + 60
    newest = {f"k{c}": 990 + c for c in range(10)}
    ok = False
    while time.time() < deadline and not ok:
        convos = httpx.get(f"{rig.sandbox_url}/_sandbox/convos").json()
        ok = all(convos.get(f"bench/{c}", {}).get("messagesNum") == v for c, v in newest.items())
        time.sleep(0.1)
    count = len(patches(rig))
    rig.stop_workers()
    return count, ok


# Distinct signed requests in a wrk script: more than a run sends (~8,000/s for 10 s here).
# With 20,000, three quarters of a 10 s ingest run were re-sends, answered "duplicate": the
# cheaper path, and in the Redis figures a per-webhook cost of mostly duplicates.
DISTINCT_REQUESTS = 200_000
DISTINCT_LINE = "-- distinct requests: "  # a wrk script's first line: what wrk() checks against


def wrk_lua(path: Path, n: int) -> None:
    """A wrk script cycling through `n` pre-signed, distinct requests. They are read from a
    data file beside it (one request a line: body, then header name and value, tab-separated)
    when wrk loads the script: written as Lua statements, LuaJIT refuses a chunk of more than
    65,536 constants, and wrk then sends its default GET instead (every answer a 405)."""
    data = path.with_suffix(".data")
    lines = []
    for i in range(n):
        body = orjson.dumps(intent(f"w{i % 5000}", 1_764_000_000_000 + i, messagesNum=i))
        h = standard_headers(SECRET, body)
        lines.append("\t".join([body.decode(), *(x for kv in h.items() for x in kv)]))
    data.write_text("\n".join(lines) + "\n")
    path.write_text(
        f"""{DISTINCT_LINE}{n}
local reqs = {{}}
for line in io.lines({orjson.dumps(str(data)).decode()}) do
  local f = {{}}
  for part in string.gmatch(line, "[^\\t]+") do f[#f + 1] = part end
  local headers = {{}}
  for j = 2, #f, 2 do headers[f[j]] = f[j + 1] end
  reqs[#reqs + 1] = wrk.format("POST", "/webhooks/demo", headers, f[1])
end
local i = 0
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
"""
    )


def signed_script(tmp: Path) -> Path:
    """The wrk script of DISTINCT_REQUESTS signed requests in `tmp`, made once."""
    script = tmp / "signed.lua"
    if not script.exists():
        wrk_lua(script, DISTINCT_REQUESTS)
    return script


def wrk_counts(out: str) -> tuple[int, int]:
    """From wrk's report: requests sent, and answers that were not 2xx or 3xx."""
    sent = re.search(r"(\d+) requests in", out)
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert sent is not None, out
    return int(sent.group(1)), int(refused.group(1)) if refused else 0


def wrk(url: str, script: Path, seconds: int) -> tuple[float, float]:
    out = subprocess.run(
        ["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sent, refused = wrk_counts(out)
    if refused:
        print(f"warning: {refused:,} of {sent:,} answers were not 2xx", file=sys.stderr)
    with script.open() as f:
        first = f.readline()
    if first.startswith(DISTINCT_LINE) and sent > (distinct := int(first[len(DISTINCT_LINE) :])):
        print(
            f"warning: wrk sent {sent:,} requests, more than the script's {distinct:,} distinct"
            " ones: the rest were re-sends, answered as duplicates",
            file=sys.stderr,
        )
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert m is not None
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return rate, p99


def bench_durability(tmp: Path, script: Path, secs: int, log_level: str) -> list[tuple[str, ...]]:
    """Ingest on a primary (AOF everysec) with one replica (valkey-server, AOF fsync always):
    one `serve` with [redis] durability = "local", one with "replica", each measured twice
    with wrk, alternately, on the same servers. Returns the table's rows."""
    from bridge.local.redis_server import valkey_binary

    primary = RedisServer(tmp / "primary", binary=valkey_binary(), appendfsync="everysec")
    primary.start()
    replica = RedisServer(
        tmp / "replica",
        binary=valkey_binary(),
        appendfsync="always",
        extra_args=["--replicaof", "127.0.0.1", str(primary.port)],
    )
    replica.start()
    conn = redis.Redis(port=primary.port)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        while conn.wait(1, 100) < 1:
            time.sleep(0.1)
        urls: dict[str, str] = {}
        for durability in ("local", "replica"):
            config = tmp / f"{durability}.toml"
            config.write_text(
                '[sources.demo]\nkind = "standard"\nsecret_env = "DEMO_SECRET"\n'
                f'[log]\nlevel = "{log_level}"\n[redis]\ndurability = "{durability}"\n'
            )
            port = free_port()
            env = {
                "DEMO_SECRET": SECRET,
                "REDIS_URL": primary.url,
                "BRIDGE_CONFIG": str(config),
                "CONVOCORE_BASE_URL": "http://127.0.0.1:9",
            }
            procs.append(cli("serve", "--port", str(port), env=env))
            urls[durability] = f"http://127.0.0.1:{port}"
            wait_http(urls[durability] + "/healthz")
        runs: dict[str, list[tuple[float, float]]] = {"local": [], "replica": []}
        for _ in range(2):
            for durability, url in urls.items():
                conn.flushall()
                conn.wait(1, 1000)
                runs[durability].append(wrk(url, script, secs))
    finally:
        stop(procs)
        conn.close()
        replica.stop()
        primary.stop()
    rate = {d: statistics.mean(r for r, _ in v) for d, v in runs.items()}
    p99 = {d: statistics.mean(p for _, p in v) for d, v in runs.items()}
    return [
        (
            "ingest req/s, durability local | replica",
            f"{rate['local']:,.0f} | {rate['replica']:,.0f}",
            "primary + 1 replica (fsync always)",
            f"ratio {rate['replica'] / rate['local']:.2f} (≥ 0.8)",
        ),
        (
            "ingest p99 ms, durability local | replica",
            f"{p99['local']:.1f} | {p99['replica']:.1f}",
            "WAIT + WAITAOF pipelined",
            f"ratio {p99['replica'] / p99['local']:.2f}",
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller runs")
    ap.add_argument(
        "--only",
        choices=[
            "ingest",
            "delivery",
            "rq",
            "latency",
            "coalescing",
            "memory",
            "durability",
            "redis",
        ],
        action="append",
        help="run only these parts (repeatable)",
    )
    ap.add_argument(
        "--log-level",
        default="INFO",
        help="serve/worker log level, INFO by default as in production",
    )
    args = ap.parse_args()
    parts = set(args.only or ["ingest", "delivery", "rq", "latency", "coalescing", "memory"])
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(Path(tmp), args.log_level)
        rig.start()
        try:
            if "ingest" not in parts:
                pass
            elif shutil.which("wrk"):
                script = signed_script(Path(tmp))
                secs = 5 if args.quick else 10
                rig.reset()
                ours, ours_p99 = wrk(rig.serve_url, script, secs)
                rig.reset()
                nolog, nolog_p99 = wrk(rig.nolog_url, script, secs)
                rig.reset()
                bare, bare_p99 = wrk(rig.bare_url, script, secs)
                rows.append(
                    (
                        "ingest req/s (wrk, 64 conns)",
                        f"{ours:,.0f}",
                        f"bare {bare:,.0f}",
                        f"ratio {ours / bare:.2f} (≥ 0.85)",
                    )
                )
                rows.append(
                    (
                        "ingest req/s, event log on vs off",
                        f"{ours:,.0f}",
                        f"off {nolog:,.0f} (p99 {ours_p99:.1f} vs {nolog_p99:.1f} ms)",
                        f"ratio {ours / nolog:.2f} (≥ 0.9)",
                    )
                )
                rows.append(
                    (
                        "ingest p99 ms",
                        f"{ours_p99:.1f}",
                        f"bare {bare_p99:.1f}",
                        f"ratio {ours_p99 / bare_p99:.2f} (≤ 2)",
                    )
                )
            else:
                rows.append(("ingest (wrk)", "skipped", "wrk not installed", "apt-get install wrk"))
            n = 1000 if args.quick else 2000
            if "delivery" in parts:
                ours, bare = bench_delivery(rig, n)
                rows.append(
                    (
                        f"delivery {n} convos, 2 workers /s",
                        f"{ours:,.0f}",
                        f"bare loop {bare:,.0f}",
                        f"ratio {ours / bare:.2f} (≥ 1.3)",
                    )
                )
            if "rq" in parts:
                jobs = bench_rq_jobs(rig, n)
                rows.append(
                    (
                        f"same {n} intents as RQ jobs, 2 rq SimpleWorkers /s",
                        f"{jobs:,.0f}",
                        f"ours {ours:,.0f}" if "delivery" in parts else "",
                        "no order, coalescing or newest-wins",
                    )
                )
            if "latency" in parts:
                p50, p99 = bench_latency(rig, 200, 5 if args.quick else 10)
                rows.append(
                    ("webhook→PATCH ms at 200/s", f"p50 {p50:.1f}", f"p99 {p99:.1f}", "p99 ≤ 15")
                )
            if "coalescing" in parts:
                count, ok = bench_coalescing(rig)
                rows.append(
                    (
                        "1,000 updates / 10 convos, 20 ms target",
                        f"{count} PATCHes",
                        "newest values" if ok else "STALE VALUES",
                        "≤ 50",
                    )
                )
            if "durability" in parts and shutil.which("wrk"):
                script = signed_script(Path(tmp))
                durable = Path(tmp) / "durability"
                durable.mkdir()
                rows += bench_durability(durable, script, 5 if args.quick else 10, args.log_level)
            if "redis" in parts:
                from benchmarks.redis_cost import measure

                rows += measure(rig, seconds=5 if args.quick else 10).rows(150)
                if shutil.which("wrk"):
                    from benchmarks.redis_cost import saturated

                    rows += saturated(rig, signed_script(Path(tmp)), 4 if args.quick else 7).rows()
            if "memory" in parts:
                rig.start_workers(1)
                time.sleep(1)
                rows.append(
                    (
                        "RSS MB",
                        f"serve {rss_mb(rig.serve.pid):.0f}",
                        f"worker {rss_mb(rig.workers[0].pid):.0f}",
                        "≤ 120 each",
                    )
                )
                rig.stop_workers()
        finally:
            rig.stop()
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(width[i]) for i, c in enumerate(r)))


if __name__ == "__main__":
    main()
