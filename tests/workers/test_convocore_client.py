"""The Convocore client honours proxy variables (through httpx's own transport) and
otherwise connects directly over the asyncio backend."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.config import ConvocoreSettings
from tests.servers import serve_app_in_thread
from workers.convocore import Convocore, uses_proxy

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
    assert not uses_proxy("https://api.example.com")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert uses_proxy("https://api.example.com")
    assert not uses_proxy("http://api.example.com")  # no HTTP_PROXY
    monkeypatch.setenv("NO_PROXY", "api.example.com")
    assert not uses_proxy("https://api.example.com")


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
