"""`convo-bridge dev`: the whole bridge on one machine for trying it out.

Starts a real Redis server (unless REDIS_URL is set), the sandbox (unless a Convocore token
is set), `serve` and one `worker` as child processes; uses --config / BRIDGE_CONFIG when
given, else writes a sample config; keeps its files outside any checkout (--dir, default
under $XDG_STATE_HOME); prints the `export` line that points the other commands at what it
started and a command that sends a signed sample webhook; Ctrl-C stops every child.
A busy port stops it before anything starts, naming the port and its flag.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import redis

from bridge.config import Settings, load_settings
from bridge.errors import ConfigError
from bridge.local.redis_server import RedisServer
from bridge.store.connect import redact, require_store_support, sync_client

DEMO_SECRET_ENV = "DEMO_WEBHOOK_SECRET"  # noqa: S105 (a variable's name, not a secret)
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


# Written next to secrets.env by every `dev` run: signs and sends one sample webhook with
# Python's standard library only (no openssl, curl or base64 needed).
SAMPLE_SCRIPT = """\
\"\"\"Send one signed sample webhook to `convo-bridge dev` (written by dev; stdlib only).\"\"\"
import base64, hashlib, hmac, json, pathlib, secrets, time, urllib.error, urllib.request

HERE = pathlib.Path(__file__).resolve().parent
ENV = dict(
    line.split("=", 1) for line in (HERE / "secrets.env").read_text().splitlines() if "=" in line
)
key = ENV["DEMO_WEBHOOK_SECRET"].removeprefix("whsec_")
key = base64.b64decode(key + "=" * (-len(key) % 4))
now = int(time.time())
body = json.dumps({
    "agent_id": "demo-agent", "convo_id": "demo-convo", "occurred_at": now * 1000,
    "set": {"userName": "Ada", "title": "Refund question"}, "tags": {"add": ["vip"]},
    "handoff": {"event": "requested", "team_key": "billing"},
}).encode()
msg_id = "msg_" + secrets.token_hex(8)
signed = hmac.new(key, f"{msg_id}.{now}.".encode() + body, hashlib.sha256).digest()
request = urllib.request.Request(
    "http://127.0.0.1:{port}/webhooks/demo", data=body, method="POST",
    headers={
        "content-type": "application/json", "webhook-id": msg_id,
        "webhook-timestamp": str(now), "webhook-signature": "v1," + base64.b64encode(signed).decode(),
    },
)
try:
    with urllib.request.urlopen(request, timeout=10) as answer:
        print(answer.status, answer.read().decode())
except urllib.error.HTTPError as exc:
    print(exc.code, exc.read().decode())
"""


def sample_command(base: Path, port: int) -> str:
    """Writes the sample script for this port and returns the line that runs it."""
    script = base / "send-sample.py"
    script.write_text(SAMPLE_SCRIPT.replace("{port}", str(port)))
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"


def read_convo_command(sandbox_port: int) -> str:
    """A Python line that prints the sample conversation as the sandbox holds it."""
    url = f"http://127.0.0.1:{sandbox_port}/agents/demo-agent/convos/demo-convo"
    code = f"import urllib.request as u; print(u.urlopen('{url}').read().decode())"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def _stop_on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def default_dir(env: Mapping[str, str]) -> Path:
    """Where dev keeps its files by default: the user's state directory, never a checkout."""
    state = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "convo-bridge" / "dev"


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_ports(ports: Mapping[str, int]) -> None:
    """Each flag's port is distinct and free on 127.0.0.1, or ConfigError naming both."""
    seen: dict[int, str] = {}
    for flag, port in ports.items():
        if port in seen:
            raise ConfigError(flag, f"port {port} is also {seen[port]}; give each its own port")
        seen[port] = flag
        if not port_is_free(port):
            raise ConfigError(
                flag, f"port {port} on 127.0.0.1 is busy (another dev?); choose another with {flag}"
            )


def export_line(env: Mapping[str, str], names: list[str]) -> str:
    return "export " + " ".join(f"{n}={shlex.quote(env[n])}" for n in names if env.get(n))


def has_demo_source(settings: Settings) -> bool:
    """Whether the sample webhook fits the config: the sample's standard source and secret."""
    demo = settings.sources.get("demo")
    return demo is not None and demo.kind == "standard" and demo.secret_env == DEMO_SECRET_ENV


def check_redis(url: str) -> None:
    """A REDIS_URL that does not answer (often one left from an earlier dev) stops dev first."""
    client = sync_client(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError):
        raise ConfigError(
            "REDIS_URL",
            f"{redact(url)} does not answer (left from an earlier dev?); unset REDIS_URL and dev "
            "starts its own Redis",
        ) from None
    finally:
        client.close()


def _wait_worker(redis_url: str, timeout_s: float = 30.0) -> bool:
    """Until the worker is in RQ's registry, so `status` pasted from the banner counts it."""
    from bridge.store.rq_workers import live_workers

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if live_workers(redis_url) > 0:
                return True
        except (redis.exceptions.RedisError, OSError):
            pass
        time.sleep(0.1)
    return False


def run_dev(args: argparse.Namespace) -> int:
    with_sandbox = not os.environ.get("CONVOCORE_API_TOKEN")
    check_ports(
        {"--port": args.port, **({"--sandbox-port": args.sandbox_port} if with_sandbox else {})}
    )
    base = Path(args.dir or default_dir(os.environ)).resolve()
    base.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(_secrets(base / "secrets.env"))
    given = args.config or env.get("BRIDGE_CONFIG")
    config = Path(given).resolve() if given else base / "config.toml"
    if not given and not config.exists():
        config.write_text(SAMPLE_CONFIG)
    env["BRIDGE_CONFIG"] = str(config)
    env.setdefault("BRIDGE_LOG_FORMAT", "text")
    if with_sandbox:
        env["CONVOCORE_BASE_URL"] = f"http://127.0.0.1:{args.sandbox_port}"
        env["CONVOCORE_SANDBOX"] = "1"  # the worker then needs no token
    settings = load_settings(config, env)  # a bad --config stops here, before anything starts
    if env.get("REDIS_URL"):
        require_store_support(env["REDIS_URL"], rq_url=env.get("RQ_REDIS_URL", ""))
        check_redis(env["REDIS_URL"])

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
            print(f"redis     {redact(env['REDIS_URL'])} (from REDIS_URL)")
        sandbox_port = None
        if with_sandbox:
            sandbox_port = args.sandbox_port
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
        if not _wait_worker(env.get("RQ_REDIS_URL") or env["REDIS_URL"]):
            print("convo-bridge: the worker did not register with RQ", file=sys.stderr)
            return 1
        origin = "from --config" if args.config else "from BRIDGE_CONFIG" if given else "sample"
        print(f"config    {config} ({origin})")
        print(f"files     {base} (secrets.env, Redis data)")
        for name in settings.sources:
            print(f"ingest    http://127.0.0.1:{args.port}/webhooks/{name}")
        print(f"admin     http://127.0.0.1:{args.port}/admin/  (token: BRIDGE_ADMIN_TOKEN below)")
        names = ["REDIS_URL", "BRIDGE_CONFIG", "BRIDGE_ADMIN_TOKEN", DEMO_SECRET_ENV]
        if with_sandbox:
            names += ["CONVOCORE_BASE_URL", "CONVOCORE_SANDBOX"]
        print("\nPoint status, dlq, links, worker… at this bridge (paste into another shell):\n")
        print("  " + export_line(env, names))
        if not has_demo_source(settings):
            print("\nNo sample webhook: the config has no [sources.demo] of kind standard with")
            print('secret_env = "DEMO_WEBHOOK_SECRET".')
        else:
            print("\nSend a signed sample webhook (paste into another shell):\n")
            print("  " + sample_command(base, args.port))
        if sandbox_port and has_demo_source(settings):
            print("\nThen see the conversation change in the sandbox:\n")
            print("  " + read_convo_command(sandbox_port))
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
