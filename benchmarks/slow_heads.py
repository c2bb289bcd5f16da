"""Slow-head soak: real webhooks while hostile clients hold `serve`'s connections.

    .venv/bin/python benchmarks/slow_heads.py [--slow 1000] [--seconds 30] [--rate 20]

Starts its own Redis and one `serve` under `ulimit -n 1024` (`--nofile`), opens `--slow`
connections that each send one byte of a request head every 5 s and reconnect as soon as
they are closed (after `--reconnect-after` s, so they are held throughout), and meanwhile sends signed webhooks at
`--rate`/s, each on a new connection as senders do. Prints the webhooks' latency (p50, p99,
max), how many failed, the slow clients' reconnects, serve's RSS and its
`convo_bridge_connections_closed` counts. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bridge.local.redis_server import RedisServer, free_port
from tests.signing import signed

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HEAD = b"POST /webhooks/demo HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def slow_client(
    port: int, args: argparse.Namespace, stop: asyncio.Event, counts: dict[str, int]
) -> None:
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts["connect_failed"] += 1
            await asyncio.sleep(args.reconnect_after)
            continue
        counts["connections"] += 1
        try:
            for i in range(len(HEAD)):
                writer.write(HEAD[i : i + 1])
                await writer.drain()
                try:  # wait for the next byte's time, or for the server to close
                    if await asyncio.wait_for(reader.read(4096), args.byte_every) == b"":
                        break
                except TimeoutError:
                    pass
                if stop.is_set():
                    break
        except OSError:
            pass
        finally:
            writer.close()
        await asyncio.sleep(args.reconnect_after)


async def webhooks(port: int, rate: float, seconds: float) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    failures: list[str] = []

    async def one(i: int) -> None:
        payload = {
            "agent_id": "soak",
            "convo_id": f"c{i}",
            "occurred_at": int(time.time() * 1000),
            "set": {"title": "t"},
        }
        body, headers = signed(SECRET, payload)
        request = (
            f"POST /webhooks/demo HTTP/1.1\r\nHost: bridge\r\nContent-Length: {len(body)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "Connection: close\r\n\r\n"
        ).encode() + body
        started = time.perf_counter()
        try:  # a new connection per webhook, as senders open them
            async with asyncio.timeout(10):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request)
                status = (await reader.readline()).split(b" ")[1:2]
                writer.close()
            if status != [b"202"]:
                failures.append(status[0].decode() if status else "closed")
                return
            latencies.append(time.perf_counter() - started)
        except (OSError, TimeoutError) as exc:
            failures.append(type(exc).__name__)

    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return latencies, failures


async def soak(port: int, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    counts = {"connections": 0, "connect_failed": 0}
    slow = [asyncio.create_task(slow_client(port, args, stop, counts)) for _ in range(args.slow)]
    await asyncio.sleep(args.warmup)  # let them take their places
    held = counts["connections"]
    latencies, failures = await webhooks(port, args.rate, args.seconds)
    stop.set()
    for task in slow:
        task.cancel()
    await asyncio.gather(*slow, return_exceptions=True)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(f"slow connections opened before the webhooks: {held}; in all: {counts['connections']}")
    print(f"slow connects refused: {counts['connect_failed']}")
    print(
        f"webhooks: {len(latencies)} answered 202, {len(failures)} failed"
        + (f" ({', '.join(sorted(set(failures)))})" if failures else "")
    )
    if latencies:
        print(
            f"latency ms: p50 {q[49] * 1e3:.1f}  p99 {q[98] * 1e3:.1f}  max {max(latencies) * 1e3:.1f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slow", type=int, default=1000, help="slow connections held")
    ap.add_argument("--seconds", type=float, default=30, help="how long webhooks are sent")
    ap.add_argument("--rate", type=float, default=20, help="webhooks per second")
    ap.add_argument("--byte-every", type=float, default=5, help="a slow client's byte interval")
    ap.add_argument("--reconnect-after", type=float, default=1, help="a closed slow client's pause")
    ap.add_argument("--nofile", type=int, default=1024, help="serve's open-file limit")
    ap.add_argument("--warmup", type=float, default=3, help="seconds before the webhooks")
    args = ap.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # this side holds every connection
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, hard))

    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis", appendfsync="everysec")
        redis.start()
        config = Path(tmp) / "config.toml"
        config.write_text('[sources.demo]\nkind = "standard"\nsecret_env = "DEMO_SECRET"\n')
        port = free_port()
        log = Path(tmp) / "serve.log"
        env = {"DEMO_SECRET": SECRET, "REDIS_URL": redis.url, "BRIDGE_CONFIG": str(config)}
        with log.open("wb") as out:
            serve = subprocess.Popen(
                [sys.executable, "-m", "bridge.cli", "serve", "--port", str(port)],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=limited,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 20
            while True:
                try:
                    httpx.get(url + "/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.time() > deadline:
                        raise SystemExit("serve did not come up") from None
                    time.sleep(0.1)
            print(
                f"serve under ulimit -n {args.nofile}; {args.slow} slow connections "
                f"(a byte every {args.byte_every:g} s); webhooks at {args.rate:g}/s "
                f"for {args.seconds:g} s, each on a new connection"
            )
            rss = rss_mb(serve.pid)
            asyncio.run(soak(port, args))
            print(f"serve RSS MB: {rss:.0f} at start, {rss_mb(serve.pid):.0f} at the end")
            metrics = httpx.get(url + "/metrics", timeout=10).text
            for line in metrics.splitlines():
                if line.startswith("convo_bridge_connections_closed_total"):
                    print(line)
            lines = log.read_text(errors="replace").splitlines()
            print(f"'connection limit reached' logged {sum('limit reached' in x for x in lines)}x")
        finally:
            serve.terminate()
            try:
                serve.wait(20)
            except subprocess.TimeoutExpired:
                serve.kill()
            redis.stop()


if __name__ == "__main__":
    main()
