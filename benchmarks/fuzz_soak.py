"""Fuzz soak: 10,000+ hostile, validly signed requests per sender kind against one `serve`
process, and its memory over the run. Prints a table; exits 1 on any undocumented answer.

    .venv/bin/python benchmarks/fuzz_soak.py [--per-kind 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench import rss_mb, wait_http
from bridge.local.redis_server import RedisServer, free_port
from tests.fuzzing import KINDS, config_text, fuzz, still_up, vector_cases
from tests.servers import cli, stop


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-kind", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(Path(tmp) / "redis", appendfsync="everysec")
        redis_server.start()
        config = Path(tmp) / "config.toml"
        env = {"REDIS_URL": redis_server.url, "CONVOCORE_API_TOKEN": "t"}
        text = ""
        for kind in KINDS:
            cases, source_config = vector_cases(kind)
            text += config_text(kind, source_config).replace(
                "SENDER_SECRET", f"{kind.upper()}_SECRET"
            )
            env[f"{kind.upper()}_SECRET"] = cases[0]["secret"]
        config.write_text(text + '[log]\nlevel = "WARNING"\n')
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        serve = cli("--config", str(config), "serve", "--port", str(port), env=env)
        peak = [0.0]
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.5):
                peak[0] = max(peak[0], rss_mb(serve.pid))

        rows = []
        failed = False
        try:
            wait_http(f"{url}/healthz")
            start_rss = rss_mb(serve.pid)
            threading.Thread(target=watch, daemon=True).start()
            started = time.time()
            for kind in KINDS:
                t = time.time()
                try:
                    seen = fuzz(
                        kind,
                        url,
                        vector_cases(kind)[0][0]["secret"],
                        redis_server.url,
                        args.per_kind,
                        derandomize=False,
                    )
                    verdict = "ok"
                except AssertionError as exc:
                    seen, verdict, failed = None, f"FAILED: {str(exc)[:200]}", True
                counts = ", ".join(f"{k}: {v}" for k, v in sorted(seen.items())) if seen else "-"
                rows.append(
                    (
                        kind,
                        str(sum(seen.values())) if seen else "-",
                        counts,
                        f"{time.time() - t:.0f} s",
                        verdict,
                    )
                )
            up = still_up(url)
            end_rss = rss_mb(serve.pid)
        finally:
            done.set()
            stop([serve])
            redis_server.stop()
    print(f"{'kind':<10} {'cases':>6}  {'answers':<34} {'time':>6}  verdict")
    for kind, n, counts, secs, verdict in rows:
        print(f"{kind:<10} {n:>6}  {counts:<34} {secs:>6}  {verdict}")
    print(
        f"serve RSS: start {start_rss:.0f} MB, end {end_rss:.0f} MB, peak {peak[0]:.0f} MB; "
        f"still up: {up}; total {time.time() - started:.0f} s"
    )
    return 1 if failed or not up else 0


if __name__ == "__main__":
    sys.exit(main())
