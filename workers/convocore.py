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
from workers.http1 import Http1Transport

SNIPPET_CHARS = 200
ONE_CONNECTION = httpx.Limits(max_connections=1, max_keepalive_connections=1)


def snippet(text: str) -> str:
    return " ".join(text.split())[:SNIPPET_CHARS]


def proxy_for(url: str) -> str | None:
    """The proxy HTTP_PROXY / HTTPS_PROXY / ALL_PROXY name for `url`, or None (none set, or
    NO_PROXY exempts its host)."""
    parts = urlsplit(url)
    proxies = getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy is None or proxy_bypass(parts.hostname or ""):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"  # as httpx reads a bare host:port


def error_code(body: dict[str, Any]) -> str:
    """The code of either documented error shape: {"code": …} or {"error": {"code": …}}."""
    err = body.get("error")
    code = err.get("code") if isinstance(err, dict) else body.get("code")
    return code if isinstance(code, str) else ""


class Convocore:
    """One keep-alive connection per concurrent call, reused last-in first-out. `ck` is
    `<agent>/<convo>`, each part already percent-encoded (store.conversation_key), so ids
    cannot change the URL's shape.

    Requests go straight to an httpx transport (its public transport API), built once here:
    the client's per-request layers (URL and header merging, cookies, the auth and redirect
    flows) were a quarter of a PATCH's CPU, and the bridge uses none of them. The transport
    is workers/http1.py's, one connection each (httpx's own, through a proxy, when one
    applies)."""

    def __init__(self, settings: ConvocoreSettings, *, timeout_s: float) -> None:
        headers = {
            "Accept": "*/*",
            "Accept-Encoding": "gzip, deflate",
            "Content-Type": "application/json",
            "User-Agent": "convo-bridge",
        }
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        self._root = settings.base_url.rstrip("/")
        self._headers = httpx.Headers(headers)  # copied per request, not parsed again
        self._deadline_s = timeout_s
        self._tls = httpx.create_ssl_context()  # one CA bundle load for all connections
        # behind a proxy, httpx's own transport through it; else workers/http1.py's
        self._proxy = proxy_for(settings.base_url)
        self._idle: list[httpx.AsyncBaseTransport] = []
        self._all: list[httpx.AsyncBaseTransport] = []

    def _transport(self) -> httpx.AsyncBaseTransport:
        if self._idle:
            return self._idle.pop()
        transport: httpx.AsyncBaseTransport
        if self._proxy is None:
            transport = Http1Transport(verify=self._tls)
        else:
            transport = httpx.AsyncHTTPTransport(
                limits=ONE_CONNECTION, verify=self._tls, proxy=self._proxy
            )
        self._all.append(transport)
        return transport

    async def close(self) -> None:
        for transport in self._all:
            await transport.aclose()
        self._all.clear()
        self._idle.clear()

    async def _discard(self, transport: httpx.AsyncBaseTransport) -> None:
        self._all.remove(transport)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await transport.aclose()

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
        request = httpx.Request(
            method,
            self._root + self.path(ck),
            headers=self._headers,
            content=body,  # no per-operation timeouts: the one deadline below covers all
        )
        transport = self._transport()  # after anything that may raise: it goes back below
        reusable = True
        try:
            async with asyncio.timeout(self._deadline_s):
                answer = await transport.handle_async_request(request)
                try:
                    await answer.aread()
                finally:
                    await answer.aclose()
        except TimeoutError:
            # the deadline passed mid-request; it may have been sent: a PATCH is in doubt.
            # The connection was cut mid-answer: it is closed, not reused.
            reusable = False
            raise TargetUnreachable(
                f"timeout: no whole answer within {self._deadline_s:g} s",
                in_doubt=body is not None,
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TargetUnreachable(f"connection error: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise TargetUnreachable(
                f"connection error: {type(exc).__name__}", in_doubt=body is not None
            ) from None
        finally:
            if reusable:
                self._idle.append(transport)
            else:
                await self._discard(transport)
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
