"""The Convocore client honours proxy variables (through httpx's own transport) and
otherwise connects directly over the asyncio backend."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.config import ConvocoreSettings
from tests.servers import serve_app_in_thread
from workers.convocore import Convocore, proxy_for

SEEN: list[tuple[str, str]] = []


async def proxy(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Stands in for a forward proxy: records the host asked for and answers itself."""
    host = dict(scope["headers"]).get(b"host", b"").decode()
    SEEN.append((host, scope["raw_path"].decode()))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send(
        {"type": "http.response.body", "body": b'{"success": true, "data": {"title": "via proxy"}}'}
    )


@pytest.fixture
def proxy_url() -> Iterator[str]:
    with serve_app_in_thread(proxy, lifespan="off") as url:
        yield url


def test_proxy_variables_decide_and_no_proxy_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(var, raising=False)
    assert proxy_for("https://api.example.com") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert proxy_for("https://api.example.com") == "http://proxy:3128"
    assert proxy_for("http://api.example.com") is None  # no HTTP_PROXY
    monkeypatch.setenv("ALL_PROXY", "all:3128")
    assert proxy_for("http://api.example.com") == "http://all:3128"
    monkeypatch.setenv("NO_PROXY", "api.example.com")
    assert proxy_for("https://api.example.com") is None


def test_patches_go_through_the_configured_proxy(
    proxy_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    settings = ConvocoreSettings(
        base_url="http://convocore.invalid",
        token_env="X",
        time_unit="s",
        completed_state="ended_chat",
        token="t",
    )

    async def main() -> dict[str, Any]:
        client = Convocore(settings, timeout_s=5)
        try:
            return await client.patch("a%2Fb/c", client.body({"title": "x"}))
        finally:
            await client.close()

    assert asyncio.run(main()) == {"title": "via proxy"}
    assert SEEN[-1] == ("convocore.invalid", "/agents/a%2Fb/convos/c")  # still encoded


async def _hang_up_after_reading(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """A target that reads the whole request, then drops the connection without an answer."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    await reader.readexactly(length)
    writer.close()


def _client_call(method: str, port: int) -> Exception:
    from bridge.errors import TargetUnreachable

    async def go() -> Exception:
        settings = ConvocoreSettings(base_url=f"http://127.0.0.1:{port}", token="t")
        client = Convocore(settings, timeout_s=2)
        try:
            if method == "PATCH":
                await client.patch("a/c", client.body({"title": "x"}))
            else:
                await client.get("a/c")
        except TargetUnreachable as exc:
            return exc
        finally:
            await client.close()
        raise AssertionError("expected TargetUnreachable")

    return asyncio.run(go())


def test_a_patch_whose_connection_breaks_before_the_answer_is_in_doubt() -> None:
    from tests.servers import free_port

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(asyncio.start_server(_hang_up_after_reading, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        patch_error = _client_call("PATCH", port)
        get_error = _client_call("GET", port)
        refused = _client_call("PATCH", free_port())  # nothing listens: it never left
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()
    assert getattr(patch_error, "in_doubt", None) is True
    assert getattr(get_error, "in_doubt", None) is False  # a GET changes nothing
    assert getattr(refused, "in_doubt", None) is False


def test_a_target_trickling_its_answer_is_cut_off_at_the_request_deadline() -> None:
    """One byte every 0.5 s never trips a read timeout; the deadline covers the whole
    request, so the PATCH ends (in doubt: it was sent) within request_timeout_s."""
    import time

    from bridge.errors import TargetUnreachable
    from tests.servers import TricklingTarget

    async def go(url: str) -> tuple[Exception | None, float]:
        client = Convocore(ConvocoreSettings(base_url=url, token="t"), timeout_s=1)
        started = time.monotonic()
        try:
            await client.patch("a/slow", client.body({"title": "x"}))
        except TargetUnreachable as exc:
            return exc, time.monotonic() - started
        finally:
            await client.close()
        return None, time.monotonic() - started

    with TricklingTarget(every_s=0.5, limit_s=8) as target:
        error, took = asyncio.run(go(target.url))
        assert error is not None and getattr(error, "in_doubt", None) is True
        assert "timeout" in str(error)
        assert took < 3.0  # 1 s deadline, wide margin for a loaded machine
        [request] = target.requests
        from tests.conftest import wait_until

        wait_until(lambda: request["ended"] is not None, timeout_s=3)
        assert request["complete"] is False  # the client hung up mid-answer


def test_requests_keep_the_base_urls_path_and_send_the_bridges_headers() -> None:
    """Requests go to the transport directly: the base URL's own path (an API version prefix,
    with or without a trailing slash) and the headers are the client's job, not httpx's."""
    seen: list[dict[str, Any]] = []

    async def target(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = (await receive())["body"]
        seen.append(
            {"path": scope["raw_path"].decode(), "headers": dict(scope["headers"]), "body": body}
        )
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"success": true, "data": {"ok": 1}}'})

    async def main(base: str) -> dict[str, Any]:
        client = Convocore(ConvocoreSettings(base_url=base, token="secret-t"), timeout_s=5)
        try:
            return await client.patch("a%2Fb/c", client.body({"title": "x"}))
        finally:
            await client.close()

    with serve_app_in_thread(target, lifespan="off") as url:
        assert asyncio.run(main(url + "/v1")) == {"ok": 1}
        assert asyncio.run(main(url + "/v1/")) == {"ok": 1}
    assert [s["path"] for s in seen] == ["/v1/agents/a%2Fb/convos/c"] * 2
    headers = seen[0]["headers"]
    assert headers[b"authorization"] == b"Bearer secret-t"
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"user-agent"] == b"convo-bridge"
    assert headers[b"content-length"] == str(len(seen[0]["body"])).encode()
    assert seen[0]["body"] == b'{"conversation":{"title":"x"}}'
