"""How every refused request is answered: one handler per error class (starlette looks
them up by class, most specific first), each through `refusal`, the one renderer: JSON
`{"error": code, "detail": …}` for webhooks and the admin API, plain text for the admin
page; every admin answer with the page's headers (no framing, no caching)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from bridge.admin.auth import page_headers
from bridge.admin.guard import Api, Page
from bridge.errors import AccessError, NotFound, RequestError, SignedOut, StoreUnavailable
from bridge.logs import fields

log = logging.getLogger("convo_bridge.ingest")


def refusal(
    request: Request,
    status: int,
    code: str,
    detail: str | None,
    headers: dict[str, str] | None = None,
) -> Response:
    route = request.scope.get("route")
    headers = dict(headers or {})
    if isinstance(route, (Api, Page)):
        headers = {**page_headers(None), **headers}
    if isinstance(route, Page):
        text = detail or HTTPStatus(status).phrase
        return PlainTextResponse(text, status_code=status, headers=headers)
    body: dict[str, Any] = {"error": code}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)


async def request_error(request: Request, exc: Exception) -> Response:
    """A bad, slow or too large request: 4xx naming what was wrong."""
    assert isinstance(exc, RequestError)
    return refusal(request, exc.status, exc.code, exc.detail, exc.headers)


async def access_error(request: Request, exc: Exception) -> Response:
    """The admin guard's refusals (no admin token configured, a wrong one, no CSRF token)."""
    assert isinstance(exc, AccessError)
    return refusal(request, exc.status, exc.code, exc.detail, exc.headers)


async def signed_out(request: Request, exc: Exception) -> Response:
    """A page button or view without a sign-in: back to the sign-in form, nothing done."""
    assert isinstance(exc, SignedOut)
    return Response(status_code=exc.status, headers={**page_headers(None), **exc.headers})


async def not_found(request: Request, exc: Exception) -> Response:
    """A dead letter, link or source the request names that does not exist."""
    assert isinstance(exc, NotFound)
    return refusal(request, exc.status, exc.code, str(exc))


UNAVAILABLE = {  # what each side says while Redis is away (the reason stays in the log)
    "webhook": "the queue (Redis) is unreachable; retry later",
    "api": "Redis is unreachable",
    "page": "Redis is unreachable; try again shortly.",
}


async def unavailable(request: Request, exc: Exception) -> Response:
    """Redis is away: 503 with Retry-After, never 2xx for what was not written."""
    assert isinstance(exc, StoreUnavailable)
    route = request.scope.get("route")
    side = "page" if isinstance(route, Page) else "api" if isinstance(route, Api) else "webhook"
    source = str(request.path_params.get("source", ""))[:64]
    log.error("redis unavailable", extra=fields(source=source, error=str(exc)))
    return refusal(request, exc.status, exc.code, UNAVAILABLE[side], exc.headers)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client closed the connection before its body was read: nobody hears the answer."""
    return Response(status_code=400)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (no such route, method not allowed) as JSON errors too."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": code, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )


HANDLERS = {
    RequestError: request_error,
    AccessError: access_error,
    SignedOut: signed_out,
    NotFound: not_found,
    StoreUnavailable: unavailable,
    ClientDisconnect: client_gone,
    HTTPException: http_error,
}
