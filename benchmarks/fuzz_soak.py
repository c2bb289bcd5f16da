"""Fuzz soak against one `serve` process (every sender kind configured, an admin token set)
and a real Redis, with serve's memory (RSS) before and after each family. Prints a table;
exits 1 on any 5xx, traceback, undocumented webhook answer or queued refusal.

Families: hostile, validly signed bodies per sender kind (tests/fuzzing.py); hostile webhook
headers (timestamps, signatures, ids), the admin API, the admin page's routes, and the
public GET routes with hostile query strings, Accept and cookies (tests/fuzzing_edges.py);
then every hostile header value on every signed header, and every hostile cookie on every
admin route, once each.

    .venv/bin/python benchmarks/fuzz_soak.py [--per-kind 10000] [--per-family 10000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench import rss_mb, wait_http
from bridge.admin.auth import csrf_token, session_cookie
from bridge.app import routes as app_routes
from bridge.local.redis_server import RedisServer, free_port
from tests.fuzzing import KINDS, fuzz, still_up, vector_cases
from tests.fuzzing_edges import (
    ADMIN_TOKEN,
    all_kinds_config,
    every_hostile_cookie,
    every_hostile_header,
    families,
    fuzz_probes,
    secrets_by_kind,
    template_routes,
)
from tests.servers import cli, stop


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-kind", type=int, default=10_000, help="hostile bodies per kind")
    ap.add_argument("--per-family", type=int, default=10_000, help="requests per route family")
    ap.add_argument(
        "--rounds", type=int, default=1, help="run every family this many times (RSS plateau)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(Path(tmp) / "redis", appendfsync="everysec")
        redis_server.start()
        config = Path(tmp) / "config.toml"
        text, env = all_kinds_config()
        env |= {"REDIS_URL": redis_server.url, "CONVOCORE_API_TOKEN": "t"}
        config.write_text(text + '[log]\nlevel = "WARNING"\n')
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        serve = cli("--config", str(config), "serve", "--port", str(port), env=env)
        peak = [0.0]
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.5):
                peak[0] = max(peak[0], rss_mb(serve.pid))

        admin = template_routes(app_routes())
        session = session_cookie(ADMIN_TOKEN).encode()
        runs: list[tuple[str, Callable[[], Counter[int]]]] = []
        for kind in KINDS:
            secret = vector_cases(kind)[0][0]["secret"]
            runs.append(
                (
                    f"bodies: {kind}",
                    lambda k=kind, s=secret: fuzz(
                        k, url, s, redis_server.url, args.per_kind, derandomize=False
                    ),
                )
            )
        for name, strategy in families(admin, session, csrf_token(ADMIN_TOKEN).encode()).items():
            runs.append(
                (
                    name,
                    lambda st=strategy: fuzz_probes(
                        url, redis_server.url, st, args.per_family, derandomize=False
                    ),
                )
            )
        for name, probes in (
            ("every hostile header", every_hostile_header(secrets_by_kind())),
            ("every hostile cookie", every_hostile_cookie(admin)),
        ):
            runs.append((name, lambda p=probes: fuzz_probes(url, redis_server.url, p, len(p))))
        rows = []
        failed = False
        try:
            wait_http(f"{url}/healthz")
            first_rss = rss_mb(serve.pid)
            threading.Thread(target=watch, daemon=True).start()
            started = time.time()
            for round_no, (name, run) in enumerate(runs * args.rounds):
                if args.rounds > 1:
                    name = f"{name} (round {round_no // len(runs) + 1})"
                t, before = time.time(), rss_mb(serve.pid)
                try:
                    seen: Counter[int] | None = run()
                    verdict = "ok"
                except AssertionError as exc:
                    seen, verdict, failed = None, f"FAILED: {str(exc)[:300]}", True
                counts = ", ".join(f"{k}: {v}" for k, v in sorted(seen.items())) if seen else "-"
                rows.append(
                    (
                        name,
                        str(sum(seen.values())) if seen else "-",
                        counts,
                        f"{before:.0f} → {rss_mb(serve.pid):.0f}",
                        f"{time.time() - t:.0f} s",
                        verdict,
                    )
                )
            up = still_up(url)
            last_rss = rss_mb(serve.pid)
        finally:
            done.set()
            stop([serve])
            redis_server.stop()
    print(f"| family | requests | answers | serve RSS MB | time | verdict |\n|{'---|' * 6}")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"\nserve RSS: start {first_rss:.0f} MB, end {last_rss:.0f} MB, peak {peak[0]:.0f} MB; "
        f"still up: {up}; total {sum(int(r[1]) for r in rows if r[1] != '-')} requests, "
        f"{time.time() - started:.0f} s"
    )
    return 1 if failed or not up else 0


if __name__ == "__main__":
    sys.exit(main())
