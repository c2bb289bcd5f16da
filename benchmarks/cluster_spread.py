"""The bridge on a local 3-primary Redis Cluster against one Redis server: how evenly the work
spreads over the primaries, and the end-to-end rate of each.

    python -m benchmarks.cluster_spread [--events 6000] [--convos 3000]

One `serve`, two `worker` processes and the sandbox, with the same events on both layouts:
`--events` signed webhooks over `--convos` conversations, 32 at a time, workers already
running; the rate is events from the first POST to the last PATCH (so coalescing counts).
On the cluster (tests/cluster.py: valkey, three primaries with a replica each, RQ on a
Redis of its own) it prints, per primary, the keys, the commands processed and the CPU
(INFO deltas over the run), and how far each is from the mean; then cluster / single rate.
Prints figures; asserts nothing (the spread's bound is tests/bridge/store/test_store_cluster.py).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from benchmarks.bench import SECRET, intent, post_all, wait_http
from bridge.local.redis_server import RedisServer, free_port
from tests.cluster import RedisCluster
from tests.servers import cli, stop


def _figures(conn: redis.Redis) -> tuple[int, float, int]:
    info = conn.info()
    return (
        int(info["total_commands_processed"]),
        float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
        int(conn.dbsize()),
    )


def run(redis_url: str, rq_url: str, tmp: Path, events: int, convos: int, primaries: Any) -> float:
    """Events/s end to end on `redis_url`; `primaries`: () or (cluster, their indexes)."""
    sandbox_port, serve_port = free_port(), free_port()
    config = tmp / "config.toml"
    config.write_text(
        '[sources.demo]\nkind = "standard"\nsecret_env = "DEMO_SECRET"\n[log]\nlevel = "WARNING"\n'
    )
    env = {
        "DEMO_SECRET": SECRET,
        "REDIS_URL": redis_url,
        "RQ_REDIS_URL": rq_url,
        "BRIDGE_CONFIG": str(config),
        "CONVOCORE_API_TOKEN": "bench",
        "CONVOCORE_BASE_URL": f"http://127.0.0.1:{sandbox_port}",
    }
    procs = [cli("sandbox", "--port", str(sandbox_port), "--auto-create", env=env)]
    try:
        procs.append(cli("serve", "--port", str(serve_port), env=env))
        sandbox, serve = env["CONVOCORE_BASE_URL"], f"http://127.0.0.1:{serve_port}"
        wait_http(sandbox + "/_sandbox/stats")
        wait_http(serve + "/healthz")
        procs += [cli("worker", env=env) for _ in range(2)]
        time.sleep(2.0)  # the workers registered and looking
        before = {i: _figures(c) for i, c in primaries}
        at = 1_764_000_000_000
        payloads = [intent(f"c{n % convos}", at + n, messagesNum=n) for n in range(events)]
        began = time.time()
        asyncio.run(post_all(serve, payloads, 32))
        want = min(events, convos)  # coalescing: at least one PATCH per conversation
        deadline = time.time() + 300
        while time.time() < deadline:
            stats = httpx.get(f"{sandbox}/_sandbox/convos", timeout=30).json()
            done = (
                sum(1 for c in stats.values() if c.get("messagesNum", -1) >= events - convos)
                if isinstance(stats, dict)
                else 0
            )
            if done >= want:
                break
            time.sleep(0.1)
        took = time.time() - began
        after = {i: _figures(c) for i, c in primaries}
        if primaries:
            rows = []
            for i in before:
                cmds = after[i][0] - before[i][0]
                cpu = after[i][1] - before[i][1]
                rows.append((i, after[i][2], cmds, cpu))
            means = [sum(r[k] for r in rows) / len(rows) for k in (1, 2, 3)]
            print("primary   keys  (vs mean)   commands  (vs mean)   CPU s  (vs mean)")
            for i, keys, cmds, cpu in rows:
                print(
                    f"node {i}  {keys:6d}  ({keys / means[0] - 1:+6.1%})  {cmds:9d}  "
                    f"({cmds / means[1] - 1:+6.1%})  {cpu:6.2f}  ({cpu / means[2] - 1:+6.1%})"
                )
        return events / took
    finally:
        stop(procs, 30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=6000)
    ap.add_argument("--convos", type=int, default=3000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        rq_server = RedisServer(tmp / "rq", appendfsync="everysec")
        rq_url = rq_server.start()
        try:
            single = RedisServer(tmp / "single", appendfsync="everysec")
            single_url = single.start()
            try:
                (tmp / "s").mkdir()
                one = run(single_url, rq_url, tmp / "s", args.events, args.convos, ())
            finally:
                single.stop()
            redis.Redis.from_url(rq_url).flushall()
            cluster = RedisCluster(tmp / "cluster").start()
            try:
                nodes = [(i, cluster.client(i)) for i in cluster.primaries()]
                (tmp / "c").mkdir()
                many = run(cluster.url, rq_url, tmp / "c", args.events, args.convos, nodes)
            finally:
                cluster.stop()
        finally:
            rq_server.stop()
    print(f"single server: {one:7.0f} events/s end to end")
    print(f"3-primary cluster: {many:7.0f} events/s end to end ({many / one:.2f} of single)")


if __name__ == "__main__":
    main()
