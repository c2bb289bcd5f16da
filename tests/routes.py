"""Every route of the app as (method, concrete path), for tests that must reach them all."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from starlette.routing import BaseRoute, Mount, Route

from bridge.app import build_app
from bridge.config import Settings

OPEN = {"/admin", "/admin/", "/admin/login"}  # redirect, sign-in form, sign-in itself


def concrete(path: str) -> str:
    return (
        path.replace("{id}", "1-1")
        .replace("{source}", "demo")
        .replace("{external_id:path}", "ext-1")
    )


def flat(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every route, those inside a Mount with the Mount's path before."""
    for route in routes:
        if isinstance(route, Mount):
            yield from flat(route.routes, prefix + route.path)
        else:
            assert isinstance(route, Route)
            yield prefix + route.path, set(route.methods or ())


def admin_routes(settings: Settings, *, include_open: bool = False) -> list[tuple[str, str]]:
    """Every admin (method, path); the sign-in routes only with `include_open`."""
    out = []
    for path, methods in flat(build_app(settings).routes):
        if path.startswith("/admin") and (include_open or path not in OPEN):
            out += [(m, concrete(path)) for m in sorted(methods) if m != "HEAD"]
    return out
