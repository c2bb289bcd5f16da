"""What every answer to a webhook leaves behind, whoever gave it (the handler or an error's
handler): a count by source and status, a log line for a refusal, and the refused request's
event-log entry, written before the answer leaves (its accepted twin is written with the
accept itself). A route middleware, so the handler raises and forgets."""

from __future__ import annotations

import logging

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge import metrics
from bridge.config import Settings
from bridge.errors import StoreUnavailable
from bridge.eventlog import body_secret, log_bounds, secret_headers, webhook_row
from bridge.logs import fields

log = logging.getLogger("convo_bridge.ingest")


class WebhookOutcome:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None

        async def counted(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if not 400 <= message["status"] < 500:  # the hot path: count, send on
                    _count(scope, message["status"])
                    await send(message)
                    return
                start = message  # held until the body: the refusal is logged first
                return
            if start is not None:
                first, start = start, None
                await _account(Request(scope), first["status"], message.get("body", b""))
                await send(first)
            await send(message)

        await self.app(scope, receive, counted)


def _count(scope: Scope, status: int) -> None:
    """Every answer by source and status (read from the scope: no Request per answer)."""
    name = scope["path_params"]["source"]
    sources = scope["app"].state.settings.sources
    label = name if name in sources else metrics.UNKNOWN_SOURCE
    metrics.child(metrics.WEBHOOK_REQUESTS, label, str(status)).inc()


async def _account(request: Request, status: int, body: bytes) -> None:
    """A refusal: counted, logged, and written to the event log before it leaves."""
    settings: Settings = request.app.state.settings
    name = request.path_params["source"]
    _count(request.scope, status)
    why = _detail(body)
    log.info("refused", extra=fields(source=name[:64], status=status, detail=why))
    if settings.eventlog.enabled:
        await _log_refused(request, settings, status, why)


def _detail(body: bytes) -> str:
    try:
        return str(orjson.loads(body).get("detail", ""))
    except (orjson.JSONDecodeError, AttributeError):
        return ""


async def _log_refused(request: Request, settings: Settings, status: int, why: str) -> None:
    source = settings.sources.get(request.path_params["source"])  # the whole name: its secrets
    name = request.path_params["source"][:64]
    row = webhook_row(
        settings.eventlog,
        source=name,
        status=status,
        headers=request.headers,
        body=getattr(request.state, "body", b""),
        secret_headers=secret_headers(source),
        body_secret=body_secret(source),
        verdict="refused",
        why=why,
    )
    try:
        await request.app.state.store.log([row], log_bounds(settings.eventlog))
    except StoreUnavailable as exc:
        log.warning("event log not written", extra=fields(source=name, error=str(exc)))
