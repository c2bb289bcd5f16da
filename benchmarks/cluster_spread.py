"""The bridge on a local 3-primary Redis Cluster against one Redis server: how evenly the work
spreads over the primaries, and the rates of each.

    python -m benchmarks.cluster_spread [--seconds 15]

One `serve`, two `worker` processes and the sandbox, the same load on both layouts: wrk
(2 threads, 64 connections) posting distinct signed webhooks over 5,000 conversations
(bench.DISTINCT_REQUESTS of them, each at most once a run) while the workers deliver;
webhooks/s from wrk, PATCHes/s from the sandbox over the same seconds (coalescing makes them
fewer than webhooks).
On the cluster (tests/cluster.py: valkey, three primaries without replicas, AOF everysec like
the single server, RQ on a Redis of its own) it prints, per primary, the keys, the commands processed and the CPU
(INFO deltas over the run), and how far each is from the mean; then cluster / single rate.
Prints figures; asserts nothing (the spread's bound is tests/bridge/store/test_store_cluster.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from benchmarks.bench import SECRET, signed_script, wait_http, wrk
from benchmarks.redis_cost import Monitor
from bridge.local.redis_server import RedisServer, free_port, valkey_binary
from tests.cluster import RedisCluster
from tests.servers import cli, stop


def _figures(conn: redis.Redis) -> tuple[int, float, int]:
    info = conn.info()
    return (
        int(info["total_commands_processed"]),
        float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
        int(conn.dbsize()),
    )


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _calls(conn: redis.Redis) -> Counter[str]:
    """Calls per command (commandstats), scripts' own commands included."""
    stats = conn.info("commandstats")
    return Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()})


def run(
    redis_url: str,
    rq_url: str,
    tmp: Path,
    seconds: int,
    primaries: Any,
    shards: int = 0,
    monitor_url: str = "",
) -> tuple[float, float]:
    """(webhooks/s, PATCHes/s) over `seconds` of wrk on `redis_url` with the workers
    delivering meanwhile; `primaries`: () or the cluster's (index, client)s, whose spread
    is printed."""
    sandbox_port, serve_port = free_port(), free_port()
    config = tmp / "config.toml"
    config.write_text(
        '[sources.demo]\nkind = "standard"\nsecret_env = "DEMO_SECRET"\n[log]\nlevel = "WARNING"\n'
        f"[redis]\nshards = {shards}\n"
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
        script = signed_script(tmp)
        before = {i: _figures(c) for i, c in primaries}
        calls = sum((_calls(c) for _, c in primaries), Counter[str]())
        roles = {"serve": procs[1:2], "workers": procs[2:], "sandbox": procs[:1]}
        cpu_before = {role: sum(_cpu(p.pid) for p in ps) for role, ps in roles.items()}
        patched = httpx.get(f"{sandbox}/_sandbox/stats").json()["patches"]
        with Monitor(monitor_url) if monitor_url else contextlib.nullcontext() as monitor:
            webhooks, _ = wrk(serve, script, seconds)
        if monitor is not None:
            runs = ", ".join(
                f"{name} {n / (webhooks * seconds):.2f}"
                for name, n in monitor.scripts.most_common()
            )
            print(f"  script calls per webhook, on the first server (MONITOR): {runs}")
        patches = (httpx.get(f"{sandbox}/_sandbox/stats").json()["patches"] - patched) / seconds
        after = {i: _figures(c) for i, c in primaries}
        calls = sum((_calls(c) for _, c in primaries), Counter[str]()) - calls
        top = ", ".join(
            f"{name} {n / (webhooks * seconds):.2f}" for name, n in calls.most_common(8)
        )
        print(f"  commands per webhook (most called): {top}")
        spent = {
            role: sum(_cpu(p.pid) for p in ps) - cpu_before[role] for role, ps in roles.items()
        }
        print(
            "  CPU per webhook: "
            + ", ".join(
                f"{role} {t / (webhooks * seconds) * 1e6:.0f} µs" for role, t in spent.items()
            )
        )
        cpu_total = sum(after[i][1] - before[i][1] for i in before)
        print(
            f"  Redis CPU per webhook (its delivery included): {cpu_total / (webhooks * seconds) * 1e6:.0f} µs"
        )
        if len(primaries) > 1:
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
        return webhooks, patches
    finally:
        stop(procs, 30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--shards", type=int, default=0, help="[redis] shards on the cluster")
    ap.add_argument(
        "--monitor",
        action="store_true",
        help="count script calls on the first server with MONITOR (it costs Redis CPU: "
        "rates and CPU figures of such a run are lower)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        rq_server = RedisServer(tmp / "rq", appendfsync="everysec")
        rq_url = rq_server.start()
        try:
            # valkey like the cluster's nodes (tests/cluster.py): one server binary for both
            single = RedisServer(tmp / "single", appendfsync="everysec", binary=valkey_binary())
            single_url = single.start()
            try:
                (tmp / "s").mkdir()
                server = [(0, redis.Redis.from_url(single_url))]
                one = run(
                    single_url,
                    rq_url,
                    tmp / "s",
                    args.seconds,
                    server,
                    0,
                    single_url if args.monitor else "",
                )
            finally:
                single.stop()
            redis.Redis.from_url(rq_url).flushall()
            # three lone primaries, AOF everysec: the same server as the single one, times 3
            cluster = RedisCluster(tmp / "cluster", replicas=False, appendfsync="everysec").start()
            try:
                nodes = [(i, cluster.client(i)) for i in cluster.primaries()]
                (tmp / "c").mkdir()
                first = f"redis://127.0.0.1:{cluster.ports[0]}" if args.monitor else ""
                many = run(cluster.url, rq_url, tmp / "c", args.seconds, nodes, args.shards, first)
            finally:
                cluster.stop()
        finally:
            rq_server.stop()
    print(f"single server:     {one[0]:7.0f} webhooks/s, {one[1]:6.0f} PATCHes/s")
    print(
        f"3-primary cluster: {many[0]:7.0f} webhooks/s, {many[1]:6.0f} PATCHes/s "
        f"({many[0] / one[0]:.2f} and {many[1] / one[1]:.2f} of single)"
    )


if __name__ == "__main__":
    main()
