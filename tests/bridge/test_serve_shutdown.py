"""`serve` on SIGTERM: a request already being received is finished and answered (its event
in Redis), then the process exits; new connections are refused meanwhile."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import orjson
import redis

from tests.conftest import SECRET, wait_until, write_config
from tests.servers import cli, free_port, ready
from tests.signing import standard_headers


def test_sigterm_drains_the_request_in_flight(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    env = {"DEMO_SECRET": SECRET, "REDIS_URL": redis_url}
    proc = cli("--config", str(write_config(tmp_path)), "serve", "--port", str(port), env=env)
    try:
        wait_until(lambda: ready(f"http://127.0.0.1:{port}", "/healthz"), timeout_s=20)
        body = orjson.dumps(
            {
                "agent_id": "a",
                "convo_id": "drain",
                "occurred_at": int(time.time() * 1000),
                "set": {"title": "t"},
            }
        )
        head = [
            "POST /webhooks/demo HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in standard_headers(SECRET, body).items()),
        ]
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body[:10])
            time.sleep(0.3)  # the request is in flight, its body half sent
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            sock.sendall(body[10:])
            answer = sock.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 202"), answer
        # uvicorn re-raises the SIGTERM it caught once it has shut down cleanly
        assert proc.wait(20) in (0, -signal.SIGTERM)
        r = redis.Redis.from_url(redis_url)
        assert r.hlen("cb:p:a/drain") == 1  # acknowledged, so it is in Redis
        r.close()
    finally:
        if proc.poll() is None:
            proc.kill()


def signed_request(port: int, convo: str) -> bytes:
    body = orjson.dumps(
        {
            "agent_id": "a",
            "convo_id": convo,
            "occurred_at": int(time.time() * 1000),
            "set": {"title": "t"},
        }
    )
    head = [
        "POST /webhooks/demo HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in standard_headers(SECRET, body).items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_sigterm_answers_every_request_whose_bytes_arrived(tmp_path: Path, redis_url: str) -> None:
    """About 50 requests in flight in every phase: whole, body half sent, head half sent,
    and sent while the server could not accept them (stopped: they wait in the backlog)."""
    port = free_port()
    env = {"DEMO_SECRET": SECRET, "REDIS_URL": redis_url}
    proc = cli("--config", str(write_config(tmp_path)), "serve", "--port", str(port), env=env)
    socks: list[tuple[socket.socket, bytes, int]] = []  # socket, request, bytes sent so far
    try:
        wait_until(lambda: ready(f"http://127.0.0.1:{port}", "/healthz"), timeout_s=20)
        for i in range(48):
            request = signed_request(port, f"inflight-{i}")
            head_end = request.index(b"\r\n\r\n") + 4
            sent = (len(request), head_end + 10, 30)[i % 3]  # whole, body half, head half
            sock = socket.create_connection(("127.0.0.1", port), timeout=20)
            sock.sendall(request[:sent])
            socks.append((sock, request, sent))
        time.sleep(0.3)
        proc.send_signal(signal.SIGSTOP)
        for i in range(6):  # accepted by the kernel only: the listen backlog
            request = signed_request(port, f"backlog-{i}")
            sock = socket.create_connection(("127.0.0.1", port), timeout=20)
            sock.sendall(request)
            socks.append((sock, request, len(request)))
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.3)
        for sock, request, sent in socks:
            sock.sendall(request[sent:])
        answers = []
        for sock, _, _ in socks:
            try:
                answers.append(sock.recv(4096).split(b"\r\n", 1)[0].decode())
            except OSError as exc:
                answers.append(type(exc).__name__)
        unanswered = [
            a
            for a in answers
            if a not in ("HTTP/1.1 202 Accepted", "HTTP/1.1 503 Service Unavailable")
        ]
        assert not unanswered, unanswered
        assert proc.wait(20) in (0, -signal.SIGTERM)
    finally:
        for sock, _, _ in socks:
            sock.close()
        if proc.poll() is None:
            proc.kill()


def test_serve_logs_where_it_listens_that_redis_is_away_and_when_it_stops(
    tmp_path: Path,
) -> None:
    import os
    import subprocess
    import sys

    port = free_port()
    env = {**os.environ, "DEMO_SECRET": SECRET, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    args = ["--config", str(write_config(tmp_path)), "serve", "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: ready(f"http://127.0.0.1:{port}", "/healthz"), timeout_s=20)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [orjson.loads(x) for x in err.decode().splitlines() if x.startswith("{")]
    said = {x["msg"]: x for x in lines}
    redis_away = [m for m in said if m.startswith("Redis unreachable at start")]
    assert redis_away and said[redis_away[0]]["level"] == "warning", err.decode()
    assert said["serve listening"]["url"] == f"http://127.0.0.1:{port}"
    assert "serve stopped" in said
    assert list(said).index("serve listening") < list(said).index("serve stopped")
