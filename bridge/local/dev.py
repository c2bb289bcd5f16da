"""`convo-bridge dev`: the whole bridge on one machine for trying it out.

Starts a real Redis server (unless REDIS_URL is set), the sandbox (unless a Convocore token
is set), `serve` and one `worker` as child processes; writes a sample config and secret;
prints a command that sends a signed sample webhook; Ctrl-C stops every child.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bridge.local.redis_server import RedisServer

SAMPLE_CONFIG = """\
# Written by `convo-bridge dev`. Secrets live in the environment, never here.
[convocore]
time_unit = "s"

[sources.demo]
kind = "standard"
secret_env = "DEMO_WEBHOOK_SECRET"
"""


def _wait_http(url: str, timeout_s: float = 15.0) -> bool:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=0.5).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def _secrets(path: Path) -> dict[str, str]:
    """The demo webhook secret and admin token, kept across runs in `secrets.env`."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key and value:
                values[key.strip()] = value.strip()
    values.setdefault(
        "DEMO_WEBHOOK_SECRET", "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    )
    values.setdefault("BRIDGE_ADMIN_TOKEN", secrets.token_urlsafe(18))
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    path.chmod(0o600)
    return values


def sample_command(port: int, sandbox_port: int | None) -> str:
    body = (
        '{"agent_id":"demo-agent","convo_id":"demo-convo","occurred_at":'
        "'$(date +%s)000'"
        ',"set":{"userName":"Ada","title":"Refund question"},"tags":{"add":["vip"]},'
        '"handoff":{"event":"requested","team_key":"billing"}}'
    )
    return (
        f"set -a; . {{dir}}/secrets.env; set +a; "
        f"id=msg_$(date +%s%N); ts=$(date +%s); body='{body}'; "
        'sig=$(printf "%s" "$id.$ts.$body" | openssl dgst -sha256 -mac HMAC '
        '-macopt hexkey:$(printf "%s" "${DEMO_WEBHOOK_SECRET#whsec_}" | base64 -d | od -An -v -tx1 | tr -d " \\n")'
        " -binary | base64); "
        f"curl -s -X POST http://127.0.0.1:{port}/webhooks/demo "
        '-H "content-type: application/json" -H "webhook-id: $id" '
        '-H "webhook-timestamp: $ts" -H "webhook-signature: v1,$sig" -d "$body"; echo'
    )


def _stop_on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_dev(args: argparse.Namespace) -> int:
    base = Path(args.dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    config = base / "config.toml"
    if not config.exists():
        config.write_text(SAMPLE_CONFIG)
    env = dict(os.environ)
    env.update(_secrets(base / "secrets.env"))
    env["BRIDGE_CONFIG"] = str(config)
    env.setdefault("BRIDGE_LOG_FORMAT", "text")

    children: list[subprocess.Popen[bytes]] = []
    redis_server: RedisServer | None = None
    exe = [sys.executable, "-m", "bridge.cli"]
    signal.signal(signal.SIGTERM, _stop_on_term)  # a SIGTERM cleans up like Ctrl-C does
    try:
        if not env.get("REDIS_URL"):
            redis_server = RedisServer(base / "redis")
            env["REDIS_URL"] = redis_server.start()
            print(f"redis     {env['REDIS_URL']} (embedded server, data in {base / 'redis'})")
        else:
            print(f"redis     {env['REDIS_URL']} (from REDIS_URL)")
        sandbox_port = None
        if not env.get("CONVOCORE_API_TOKEN"):
            sandbox_port = args.sandbox_port
            env["CONVOCORE_BASE_URL"] = f"http://127.0.0.1:{sandbox_port}"
            env["CONVOCORE_SANDBOX"] = "1"  # the worker then needs no token
            children.append(
                subprocess.Popen(
                    [*exe, "sandbox", "--port", str(sandbox_port), "--auto-create"], env=env
                )
            )
            _wait_http(f"{env['CONVOCORE_BASE_URL']}/_sandbox/stats")
            print(f"sandbox   {env['CONVOCORE_BASE_URL']} (no CONVOCORE_API_TOKEN set)")
        children.append(subprocess.Popen([*exe, "serve", "--port", str(args.port)], env=env))
        children.append(subprocess.Popen([*exe, "worker"], env=env))
        if not _wait_http(f"http://127.0.0.1:{args.port}/healthz"):
            print("convo-bridge: the ingest server did not start", file=sys.stderr)
            return 1
        print(f"ingest    http://127.0.0.1:{args.port}/webhooks/demo  (config {config})")
        print(
            f"admin     http://127.0.0.1:{args.port}/admin/  "
            f"(token: BRIDGE_ADMIN_TOKEN in {base / 'secrets.env'})"
        )
        print("\nSend a signed sample webhook (paste into another shell):\n")
        print("  " + sample_command(args.port, sandbox_port).replace("{dir}", str(base)))
        if sandbox_port:
            print("\nThen see the conversation change:\n")
            print(f"  curl -s http://127.0.0.1:{sandbox_port}/agents/demo-agent/convos/demo-convo")
        print("\nCtrl-C stops everything.", flush=True)
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        print("convo-bridge: a child process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        if redis_server is not None:
            redis_server.stop()
