"""The admin surface under /admin/: who may use it (auth.py, checked by guard.py), the JSON API (api.py) and the
page for people (page.py, page.css, page.js; the event log view in
events_page.py, the delivery controls and dead-letter pages in control.py)."""

from starlette.routing import Route

from bridge.admin import api, control, events_page, page


def routes() -> list[Route]:
    """Every admin route, relative to the /admin Mount that guards them (guard.py)."""
    return [*page.routes(), *events_page.routes(), *control.routes(), *api.routes()]


__all__ = ["routes"]
