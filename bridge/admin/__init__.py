"""The admin surface under /admin/: who may use it (auth.py), the JSON API (api.py) and the
page for people (page.py, page.css, page.js)."""

from starlette.routing import Route

from bridge.admin import api, page


def routes() -> list[Route]:
    return [*page.routes(), *api.routes()]


__all__ = ["routes"]
