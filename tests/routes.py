"""Every route of the app as (method, concrete path), for tests that must reach them all."""

from __future__ import annotations

from starlette.routing import Route

from bridge.app import build_app
from bridge.config import Settings

OPEN = {"/admin", "/admin/", "/admin/login"}  # redirect, sign-in form, sign-in itself


def concrete(path: str) -> str:
    return (
        path.replace("{id}", "1-1")
        .replace("{source}", "demo")
        .replace("{external_id:path}", "ext-1")
    )


def admin_routes(settings: Settings, *, include_open: bool = False) -> list[tuple[str, str]]:
    """Every admin (method, path); the sign-in routes only with `include_open`."""
    out = []
    for route in build_app(settings).routes:
        assert isinstance(route, Route)
        if route.path.startswith("/admin") and (include_open or route.path not in OPEN):
            out += [(m, concrete(route.path)) for m in sorted(route.methods or ()) if m != "HEAD"]
    return out
