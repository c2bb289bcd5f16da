"""The Convocore client: PATCH and GET one conversation, or raise a typed DeliveryError."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from bridge.config import ConvocoreSettings
from bridge.errors import TargetRefused, TargetUnreachable

SNIPPET_CHARS = 200


def snippet(text: str) -> str:
    return " ".join(text.split())[:SNIPPET_CHARS]


class Convocore:
    """One keep-alive httpx client per worker process. `ck` is `<agent>/<convo>`, each part
    already percent-encoded (store.conversation_key), so ids cannot change the URL's shape."""

    def __init__(self, settings: ConvocoreSettings, *, timeout_s: float, connections: int) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "convo-bridge"}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        self.client = httpx.AsyncClient(
            base_url=settings.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    async def close(self) -> None:
        await self.client.aclose()

    @staticmethod
    def path(ck: str) -> str:
        agent, _, convo = ck.partition("/")
        return f"/agents/{agent}/convos/{convo}"

    async def patch(self, ck: str, conversation: dict[str, Any]) -> dict[str, Any]:
        body = orjson.dumps({"conversation": conversation})
        return await self._call("PATCH", ck, body)

    async def get(self, ck: str) -> dict[str, Any]:
        return await self._call("GET", ck, None)

    async def _call(self, method: str, ck: str, body: bytes | None) -> dict[str, Any]:
        try:
            answer = await self.client.request(method, self.path(ck), content=body)
        except httpx.TimeoutException as exc:
            raise TargetUnreachable(f"timeout: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise TargetUnreachable(f"connection error: {type(exc).__name__}") from None
        if not 200 <= answer.status_code < 300:
            raise TargetRefused(
                answer.status_code, snippet(answer.text), answer.headers.get("retry-after")
            )
        try:
            parsed = orjson.loads(answer.content) if answer.content else {}
        except orjson.JSONDecodeError:
            return {}
        data = parsed.get("data") if isinstance(parsed, dict) else None
        return data if isinstance(data, dict) else {}
