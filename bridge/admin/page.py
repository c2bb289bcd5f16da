"""The /admin/ page: queue figures, dead letters with replay and purge, links.

Plain server-rendered HTML; the only script is an optional auto-refresh and a confirm on
purge. Sign-in is a form that checks BRIDGE_ADMIN_TOKEN and sets an HttpOnly,
SameSite=Strict cookie scoped to /admin holding an expiring HMAC of the sign-in (never the
token), Secure when the request came over https (directly or per X-Forwarded-Proto). Every button is a POST form carrying a CSRF token
derived from the admin token (checked in constant time). Answers forbid framing (CSP
frame-ancestors and X-Frame-Options) and caching, and run scripts only by nonce.
Every value shown is HTML-escaped; tokens and secrets are never rendered.
"""

from __future__ import annotations

import asyncio
import html
import secrets
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bridge.admin.auth import (
    COOKIE,
    SESSION_S,
    csrf_token,
    page_headers,
    session_cookie,
    valid_session,
)
from bridge.admin.charts_view import charts_html
from bridge.admin.guard import Page, posted
from bridge.config import Settings
from bridge.errors import PayloadError, StoreUnavailable
from bridge.intents import check_id
from bridge.providers.base import same
from bridge.status import StatusReport, gated_accounts, status_report
from bridge.store import DeadLetter, Store
from bridge.store.rq_jobs import enqueue_replay_at, rq_durability
from bridge.times import iso
from bridge.trace import Change, Trace, trace

FORM_LIMIT = 4096
CSS = files("bridge.admin").joinpath("page.css").read_text(encoding="utf-8")
SCRIPT = files("bridge.admin").joinpath("page.js").read_text(encoding="utf-8")
NOTICES = {
    "replayed": "Replayed: the changes are queued again (newer values still win).",
    "replay_queued": "Replay of every dead letter queued as an RQ job on the convo-bridge "
    "queue; a worker runs it (newer values still win).",
    "purged": "Purged.",
    "missing": "That dead letter is gone already.",
    "unroutable": "Still unroutable: set a link for it first.",
    "signed_out": "Signed out.",
    "paused": "Delivery paused: webhooks are still queued; nothing is sent until resumed.",
    "resumed": "Delivery resumed.",
    "linked": "Linked: what waited for it is replayed.",
    "replayed_matching": "Replayed every dead letter shown (newer values still win).",
}


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def when(ms: int | None) -> str:
    return iso(ms) if ms else "—"


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _admin_token(request: Request) -> str:
    """The admin token: the guard answers 404 before any handler runs without one."""
    token = _settings(request).admin_token
    assert token
    return token


def _signed_in(request: Request) -> bool:
    return valid_session(request.cookies.get(COOKIE, ""), _settings(request).admin_token or "")


def _page(body: str, nonce: str, status: int = 200) -> HTMLResponse:
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>convo-bridge admin</title>
<style nonce="{nonce}">{CSS}</style></head>
<body>{body}</body></html>"""
    return HTMLResponse(doc, status_code=status, headers=page_headers(nonce))


def _login(nonce: str, message: str = "", status: int = 200) -> HTMLResponse:
    note = f'<p class="error" role="alert">{esc(message)}</p>' if message else ""
    return _page(
        f"""<main class="login"><h1>convo-bridge admin</h1>{note}
<form method="post" action="/admin/login">
<label for="token">Admin token (BRIDGE_ADMIN_TOKEN)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit" id="sign-in">Sign in</button></form></main>""",
        nonce,
        status,
    )


def _button(action: str, label: str, csrf: str, *, danger: bool = False, ident: str = "") -> str:
    cls = ' class="danger"' if danger else ""
    confirm = ' data-confirm="Purge for good? The changes are dropped."' if danger else ""
    return (
        f'<form method="post" action="{esc(action)}"{confirm}>'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        f'<button type="submit"{cls} id="{esc(ident)}">{esc(label)}</button></form>'
    )


def _status_cards(report: StatusReport) -> str:
    circuit = report.circuit
    cards = [
        ("Queue depth", report.queue_depth),
        ("Waiting now", report.conversations_waiting),
        ("In flight", report.in_flight),
        ("Scheduled retries", report.scheduled_retries),
        ("Next retry", when(report.next_retry_at)),
        ("Dead letters", report.dead_letters),
        (
            "Circuit",
            circuit.state + (f" until {when(circuit.until_ms)}" if circuit.until_ms else ""),
        ),
        ("Workers alive", "—" if report.workers_alive is None else report.workers_alive),
        ("Delivery", {None: "—", True: "paused", False: "running"}[report.delivery_paused]),
    ]
    out = "".join(f'<div class="card"><span>{esc(k)}</span><b>{esc(v)}</b></div>' for k, v in cards)
    rates = report.to_json()["last_minute"]
    minute = ", ".join(f"{esc(k.replace('_', ' '))} {esc(v)}" for k, v in rates.items())
    reasons = ", ".join(
        f"{esc(k)} {esc(v)}" for k, v in sorted(report.dead_letters_by_reason.items())
    )
    return (
        f'<section class="cards" id="status">{out}</section>'
        f'<p class="minor">Last minute: {minute or "nothing"}. '
        f"Dead letters by reason: {reasons or 'none'}.</p>"
    )


def _conversation(d: DeadLetter) -> str:
    if d.agent_id:
        return f"{esc(d.agent_id)} / {esc(d.convo_id)}"
    return f"{esc(d.source)}: {esc(d.external_id)} <em>(no link)</em>"


def _dead_letters(letters: list[DeadLetter], csrf: str) -> str:
    from bridge.admin.control import link_form  # control.py builds on this module

    if not letters:
        return '<p class="empty" id="no-dead-letters">No dead letters.</p>'
    rows = []
    for d in letters:
        s = d.summary()
        base = f"/admin/ui/dlq/{quote(d.id, safe='')}"
        inline = link_form(d, csrf) if not d.agent_id and d.reason == "unroutable" else ""
        rows.append(
            f'<tr id="dl-{esc(d.id)}"><td><a href="{esc(base)}"><code>{esc(d.id)}</code></a></td>'
            f'<td><span class="reason">{esc(d.reason)}</span></td>'
            f"<td>{_conversation(d)}{inline}</td><td>{esc(s['source'])}</td>"
            f"<td>{esc(when(d.created_ms))}</td><td>{esc(s['changes'])}</td>"
            f"<td>{esc(s['attempts'])}</td><td>{esc(d.last_status or '—')}</td>"
            f'<td class="answer">{esc(d.last_snippet or "—")}</td>'
            f'<td class="actions">{_button(base + "/replay", "Replay", csrf, ident="replay-" + d.id)}'
            f"{_button(base + '/purge', 'Purge', csrf, danger=True, ident='purge-' + d.id)}</td></tr>"
        )
    return (
        '<table id="dead-letters"><thead><tr><th>Id</th><th>Reason</th><th>Conversation</th>'
        "<th>Source</th><th>Since</th><th>Changes</th><th>Attempts</th><th>Last status</th>"
        "<th>Last answer</th><th></th></tr></thead><tbody>"
        + "".join(rows)
        + '</tbody></table><div class="bulk">'
        + _button("/admin/ui/dlq/replay-all", "Replay all", csrf, ident="replay-all")
        + _button("/admin/ui/dlq/purge-all", "Purge all", csrf, danger=True, ident="purge-all")
        + "</div>"
    )


def _trace_form() -> str:
    return (
        '<form method="get" action="/admin/ui/conversation" class="trace" id="trace-form">'
        '<label>Agent id <input name="agent_id" required></label> '
        '<label>Conversation id <input name="convo_id" required></label> '
        '<button type="submit" id="trace">Trace</button></form>'
    )


def _claimed(c: Change) -> str:
    if c.claimed_at is None:
        return ""
    return f" (the sender said {esc(when(c.claimed_at))}: in the future, not believed)"


def _changes_table(ident: str, changes: list[Change]) -> str:
    if not changes:
        return f'<p class="empty" id="{ident}">None.</p>'
    rows = "".join(
        f"<tr><td><code>{esc(c.what)}</code></td>"
        f"<td>{esc(c.source)}</td><td>{_event_link(c.event_id)}</td>"
        f"<td>{esc(when(c.occurred_at))}{_claimed(c)}</td><td>{esc(when(c.received_at))}</td></tr>"
        for c in changes
    )
    return (
        f'<table id="{ident}"><thead><tr><th>Change</th><th>Source</th>'
        f"<th>Event id</th><th>Occurred</th><th>Received</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _event_link(event_id: str) -> str:
    """An event id, leading to its request and PATCHes in the event log."""
    href = "/admin/ui/events?" + urlencode({"event_id": event_id})
    return f'<a href="{esc(href)}"><code>{esc(event_id)}</code></a>'


def _trace_body(t: Trace, csrf: str = "") -> str:
    verdict = "".join(f"<li>{esc(line)}</li>" for line in t.verdict())
    state = [
        ("Waiting", "yes, due " + when(t.due_at) if t.waiting else "no"),
        ("In flight", "until " + when(t.in_flight_until) if t.in_flight_until else "no"),
        ("In doubt", "yes" if t.in_doubt else "no"),
        ("Sent again", ", ".join(t.resends) or "—"),
        ("Last PATCH", when(t.last_patch_at)),
        ("Attempts since", len(t.attempts)),
        ("Dead letters", len(t.dead_letters)),
    ]
    cards = "".join(
        f'<div class="card"><span>{esc(k)}</span><b>{esc(v)}</b></div>' for k, v in state
    )
    attempts = "".join(
        f"<tr><td>{esc(when(a.get('at')))}</td><td>{esc(a.get('status', ''))}</td>"
        f'<td class="answer">{esc(a.get("answer", ""))}</td></tr>'
        for a in t.attempts
    )
    letters = "".join(
        f"<tr><td><code>{esc(d['id'])}</code></td><td>{esc(d['reason'])}</td>"
        f'<td>{esc(d["last_status"] or "—")}</td><td class="answer">{esc(d["last_answer"] or "—")}</td></tr>'
        for d in t.dead_letters
    )
    attempts_html = (
        '<table id="attempts"><thead><tr><th>At</th><th>Status</th><th>Answer</th></tr>'
        f"</thead><tbody>{attempts}</tbody></table>"
        if attempts
        else '<p class="empty" id="attempts">None.</p>'
    )
    letters_html = (
        '<table id="conversation-dead-letters"><thead><tr><th>Id</th><th>Reason</th>'
        f"<th>Last status</th><th>Last answer</th></tr></thead><tbody>{letters}</tbody></table>"
        if letters
        else '<p class="empty">None.</p>'
    )
    events = "/admin/ui/events?" + urlencode({"convo": f"{t.agent_id}/{t.convo_id}"})
    retry = ""
    if csrf and t.due_at is not None and t.due_at > t.now:
        from bridge.admin.control import retry_now_button  # control.py builds on this module

        retry = retry_now_button(t.agent_id, t.convo_id, csrf)
    return f"""<header><h1>{esc(t.agent_id)} / {esc(t.convo_id)}</h1>
<a href="{esc(events)}" id="conversation-events">Its event log</a>
<a href="/admin/">Back to the admin page</a></header><main>
<h2>Why</h2><ul id="verdict">{verdict}</ul>{retry}
<section class="cards" id="state">{cards}</section>
<h2>Pending changes</h2>{_changes_table("pending", t.pending)}
<h2>Applied values and where they came from</h2>{_changes_table("applied", t.applied)}
<h2>Attempts since the last success</h2>
{attempts_html}
<h2>Dead letters</h2>
{letters_html}
</main>"""


async def conversation_view(request: Request) -> Response:
    nonce = secrets.token_urlsafe(16)
    try:
        agent = check_id(request.query_params.get("agent_id"), "agent_id")
        convo = check_id(request.query_params.get("convo_id"), "convo_id")
    except PayloadError as exc:
        body = (
            f'<main><p class="error" role="alert">{esc(exc)}</p><a href="/admin/">Back</a></main>'
        )
        return _page(body, nonce, 400)
    store: Store = request.app.state.store
    csrf = csrf_token(_admin_token(request))
    return _page(_trace_body(await trace(store, agent, convo), csrf), nonce)


def _links(links: list[dict[str, str]]) -> str:
    if not links:
        return '<p class="empty">No links. Set one with <code>convo-bridge links set</code>.</p>'
    rows = "".join(
        f"<tr><td>{esc(x['source'])}</td><td>{esc(x['external_id'])}</td>"
        f"<td>{esc(x['agent_id'])} / {esc(x['convo_id'])}</td></tr>"
        for x in links[:500]
    )
    more = f'<p class="minor">{len(links) - 500} more not shown.</p>' if len(links) > 500 else ""
    return (
        '<table id="links"><thead><tr><th>Source</th><th>External id</th><th>Conversation'
        f"</th></tr></thead><tbody>{rows}</tbody></table>{more}"
    )


async def page(request: Request) -> Response:
    settings = _settings(request)
    nonce = secrets.token_urlsafe(16)
    if not _signed_in(request):
        return _login(nonce)
    store: Store = request.app.state.store
    csrf = csrf_token(_admin_token(request))
    notice = NOTICES.get(request.query_params.get("notice", ""), "")
    from bridge.admin.control import LetterFilter, filter_form, pause_button, paused_banner

    try:
        chosen = LetterFilter.of(dict(request.query_params))
    except PayloadError as exc:
        chosen = LetterFilter()
        notice = str(exc)
    try:
        report = await status_report(store, gated_accounts(request.app.state.settings.convocore))
        every = await store.dead_letters(500)
        letters = [d for d in every if chosen.matches(d)]
        links = await store.links(settings.sources)
        charts = await charts_html(store, nonce)
    except StoreUnavailable:
        body = '<main><h1>convo-bridge admin</h1><p class="error" role="alert">Redis is unreachable; this page retries in 5 s.</p></main>'
        away = _page(body + _refresh_script(nonce, True), nonce, 503)
        away.headers["Retry-After"] = "5"
        return away
    flash = f'<p class="notice" role="status" id="notice">{esc(notice)}</p>' if notice else ""
    body = f"""<header><h1>convo-bridge admin</h1>
<a href="/admin/ui/events" id="event-log">Event log</a>
<label class="minor"><input type="checkbox" id="auto"> refresh every 5 s</label>
{pause_button(report.delivery_paused, csrf)}
{_button("/admin/logout", "Sign out", csrf, ident="sign-out")}</header>
<main>{paused_banner(report.delivery_paused)}{flash}{_status_cards(report)}
<h2>History</h2>{charts}
<h2>Trace a conversation</h2>{_trace_form()}
<h2>Dead letters <small>({len(letters)} of {len(every)})</small></h2>
{filter_form(chosen, sorted({d.reason for d in every}), csrf, len(letters)) if every else ""}
{_dead_letters(letters, csrf)}
<h2>Links</h2>{_links(links)}</main>{_refresh_script(nonce, False)}"""
    return _page(body, nonce)


def _refresh_script(nonce: str, always: bool) -> str:
    """Auto-refresh (always while Redis is away; else when the box is ticked) and purge
    confirmations; page.js reads `data-always`."""
    flag = "1" if always else "0"
    return f'<script nonce="{nonce}" data-always="{flag}">{SCRIPT}</script>'


async def login(request: Request) -> Response:
    token = _admin_token(request)
    form = posted(request)
    if not same(token, form.get("token", "")):
        return _login(secrets.token_urlsafe(16), "That is not the admin token.", 401)
    answer = RedirectResponse("/admin/", status_code=303)
    https = request.url.scheme == "https" or (
        request.headers.get("x-forwarded-proto", "").split(",")[0].strip() == "https"
    )  # behind a TLS-terminating proxy the bridge itself sees http
    answer.set_cookie(
        COOKIE,
        session_cookie(token),
        max_age=SESSION_S,
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=https,
    )
    return answer


def _back(notice: str) -> Response:
    return RedirectResponse(f"/admin/?notice={notice}", status_code=303)


async def logout(request: Request) -> Response:
    answer = _back("signed_out")
    answer.delete_cookie(COOKIE, path="/admin")
    return answer


async def replay_one(request: Request) -> Response:
    dl_id = request.path_params["id"]
    store: Store = request.app.state.store
    res = await store.replay([dl_id], coalesce_ms=_settings(request).delivery.coalesce_ms)
    return _back(res.get(dl_id, "missing"))


async def purge_one(request: Request) -> Response:
    store: Store = request.app.state.store
    n = await store.purge([request.path_params["id"]])
    return _back("purged" if n else "missing")


async def replay_all(request: Request) -> Response:
    await asyncio.to_thread(_enqueue_replay_all, _settings(request))
    return _back("replay_queued")


def _enqueue_replay_all(settings: Settings) -> None:
    """A large replay runs as an RQ job (bridge/store/rq_jobs.py); the page answers at once."""
    enqueue_replay_at(
        settings.rq_url,
        None,
        settings.delivery.coalesce_ms,
        "every dead letter (admin page)",
        rq_durability(settings),
    )


async def purge_all(request: Request) -> Response:
    store: Store = request.app.state.store
    await store.purge(await store.dead_letter_ids(100_000))
    return _back("purged")


def routes() -> list[Page]:
    return [
        Page("/", page, "GET", signed_out=True),  # the sign-in form when signed out
        Page("/login", login, "POST", signed_out=True),
        Page("/logout", logout, "POST"),
        Page("/ui/conversation", conversation_view, "GET"),
        Page("/ui/dlq/replay-all", replay_all, "POST"),
        Page("/ui/dlq/purge-all", purge_all, "POST"),
        Page("/ui/dlq/{id}/replay", replay_one, "POST"),
        Page("/ui/dlq/{id}/purge", purge_one, "POST"),
    ]
