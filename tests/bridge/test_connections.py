"""Connections that send no request, or send it without end, cannot starve ingest: the
request head is bounded in size (431) and in time (408 or closed), on a new connection as
on a kept-alive one, and open connections per process are bounded, the longest-waiting
head giving way to a new connection. Real sockets against the ingest app under uvicorn."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from bridge.app import build_app
from bridge.config import Settings
from bridge.connections import Limits, protocol_class
from tests.conftest import SECRET, wait_until, write_config
from tests.servers import cli, free_port, ready, serve_app_in_thread
from tests.signing import standard_headers

HEAD = b"POST /webhooks/demo HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"


@contextlib.contextmanager
def ingest(settings: Settings, **limits: float) -> Iterator[tuple[str, int]]:
    given = {
        "max_header_bytes": 8192,
        "head_timeout_s": 30.0,
        "max_connections": 1000,
        "keep_alive_s": 5.0,
        **limits,
    }
    http = protocol_class(Limits(**given))  # type: ignore[arg-type]
    keep_alive = given["keep_alive_s"]
    with serve_app_in_thread(build_app(settings), http=http, timeout_keep_alive=keep_alive) as url:
        yield url, int(url.rsplit(":", 1)[1])


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            out += chunk
    return out


def closed(reason: str) -> float:
    return (
        REGISTRY.get_sample_value("convo_bridge_connections_closed_total", {"reason": reason})
        or 0.0
    )


def webhook(url: str, convo: str) -> httpx.Response:
    body = orjson.dumps(
        {
            "agent_id": "a",
            "convo_id": convo,
            "occurred_at": int(time.time() * 1000),
            "set": {"title": "t"},
        }
    )
    headers = standard_headers(SECRET, body)
    return httpx.post(f"{url}/webhooks/demo", content=body, headers=headers, timeout=10)


def test_a_request_head_over_the_limit_is_431_and_closed(settings: Settings) -> None:
    before = closed("headers_too_large")
    with ingest(settings, max_header_bytes=8192) as (url, port), connect(port) as sock:
        sock.sendall(HEAD + b"X-Big: ")
        with contextlib.suppress(OSError):  # the server stops reading after its limit
            for _ in range(64):
                sock.sendall(b"a" * 4096)
        answer = read_all(sock)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b"headers too large" in answer and b"connection: close" in answer
        assert webhook(url, "after-431").status_code == 202
    assert closed("headers_too_large") == before + 1


def test_a_head_within_the_limit_is_read(settings: Settings) -> None:
    with ingest(settings, max_header_bytes=8192) as (url, _):
        body = b"{}"
        headers = {**standard_headers(SECRET, body), "x-pad": "p" * 7000}
        answer = httpx.post(f"{url}/webhooks/demo", content=body, headers=headers, timeout=10)
        assert answer.status_code == 400  # read, verified and refused as an empty intent


def test_a_slow_head_gets_408_and_an_idle_connection_is_closed_after_the_deadline(
    settings: Settings,
) -> None:
    before = closed("head_timeout")
    with ingest(settings, head_timeout_s=0.5) as (url, port):
        with connect(port) as slow, connect(port) as idle:
            started = time.monotonic()
            slow.sendall(HEAD[:10])
            answer = read_all(slow)
            assert read_all(idle) == b""
            took = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"request head did not arrive within 0.5 s" in answer
        assert 0.4 < took < 6, took
        assert webhook(url, "after-408").status_code == 202
    assert closed("head_timeout") >= before + 2


def test_a_half_started_next_request_on_a_kept_alive_connection_is_closed(
    settings: Settings,
) -> None:
    with ingest(settings, head_timeout_s=0.5) as (_, port), connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 "), first
        started = time.monotonic()
        answer = b""
        with contextlib.suppress(OSError):
            for i in range(50):  # one byte every 0.1 s, as a slow-loris client does
                sock.sendall(HEAD[i : i + 1])
                time.sleep(0.1)
        answer = read_all(sock)
        assert b"HTTP/1.1 408 " in answer, answer  # after the end of the 200
        assert time.monotonic() - started < 4.5


def test_a_kept_alive_connection_may_idle_keep_alive_s_past_the_head_deadline(
    settings: Settings,
) -> None:
    """Behind a load balancer, an upstream connection sits idle between requests for as long
    as the balancer keeps it (AWS ALB: 60 s by default); closed sooner, the balancer may send
    on it as it closes and the sender gets a 502. An idle kept-alive connection now lives
    keep_alive_s (here 3 s, past a 0.5 s head deadline), then closes; the next head's
    deadline starts with its first byte. Before, it was closed at the head deadline."""

    def health(sock: socket.socket) -> bytes:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n")
        answer = b""
        while b'"ok"}' not in answer:  # the whole answer (head and body may come apart)
            chunk = sock.recv(65536)
            assert chunk, answer  # closed instead of answered
            answer += chunk
        return answer

    with ingest(settings, head_timeout_s=0.5, keep_alive_s=3.0) as (_, port):
        with connect(port) as sock:
            assert health(sock).startswith(b"HTTP/1.1 200 ")
            time.sleep(1.5)  # idle past the head deadline, within keep_alive_s
            assert health(sock).startswith(b"HTTP/1.1 200 ")
            started = time.monotonic()
            assert read_all(sock) == b""  # idle again: closed after keep_alive_s, no answer
            took = time.monotonic() - started
        assert 2.5 < took < 8, took


def test_at_the_connection_bound_slow_heads_give_way_to_real_webhooks(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    before = closed("connection_limit")
    caplog.set_level(logging.WARNING, logger="convo_bridge.ingest")
    with ingest(settings, max_connections=10) as (url, port):
        slow: list[socket.socket] = []
        try:
            for _ in range(30):
                sock = connect(port)
                sock.sendall(HEAD[:5])
                slow.append(sock)
            latencies = []
            for i in range(20):
                started = time.monotonic()
                assert webhook(url, f"real-{i}").status_code == 202
                latencies.append(time.monotonic() - started)
            assert max(latencies) < 5, latencies
            alive = 0  # slow connections the server still holds open
            for sock in slow:
                sock.settimeout(0.05)
                try:
                    alive += sock.recv(1) != b""  # b"": closed by the server
                except TimeoutError:
                    alive += 1
                except OSError:
                    pass
            assert alive <= 10, alive
        finally:
            for sock in slow:
                sock.close()
    assert closed("connection_limit") >= before + 20
    assert any(r.getMessage() == "connection limit reached" for r in caplog.records)


def test_the_limits_are_settings_with_defaults(make_settings: Callable[..., Settings]) -> None:
    ingest_settings = make_settings().ingest
    assert ingest_settings.max_header_bytes == 65_536
    assert ingest_settings.head_timeout_s == 10.0
    assert ingest_settings.keep_alive_s == 5.0
    assert ingest_settings.max_connections == 1000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_serve_memory_stays_flat_under_many_big_header_connections(
    tmp_path: Path, redis_url: str
) -> None:
    port = free_port()
    env = {"DEMO_SECRET": SECRET, "REDIS_URL": redis_url}
    proc = cli("--config", str(write_config(tmp_path)), "serve", "--port", str(port), env=env)
    held: list[socket.socket] = []
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: ready(url, "/healthz"), timeout_s=20)
        for i in range(5):
            assert webhook(url, f"warm-{i}").status_code == 202
        before = rss_mb(proc.pid)
        value = b"v" * 65536
        for _ in range(100):  # each streams up to 2 MB of one header value, never ending it
            sock = connect(port)
            held.append(sock)
            with contextlib.suppress(OSError):
                sock.sendall(HEAD + b"X-Big: ")
                for _ in range(32):
                    sock.sendall(value)
        grown = rss_mb(proc.pid) - before
        assert grown < 40, f"serve RSS grew {grown:.0f} MB"  # 200 MB held before the bound
        assert webhook(url, "after-big-heads").status_code == 202
    finally:
        for sock in held:
            sock.close()
        proc.kill()
        proc.wait(10)


def test_a_body_still_trickling_after_its_answer_is_closed_after_the_deadline(
    settings: Settings,
) -> None:
    with ingest(settings, head_timeout_s=0.5) as (_, port), connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bridge\r\nContent-Length: 100000\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        with contextlib.suppress(OSError):
            for _ in range(50):  # the body the answer never needed, a byte every 0.1 s
                sock.sendall(b"x")
                time.sleep(0.1)
        read_all(sock)
        assert time.monotonic() - started < 4.5


def test_at_the_bound_with_every_connection_answering_a_new_one_gets_503(
    settings: Settings,
) -> None:
    with ingest(settings, max_connections=2) as (_, port):
        busy = [connect(port), connect(port)]
        try:
            for sock in busy:  # whole heads, bodies still coming: both being answered
                sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n{")
            time.sleep(0.2)
            with connect(port) as extra:
                answer = read_all(extra)
            assert answer.startswith(b"HTTP/1.1 503 "), answer
            assert b"retry-after: 1" in answer
        finally:
            for sock in busy:
                sock.close()
