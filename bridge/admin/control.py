"""The page's delivery controls: a page per dead letter (events, attempts, replay history,
the letter it came from), dead letters filtered by reason, source and time with replay and
purge of what matches, a link set inline on an unroutable row (it replays), retry-now for a
scheduled retry, and pause / resume of delivery (RQ's suspension, as `rq suspend` sets it).

Every button is a POST form with the page's CSRF token, like the rest of the page; the
guard (guard.py) checks it and hands the form over before a handler here runs.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bridge.admin.auth import csrf_token
from bridge.admin.events_page import events_link
from bridge.admin.guard import Page, posted
from bridge.admin.page import (
    _admin_token,
    _back,
    _button,
    _page,
    _settings,
    esc,
    when,
)
from bridge.errors import NotFound, PayloadError
from bridge.eventlog import parse_since
from bridge.intents import check_id
from bridge.store import DeadLetter, Store, conversation_key
from bridge.store.rq_jobs import link


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Which dead letters the list shows and the bulk buttons act on."""

    reason: str = ""
    source: str = ""
    since: str = ""

    @classmethod
    def of(cls, params: dict[str, str]) -> LetterFilter:
        f = cls(params.get("reason", ""), params.get("source", ""), params.get("since", ""))
        if f.since:
            parse_since(f.since)  # a bad time is a 400 naming `since`
        return f

    def matches(self, d: DeadLetter) -> bool:
        if self.reason and d.reason != self.reason:
            return False
        if self.source and self.source not in d.summary()["source"].split(","):
            return False
        return not self.since or d.created_ms >= parse_since(self.since)

    def fields(self) -> str:
        return "".join(
            f'<input type="hidden" name="{k}" value="{esc(v)}">'
            for k, v in (("reason", self.reason), ("source", self.source), ("since", self.since))
        )


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


# --- pause / resume -------------------------------------------------------------------------


async def pause(request: Request) -> Response:
    await _store(request).pause_delivery(True)
    return _back("paused")


async def resume(request: Request) -> Response:
    await _store(request).pause_delivery(False)
    return _back("resumed")


def pause_button(paused: bool | None, csrf: str) -> str:
    if paused:
        return _button("/admin/ui/resume", "Resume delivery", csrf, ident="resume")
    return _button("/admin/ui/pause", "Pause delivery", csrf, danger=True, ident="pause")


def paused_banner(paused: bool | None) -> str:
    if not paused:
        return ""
    return (
        '<p class="error paused" role="status" id="paused">Delivery is paused (RQ suspension): '
        "webhooks are still accepted and queued; nothing is sent until it is resumed.</p>"
    )


# --- dead letters: filters, bulk, inline link --------------------------------------------------


def filter_form(f: LetterFilter, reasons: list[str], csrf: str, shown: int) -> str:
    options = "".join(
        f'<option value="{esc(r)}"{" selected" if r == f.reason else ""}>{esc(r)}</option>'
        for r in reasons
    )
    return (
        '<form method="get" action="/admin/" class="filters" id="dl-filters">'
        f'<label>Reason <select name="reason"><option value="">any</option>{options}</select>'
        f'</label> <label>Source <input name="source" value="{esc(f.source)}"></label> '
        f'<label>Since <input name="since" value="{esc(f.since)}" placeholder="2h"></label> '
        '<button type="submit" id="filter-dead-letters">Filter</button></form>'
        f'<div class="bulk"><form method="post" action="/admin/ui/dlq/replay-matching">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">{f.fields()}'
        f'<button type="submit" id="replay-matching">Replay these {shown}</button></form>'
        f'<form method="post" action="/admin/ui/dlq/purge-matching" '
        'data-confirm="Purge every dead letter shown? The changes are dropped.">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">{f.fields()}'
        f'<button type="submit" class="danger" id="purge-matching">Purge these {shown}</button>'
        "</form></div>"
    )


async def _matching(request: Request, form: dict[str, str]) -> list[str]:
    f = LetterFilter.of(form)
    return [d.id for d in await _store(request).dead_letters(100_000) if f.matches(d)]


async def replay_matching(request: Request) -> Response:
    form = posted(request)
    ids = await _matching(request, form)
    result = await _store(request).replay(ids, coalesce_ms=_settings(request).delivery.coalesce_ms)
    stuck = sum(1 for r in result.values() if r == "unroutable")
    return _back("replayed_matching" if not stuck else "unroutable")


async def purge_matching(request: Request) -> Response:
    form = posted(request)
    await _store(request).purge(await _matching(request, form))
    return _back("purged")


def link_form(d: DeadLetter, csrf: str) -> str:
    """On an unroutable row: set its link here; what waited is replayed at once."""
    return (
        f'<form method="post" action="/admin/ui/links" class="inline-link" id="link-{esc(d.id)}">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        f'<input type="hidden" name="source" value="{esc(d.source)}">'
        f'<input type="hidden" name="external_id" value="{esc(d.external_id)}">'
        '<input name="agent_id" placeholder="agent id" required aria-label="agent id">'
        '<input name="convo_id" placeholder="conversation id" required aria-label="conversation id">'
        f'<button type="submit" id="set-link-{esc(d.id)}">Set link</button></form>'
    )


async def set_link(request: Request) -> Response:
    form = posted(request)
    settings = _settings(request)
    source = form.get("source", "")
    if source not in settings.sources:
        raise PayloadError(f"source: no source named {source[:64]!r}")
    ext = check_id(form.get("external_id"), "external_id")
    agent = check_id(form.get("agent_id"), "agent_id")
    convo = check_id(form.get("convo_id"), "convo_id")
    await link(
        _store(request), source, ext, agent, convo, coalesce_ms=settings.delivery.coalesce_ms
    )
    return _back("linked")


# --- one dead letter ---------------------------------------------------------------------------


def _history(d_id: str, history: dict[str, str]) -> str:
    if not history:
        return '<p class="empty" id="replay-history">Never replayed.</p>'
    rows = "".join(
        f"<tr><td>{esc(when(int(at)))}</td><td>{esc(what)}</td></tr>"
        for at, what in sorted(history.items())
    )
    return (
        '<table id="replay-history"><thead><tr><th>At</th><th>What</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


async def dead_letter_view(request: Request) -> Response:
    nonce = secrets.token_urlsafe(16)
    d_id = request.path_params["id"]
    store = _store(request)
    history = await store.replay_history(d_id)
    try:
        d = await store.dead_letter(d_id)
    except NotFound:
        if not history:
            missing = f'<main><p class="error" role="alert">No dead letter {esc(d_id)}.</p>'
            return _page(missing + '<a href="/admin/">Back</a></main>', nonce, 404)
        body = (
            f"<header><h1>Dead letter {esc(d_id)}</h1>"
            '<a href="/admin/">Back to the admin page</a></header><main>'
            "<p>Replayed and gone; its history:</p>"
            f"{_history(d_id, history)}</main>"
        )
        return _page(body, nonce)
    csrf = csrf_token(_admin_token(request))
    s = d.summary()
    base = f"/admin/ui/dlq/{quote(d.id, safe='')}"
    where = (
        f'<a href="/admin/ui/conversation?{urlencode({"agent_id": d.agent_id, "convo_id": d.convo_id})}">'
        f"{esc(d.agent_id)} / {esc(d.convo_id)}</a>"
        if d.agent_id
        else f"{esc(d.source)}: {esc(d.external_id)} <em>(no link)</em> {link_form(d, csrf)}"
    )
    came = ""
    if d.came_from:
        came = (
            f'<p id="came-from">A replay of <a href="/admin/ui/dlq/{quote(d.came_from, safe="")}">'
            f"{esc(d.came_from)}</a> that failed again.</p>"
        )
    events = "".join(
        f'<tr><td>{esc(e["source"])}</td><td><a href="{esc(events_link(event_id=e["event_id"]))}">'
        f"<code>{esc(e['event_id'])}</code></a></td><td><code>{esc(e['change'])}</code></td>"
        f"<td><code>{esc(e['value'])}</code></td><td>{esc(when(e['occurred_at']))}</td></tr>"
        for e in d.to_json()["events"]
    )
    attempts = "".join(
        f"<tr><td>{esc(when(a.get('at')))}</td><td>{esc(a.get('status', ''))}</td>"
        f'<td class="answer">{esc(a.get("answer", ""))}</td></tr>'
        for a in d.attempts
    )
    body = f"""<header><h1>Dead letter {esc(d.id)}</h1>
<a href="/admin/">Back to the admin page</a></header><main>
<section class="cards" id="letter"><div class="card"><span>Reason</span><b>{esc(d.reason)}</b></div>
<div class="card"><span>Since</span><b>{esc(when(d.created_ms))}</b></div>
<div class="card"><span>Changes</span><b>{esc(s["changes"])}</b></div>
<div class="card"><span>Last status</span><b>{esc(d.last_status or "—")}</b></div></section>
<p>Conversation: {where}</p>{came}
<p class="answer">Last answer: {esc(d.last_snippet or "—")}</p>
<div class="bulk">{_button(base + "/replay", "Replay", csrf, ident="replay")}
{_button(base + "/purge", "Purge", csrf, danger=True, ident="purge")}</div>
<h2>Events</h2><table id="letter-events"><thead><tr><th>Source</th><th>Event id</th>
<th>Change</th><th>Value</th><th>Occurred</th></tr></thead><tbody>{events}</tbody></table>
<h2>Attempts</h2>{
        f'<table id="letter-attempts"><thead><tr><th>At</th><th>Status</th><th>Answer</th></tr></thead><tbody>{attempts}</tbody></table>'
        if attempts
        else '<p class="empty" id="letter-attempts">None.</p>'
    }
<h2>Replay history</h2>{_history(d.id, history)}</main>"""
    return _page(body, nonce)


# --- retry now -----------------------------------------------------------------------------------


async def retry_now(request: Request) -> Response:
    form = posted(request)
    agent = check_id(form.get("agent_id"), "agent_id")
    convo = check_id(form.get("convo_id"), "convo_id")
    moved = await _store(request).retry_now(conversation_key(agent, convo))
    target = "/admin/ui/conversation?" + urlencode({"agent_id": agent, "convo_id": convo})
    return RedirectResponse(target + ("&retried=1" if moved else "&retried=0"), status_code=303)


def retry_now_button(agent: str, convo: str, csrf: str) -> str:
    return (
        '<form method="post" action="/admin/ui/retry-now">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        f'<input type="hidden" name="agent_id" value="{esc(agent)}">'
        f'<input type="hidden" name="convo_id" value="{esc(convo)}">'
        '<button type="submit" id="retry-now">Retry now</button></form>'
    )


def routes() -> list[Page]:
    return [
        Page("/ui/pause", pause, "POST"),
        Page("/ui/resume", resume, "POST"),
        Page("/ui/links", set_link, "POST"),
        Page("/ui/retry-now", retry_now, "POST"),
        Page("/ui/dlq/replay-matching", replay_matching, "POST"),
        Page("/ui/dlq/purge-matching", purge_matching, "POST"),
        Page("/ui/dlq/{id}", dead_letter_view, "GET"),
    ]
