"""Admin routes under /admin/: dead letters, links, status. Bearer BRIDGE_ADMIN_TOKEN.

While no admin token is configured every admin route answers 404, as if it did not exist.
The same routes accept the admin page's sign-in cookie; a request authenticated by cookie
that changes something must also carry the page's CSRF token in `X-CSRF-Token`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.config import Settings
from bridge.errors import NotFound, PayloadError, StoreUnavailable
from bridge.intents import check_id
from bridge.providers.base import same
from bridge.store import Store

Handler = Callable[[Request], Awaitable[Response]]


COOKIE = "cb_admin"
SAFE_METHODS = ("GET", "HEAD")


SESSION_S = 12 * 3600


def _session_mac(admin_token: str, expiry: str) -> str:
    return hmac.new(admin_token.encode(), f"session:{expiry}".encode(), hashlib.sha256).hexdigest()


def session_cookie(admin_token: str, now: float | None = None) -> str:
    """`<expiry>.<HMAC of it>`: proves a sign-in without carrying the token itself; expires
    on its own, and changing the admin token ends every session."""
    expiry = str(int((time.time() if now is None else now) + SESSION_S))
    return f"{expiry}.{_session_mac(admin_token, expiry)}"


def valid_session(value: str, admin_token: str) -> bool:
    expiry, _, mac = value.partition(".")
    if not admin_token or not expiry.isdigit() or int(expiry) < time.time():
        return False
    return same(_session_mac(admin_token, expiry), mac)


def csrf_token(admin_token: str) -> str:
    """Derived from the admin token: only someone signed in can know it."""
    return hmac.new(admin_token.encode(), b"convo-bridge admin csrf", hashlib.sha256).hexdigest()


def page_headers(nonce: str | None) -> dict[str, str]:
    """No framing, no caching, no sniffing; scripts and styles only by nonce."""
    source = f"'nonce-{nonce}'" if nonce else "'none'"
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src {source}; style-src {source}; img-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def authorized(request: Request, settings: Settings) -> str | None:
    """How the request proved it holds the admin token: "bearer", "cookie", or None."""
    token = settings.admin_token
    if not token:
        return None
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and same(token, value.strip()):
        return "bearer"
    if valid_session(request.cookies.get(COOKIE, ""), token):
        return "cookie"
    return None


async def status_report(store: Store, settings: Settings) -> dict[str, Any]:
    """The store's status plus the live worker count (None when RQ cannot say)."""
    from workers.worker import live_workers

    report = await store.status()
    try:
        report["workers_alive"] = await asyncio.to_thread(live_workers, settings.redis_url)
    except Exception:  # the count is informative; its absence is not an error
        report["workers_alive"] = None
    return report


def guarded(handler: Handler) -> Handler:
    async def wrapper(request: Request) -> Response:
        settings: Settings = request.app.state.settings
        if not settings.admin_token:
            return JSONResponse({"error": "not_found"}, status_code=404)
        how = authorized(request, settings)
        if how is None:
            return JSONResponse(
                {"error": "unauthorized", "detail": "send Authorization: Bearer <admin token>"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer", **page_headers(None)},
            )
        if (
            how == "cookie"
            and request.method not in SAFE_METHODS
            and not same(csrf_token(settings.admin_token), request.headers.get("x-csrf-token", ""))
        ):
            return JSONResponse(
                {"error": "forbidden", "detail": "X-CSRF-Token is missing or wrong"},
                status_code=403,
                headers=page_headers(None),
            )
        answer = await _handled(handler, request)
        answer.headers.update(page_headers(None))
        return answer

    return wrapper


async def _handled(handler: Handler, request: Request) -> Response:
    """The handler's answer, with the store's and the input's errors as clear answers."""
    try:
        return await handler(request)
    except NotFound as exc:
        return JSONResponse({"error": "not_found", "detail": str(exc)}, status_code=404)
    except PayloadError as exc:
        return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=400)
    except StoreUnavailable:
        return JSONResponse(
            {"error": "unavailable", "detail": "Redis is unreachable"}, status_code=503
        )


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise PayloadError("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise PayloadError("expected a JSON object")
    return body


async def status(request: Request) -> Response:
    return JSONResponse(await status_report(_store(request), request.app.state.settings))


async def dlq_list(request: Request) -> Response:
    letters = await _store(request).dead_letters()
    source = request.query_params.get("source")
    return JSONResponse(
        [
            d.summary()
            for d in letters
            if source is None or source in d.summary()["source"].split(",")
        ]
    )


async def dlq_show(request: Request) -> Response:
    letter = await _store(request).dead_letter(request.path_params["id"])
    return JSONResponse(letter.to_json())


async def _selected(request: Request) -> list[str]:
    """Ids from {"ids": [...]}, {"all": true} or {"source": "x"}."""
    body = await _json_body(request)
    store = _store(request)
    if body.get("all") is True:
        return await store.dead_letter_ids(100_000)
    if isinstance(body.get("source"), str):
        return [
            d.id
            for d in await store.dead_letters(100_000)
            if body["source"] in d.summary()["source"].split(",")
        ]
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise PayloadError('expected {"ids": [...]}, {"all": true} or {"source": "NAME"}')
    return ids


async def dlq_replay_one(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    dl_id = request.path_params["id"]
    res = await _store(request).replay([dl_id], coalesce_ms=settings.delivery.coalesce_ms)
    if res.get(dl_id) == "missing":
        raise NotFound(f"no dead letter {dl_id!r}")
    return JSONResponse({"replayed": res})


async def dlq_replay(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    ids = await _selected(request)
    res = await _store(request).replay(ids, coalesce_ms=settings.delivery.coalesce_ms)
    return JSONResponse({"replayed": res})


async def dlq_delete(request: Request) -> Response:
    n = await _store(request).purge([request.path_params["id"]])
    if not n:
        raise NotFound(f"no dead letter {request.path_params['id']!r}")
    return JSONResponse({"purged": n})


async def dlq_purge(request: Request) -> Response:
    ids = await _selected(request)
    return JSONResponse({"purged": await _store(request).purge(ids)})


async def links_list(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    return JSONResponse(await _store(request).links(settings.sources))


def _link_target(request: Request) -> tuple[str, str]:
    settings: Settings = request.app.state.settings
    source = request.path_params["source"]
    if source not in settings.sources:
        raise NotFound(f"no source named {source[:64]!r}")
    return source, check_id(request.path_params["external_id"], "external_id")


async def link_get(request: Request) -> Response:
    source, ext = _link_target(request)
    agent, convo = await _store(request).get_link(source, ext)
    return JSONResponse(
        {"source": source, "external_id": ext, "agent_id": agent, "convo_id": convo}
    )


async def link_put(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    source, ext = _link_target(request)
    body = await _json_body(request)
    agent = check_id(body.get("agent_id"), "agent_id")
    convo = check_id(body.get("convo_id"), "convo_id")
    result = await _store(request).link(
        source, ext, agent, convo, coalesce_ms=settings.delivery.coalesce_ms
    )
    return JSONResponse(
        {
            "source": source,
            "external_id": ext,
            "agent_id": agent,
            "convo_id": convo,
            "waiting_events": result,
        }
    )


async def link_delete(request: Request) -> Response:
    source, ext = _link_target(request)
    if not await _store(request).delete_link(source, ext):
        raise NotFound(f"no link for {source} {ext!r}")
    return JSONResponse({"deleted": True})


def routes() -> list[Route]:
    return [
        Route("/admin/status", guarded(status), methods=["GET"]),
        Route("/admin/dlq", guarded(dlq_list), methods=["GET"]),
        Route("/admin/dlq/replay", guarded(dlq_replay), methods=["POST"]),
        Route("/admin/dlq/purge", guarded(dlq_purge), methods=["POST"]),
        Route("/admin/dlq/{id}", guarded(dlq_show), methods=["GET"]),
        Route("/admin/dlq/{id}", guarded(dlq_delete), methods=["DELETE"]),
        Route("/admin/dlq/{id}/replay", guarded(dlq_replay_one), methods=["POST"]),
        Route("/admin/links", guarded(links_list), methods=["GET"]),
        Route("/admin/links/{source}/{external_id:path}", guarded(link_get), methods=["GET"]),
        Route("/admin/links/{source}/{external_id:path}", guarded(link_put), methods=["PUT"]),
        Route("/admin/links/{source}/{external_id:path}", guarded(link_delete), methods=["DELETE"]),
    ]
