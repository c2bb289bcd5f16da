"""The Convocore client: PATCH and GET one conversation, or raise a typed DeliveryError.

`request_timeout_s` is one deadline for the whole request (connect, send, every read of the
answer), not httpx's per-operation timeout: a target trickling one byte a second never trips
a read timeout and held a PATCH, its slot and its lease for a minute. The worker's lease
fence (workers/lease.py) counts on a request ending within that deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import httpx
import orjson

from bridge.config import ConvocoreSettings
from bridge.errors import TargetDeclined, TargetRefused, TargetUnreachable
from workers.netio import AsyncioTransport

SNIPPET_CHARS = 200


def snippet(text: str) -> str:
    return " ".join(text.split())[:SNIPPET_CHARS]


def uses_proxy(url: str) -> bool:
    """Whether HTTP_PROXY / HTTPS_PROXY / ALL_PROXY (and NO_PROXY) send `url` through a proxy."""
    parts = urlsplit(url)
    proxies = getproxies()
    if parts.scheme not in proxies and "all" not in proxies:
        return False
    return not proxy_bypass(parts.hostname or "")


def error_code(body: dict[str, Any]) -> str:
    """The code of either documented error shape: {"code": …} or {"error": {"code": …}}."""
    err = body.get("error")
    code = err.get("code") if isinstance(err, dict) else body.get("code")
    return code if isinstance(code, str) else ""


class Convocore:
    """One keep-alive httpx client per worker process. `ck` is `<agent>/<convo>`, each part
    already percent-encoded (store.conversation_key), so ids cannot change the URL's shape."""

    def __init__(self, settings: ConvocoreSettings, *, timeout_s: float) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "convo-bridge"}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        self._base_url = settings.base_url
        self._headers = headers
        self._deadline_s = timeout_s
        self._timeout = httpx.Timeout(timeout_s)
        self._tls = httpx.create_ssl_context()  # one CA bundle load for all clients
        self._proxied = uses_proxy(settings.base_url)
        # One single-connection client per concurrent call, reused last-in first-out: httpcore's
        # pool rescans all its connections for every request it queues or finishes, which
        # cost a tenth of the worker's CPU with eight connections in one pool.
        self._idle: list[httpx.AsyncClient] = []
        self._all: list[httpx.AsyncClient] = []

    def _client(self) -> httpx.AsyncClient:
        if self._idle:
            return self._idle.pop()
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        client = httpx.AsyncClient(
            base_url=self._base_url,
            headers=self._headers,
            timeout=self._timeout,
            limits=one,
            verify=self._tls,
            # behind a proxy, httpx's own transport (it honours the proxy variables)
            transport=None if self._proxied else AsyncioTransport(limits=one, verify=self._tls),
        )
        self._all.append(client)
        return client

    async def close(self) -> None:
        for client in self._all:
            await client.aclose()
        self._all.clear()
        self._idle.clear()

    async def _discard(self, client: httpx.AsyncClient) -> None:
        self._all.remove(client)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await client.aclose()

    @staticmethod
    def path(ck: str) -> str:
        agent, _, convo = ck.partition("/")
        return f"/agents/{agent}/convos/{convo}"

    @staticmethod
    def body(conversation: dict[str, Any]) -> bytes:
        """The PATCH body; raises (TypeError) on what cannot be written, before any request."""
        return orjson.dumps({"conversation": conversation})

    async def patch(self, ck: str, body: bytes) -> dict[str, Any]:
        return await self._call("PATCH", ck, body)

    async def get(self, ck: str) -> dict[str, Any]:
        return await self._call("GET", ck, None)

    async def _call(self, method: str, ck: str, body: bytes | None) -> dict[str, Any]:
        client = self._client()
        reusable = True
        try:
            async with asyncio.timeout(self._deadline_s):
                answer = await client.request(method, self.path(ck), content=body)
        except TimeoutError:
            # the deadline passed mid-request; it may have been sent: a PATCH is in doubt.
            # The connection was cut mid-answer: that client is closed, not reused.
            reusable = False
            raise TargetUnreachable(
                f"timeout: no whole answer within {self._deadline_s:g} s",
                in_doubt=body is not None,
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TargetUnreachable(f"connection error: {type(exc).__name__}") from None
        except httpx.TimeoutException as exc:
            # sent (or partly sent) and no answer: a PATCH may still be applied later
            raise TargetUnreachable(
                f"timeout: {type(exc).__name__}", in_doubt=body is not None
            ) from None
        except httpx.HTTPError as exc:
            raise TargetUnreachable(
                f"connection error: {type(exc).__name__}", in_doubt=body is not None
            ) from None
        finally:
            if reusable:
                self._idle.append(client)
            else:
                await self._discard(client)
        if not 200 <= answer.status_code < 300:
            raise TargetRefused(
                answer.status_code, snippet(answer.text), answer.headers.get("retry-after")
            )
        try:
            parsed = orjson.loads(answer.content) if answer.content else {}
        except orjson.JSONDecodeError:
            return {}
        if isinstance(parsed, dict) and parsed.get("success") is False:
            raise TargetDeclined(
                answer.status_code,
                snippet(answer.text),
                error_code(parsed),
                answer.headers.get("retry-after"),
            )
        data = parsed.get("data") if isinstance(parsed, dict) else None
        return data if isinstance(data, dict) else {}
