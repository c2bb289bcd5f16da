"""The page's event log view (/admin/ui/events): the search form of `convo-bridge events`,
one row per webhook request or PATCH, each opening on its headers, body and answer.

Every link leads on through the story: a conversation to its trace and its events, an event
id to its request and the PATCHes that carried it, a dead letter to its page. Server-rendered
like the rest of the page; `<details>` opens a row without any script.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response

from bridge.admin.guard import Page
from bridge.admin.page import _page, esc, when
from bridge.errors import PayloadError
from bridge.eventlog import VERDICTS, EventEntry, EventQuery, query_from, search
from bridge.store import Store, split_key

FILTERS = (
    ("source", "Source"),
    ("convo", "Conversation (agent/convo)"),
    ("external_id", "External id"),
    ("event_id", "Event id"),
    ("status", "Status"),
    ("since", "Since (15m, 2h, 1d…)"),
)


def events_link(**params: str) -> str:
    return "/admin/ui/events?" + urlencode(params)


def trace_link(ck: str) -> str:
    agent, convo = split_key(ck)
    return "/admin/ui/conversation?" + urlencode({"agent_id": agent, "convo_id": convo})


def _form(params: dict[str, str]) -> str:
    inputs = "".join(
        f'<label>{esc(label)} <input name="{name}" value="{esc(params.get(name, ""))}"></label> '
        for name, label in FILTERS
    )
    chosen = params.get("verdict", "")
    options = "".join(
        f'<option value="{v}"{" selected" if v == chosen else ""}>{v}</option>' for v in VERDICTS
    )
    kind = params.get("kind", "")
    kinds = "".join(
        f'<option value="{k}"{" selected" if k == kind else ""}>{label}</option>'
        for k, label in (
            ("", "requests and PATCHes"),
            ("webhook", "requests"),
            ("patch", "PATCHes"),
        )
    )
    return (
        '<form method="get" action="/admin/ui/events" class="filters" id="event-filters">'
        f'{inputs}<label>Verdict <select name="verdict"><option value="">any</option>{options}'
        f'</select></label> <label>Kind <select name="kind">{kinds}</select></label> '
        '<button type="submit" id="search-events">Search</button></form>'
    )


def _conversations(e: EventEntry) -> str:
    out = []
    for ck in e.conversations:
        if not ck:
            out.append("<em>(no link)</em>")
            continue
        agent, convo = split_key(ck)
        out.append(
            f'<a href="{esc(trace_link(ck))}">{esc(agent)} / {esc(convo)}</a> '
            f'<a class="minor" href="{esc(events_link(convo=f"{agent}/{convo}"))}">events</a>'
        )
    return "<br>".join(out) or "—"


def _event_ids(e: EventEntry) -> str:
    verdicts = e.event_verdicts or [""] * len(e.event_ids)
    return (
        " ".join(
            f'<a href="{esc(events_link(event_id=i))}"><code>{esc(i)}</code></a>'
            + (f' <span class="verdict v-{esc(v)}">{esc(v)}</span>' if v else "")
            + (
                f' <span class="claimed">(the sender said {esc(when(c))}: in the future, '
                "not believed)</span>"
                if (c := e.claimed_at(n))
                else ""
            )
            for n, (i, v) in enumerate(zip(e.event_ids, verdicts, strict=True))
        )
        or "—"
    )


def _details(e: EventEntry) -> str:
    parts = []
    if e.why:
        parts.append(f"<p><b>Why:</b> {esc(e.why)}</p>")
    if e.external_ids:
        parts.append(f"<p><b>External ids:</b> {esc(', '.join(e.external_ids))}</p>")
    if e.kind == "patch":
        parts.append(
            f"<p><b>Attempt</b> {esc(e.attempt)} · {esc(e.duration_ms)} ms · "
            f"<b>answer</b> <code>{esc(e.answer or '—')}</code></p>"
        )
        if e.dead_letter:
            href = f"/admin/ui/dlq/{quote(e.dead_letter, safe='')}"
            parts.append(
                f'<p><b>Dead letter</b> <a href="{esc(href)}">{esc(e.dead_letter)}</a></p>'
            )
    if e.headers:
        rows = "".join(f"{esc(k)}: {esc(v)}\n" for k, v in e.headers.items())
        parts.append(f"<p><b>Headers</b></p><pre>{rows}</pre>")
    size = f"{e.body_bytes} bytes"
    if e.body is None:
        parts.append(f"<p><b>Body</b> {esc(size)}, not kept (<code>[eventlog] bodies</code>)</p>")
    else:
        cut = " (cut)" if len(e.body.encode()) < e.body_bytes else ""
        parts.append(f"<p><b>Body</b> {esc(size)}{cut}</p><pre>{esc(e.body)}</pre>")
    return "".join(parts)


def _rows(entries: list[EventEntry]) -> str:
    rows = []
    for e in entries:
        what = "PATCH" if e.kind == "patch" else f"POST {esc(', '.join(e.sources))}"
        rows.append(
            f'<tr id="ev-{esc(e.id)}"><td>{esc(when(e.at_ms))}</td><td>{what}</td>'
            f"<td>{esc(e.status)}</td>"
            f'<td><span class="verdict v-{esc(e.verdict)}">{esc(e.verdict)}</span></td>'
            f"<td>{_conversations(e)}</td><td>{_event_ids(e)}</td>"
            f"<td><details><summary>open</summary>{_details(e)}</details></td></tr>"
        )
    return "".join(rows)


async def events_view(request: Request) -> Response:
    nonce = secrets.token_urlsafe(16)
    params = {k: v for k, v in request.query_params.items() if v}
    try:
        query = query_from(params)
    except PayloadError as exc:
        body = f'<main><p class="error" role="alert">{esc(exc)}</p>{_form(params)}</main>'
        return _page(_header() + body, nonce, 400)
    store: Store = request.app.state.store
    entries = await search(store, query)
    table = (
        '<table id="events"><thead><tr><th>At</th><th>What</th><th>Status</th><th>Verdict</th>'
        "<th>Conversation</th><th>Events</th><th></th></tr></thead>"
        f"<tbody>{_rows(entries)}</tbody></table>"
        if entries
        else '<p class="empty" id="no-events">No events match.</p>'
    )
    more = ""
    if len(entries) == query.limit:
        older = events_link(**{**params, "before": entries[-1].id})
        more = f'<p><a id="older" href="{esc(older)}">Older</a></p>'
    return _page(
        f"{_header()}<main>{_form(params)}{_summary(query)}{table}{more}</main>",
        nonce,
    )


def _header() -> str:
    return '<header><h1>Event log</h1><a href="/admin/">Back to the admin page</a></header>'


def _summary(query: EventQuery) -> str:
    return (
        f'<p class="minor">Newest first, {query.limit} at most per page. Each webhook request '
        "and each PATCH; open a row for its headers and body.</p>"
    )


def routes() -> list[Page]:
    return [Page("/ui/events", events_view, "GET")]
