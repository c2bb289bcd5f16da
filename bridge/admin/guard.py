"""The one guard in front of /admin/: who may use each admin route, decided before its
handler runs, and the page's headers on every admin answer.

Routes say which side of the surface they are on: `Api` (JSON; bearer BRIDGE_ADMIN_TOKEN,
or the page's cookie with the CSRF token in `X-CSRF-Token` on a change) or `Page` (HTML for
people; the sign-in cookie, the CSRF token in the posted form's `csrf` field). Refusals are
raised as AccessError and answered by their handlers (bridge/refusals.py): while no admin
token is configured every admin route is 404, as if it did not exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.admin.auth import (
    COOKIE,
    SAFE_METHODS,
    authorized,
    csrf_token,
    page_headers,
    valid_session,
)
from bridge.bodies import read_body
from bridge.config import Settings
from bridge.errors import AdminDisabled, CsrfRefused, SignedOut, Unauthorized
from bridge.providers.base import same

Endpoint = Callable[[Request], Any]
FORM_LIMIT = 4096  # a page form's body: a CSRF token and a few ids


class Api(Route):
    """A route of the admin JSON API."""

    def __init__(self, path: str, endpoint: Endpoint, method: str) -> None:
        super().__init__(path, endpoint, methods=[method])


class Page(Route):
    """A route of the admin page. `signed_out`: answered before sign-in too (the sign-in
    form and the sign-in itself); the others send a signed-out visitor back to it."""

    def __init__(
        self, path: str, endpoint: Endpoint, method: str, *, signed_out: bool = False
    ) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.signed_out = signed_out


class AdminMount(Mount):
    """The admin routes under `path`, behind AdminGuard. Its pattern takes a line break in
    the rest of the path, as the routes' own `{id}` does (a Mount's `.*` alone would not:
    such an id would be a 404 from outside the guard)."""

    def __init__(self, path: str, routes: Sequence[BaseRoute]) -> None:
        super().__init__(path, routes=routes, middleware=[Middleware(AdminGuard)])
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)


class AdminGuard:
    """Middleware of the /admin Mount: finds the route as the router will, checks access
    for it, reads a page form (CSRF and all: its handler finds it in `request.state.form`),
    and adds the page's headers to the answer. A path or method no route takes passes
    through, to be answered 404 or 405 like any other."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes: list[BaseRoute] = list(getattr(app, "routes", []))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._route(scope) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # as the router sets it: refusals are answered in its style
        request = Request(scope, receive)
        if isinstance(route, Page):
            await _let_in_page(request, route)
        else:
            _let_in_api(request)

        async def with_page_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in page_headers(None).items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_page_headers)

    def _route(self, scope: Scope) -> Route | None:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL and isinstance(route, (Api, Page)):
                return route
        return None


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _let_in_api(request: Request) -> None:
    token = _settings(request).admin_token
    if not token:
        raise AdminDisabled()
    how = authorized(request, _settings(request))
    if how is None:
        raise Unauthorized("send Authorization: Bearer <admin token>")
    if (
        how == "cookie"
        and request.method not in SAFE_METHODS
        and not same(csrf_token(token), request.headers.get("x-csrf-token", ""))
    ):
        raise CsrfRefused("X-CSRF-Token is missing or wrong")


async def _let_in_page(request: Request, route: Page) -> None:
    token = _settings(request).admin_token
    if not token:
        raise AdminDisabled()
    signed_in = valid_session(request.cookies.get(COOKIE, ""), token)
    if not signed_in and not route.signed_out:
        raise SignedOut()
    if request.method in SAFE_METHODS:
        return
    request.state.form = form = await _form(request)
    if not route.signed_out and not same(csrf_token(token), form.get("csrf", "")):
        raise CsrfRefused("Forbidden: missing or wrong CSRF token; reload the page and try again.")


async def _form(request: Request) -> dict[str, str]:
    """The posted form; a body over FORM_LIMIT is 413, one slower than the webhooks' read
    timeout is 408 (RequestError)."""
    raw = await read_body(request, FORM_LIMIT, _settings(request).ingest.read_timeout_s)
    parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def posted(request: Request) -> dict[str, str]:
    """The page form the guard read (every Page route taking a POST)."""
    form: dict[str, str] = request.state.form
    return form


__all__ = ["AdminGuard", "AdminMount", "Api", "Page", "posted"]
