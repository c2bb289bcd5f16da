"""Hostile requests around the bodies: headers (timestamps, signatures, ids: huge, negative,
non-ASCII digits, control characters), cookies, query strings and every admin route, sent
over raw sockets so nothing a client library would refuse to send is left out.

The rule: never a 5xx, never a traceback; a refused webhook writes nothing to Redis. Used by
tests/bridge/test_fuzz_edges.py (a few hundred per family) and benchmarks/fuzz_soak.py
(10,000 per family).
"""

from __future__ import annotations

import socket
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import redis
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import KINDS, fuzz_settings, sign, vector_cases, webhook_url
from tests.servers import keys_but_the_log

ADMIN_TOKEN = "admin-token"
WEBHOOK_ANSWERS = {200, 202, 400, 401, 404, 408, 413, 415}  # 200: Front's set-up challenge

# --- what a request is made of ----------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    method: str
    target: bytes  # path and query, sent as they are
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    webhook: bool = False  # a refused webhook must write nothing to Redis


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def send(host: str, port: int, probe: Probe, timeout_s: float = 30) -> Answer:
    """One HTTP/1.1 request on its own connection, bytes exactly as the probe has them."""
    head = [probe.method.encode() + b" " + probe.target + b" HTTP/1.1", b"host: fuzz"]
    head += [k + b": " + v for k, v in probe.headers]
    head += [b"content-length: " + str(len(probe.body)).encode(), b"connection: close"]
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + probe.body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    status_line, _, rest = raw.partition(b"\r\n")
    parts = status_line.split(b" ")
    assert len(parts) >= 2 and parts[0].startswith(b"HTTP/"), ("no HTTP answer", raw[:200])
    return Answer(int(parts[1]), rest.partition(b"\r\n\r\n")[2])


# --- hostile values ---------------------------------------------------------------------

HOSTILE_VALUES = [
    b"9" * 400,  # OverflowError in datetime / int arithmetic
    b"9" * 5000,  # beyond int()'s 4,300-digit limit
    b"-1",
    b"-" + b"9" * 30,
    b"0",
    b"1e400",
    b"NaN",
    b"\xb2\xb3",  # '²³' (latin-1): str.isdigit() is true, int() raises
    "١٢٣٤٥٦٧٨٩٠".encode(),  # Arabic-Indic digits, as UTF-8 bytes
    "\uff11\uff17\uff16\uff14\uff10\uff10\uff10".encode(),  # full-width digits
    b"\x01\x02",
    b"\x7f",
    b"a\tb",
    b"\x1b[31m",
    b"\xff\xfe",
    b" ",
    b"",
    b"v1,",
    b"v1,AAAA",
    b"sha256=",
    b"sha256=" + b"0" * 64,
    b"v1," + b"A" * 5000,
    b"../../etc/passwd",
    b"%00%0a",
    b"2026-13-45T99:99:99Z",
    b"9999-12-31T23:59:59+99:99",
    b"t=1,v1=abc",
]
# what h11 and httptools let through a header value: no CR, LF or NUL
header_value = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    st.binary(max_size=60).map(lambda b: b.translate(None, b"\r\n\x00")),
    st.integers(min_value=-(10**30), max_value=10**30).map(lambda n: str(n).encode()),
    st.text(max_size=20)
    .map(lambda t: t.replace("\r", "").replace("\n", "").replace("\0", ""))
    .map(lambda t: t.encode("utf-8")),
)
hostile_id = st.one_of(
    st.sampled_from(["1-1", "..", "%2e%2e", "a/b", "\u0000", "é", "x" * 3000, "%ff", "<script>"]),
    st.text(min_size=1, max_size=30),
).map(lambda t: quote(t, safe="").encode() or b"x")
query_string = st.one_of(
    st.just(b""),
    st.sampled_from(
        [
            b"?a=%ff%fe",
            b"?notice=%0Ainjected",
            b"?source=%00",
            b"?" + b"x=1&" * 2000,
            b"?=&&=",
            b"?portal=" + b"9" * 400,
            b"?%E2%80%AE=rtl",
            b"?notice=replayed&notice=purged",
        ]
    ),
    st.lists(st.tuples(st.text(max_size=8), st.text(max_size=16)), max_size=4).map(
        lambda pairs: (
            b"?" + b"&".join(quote(k).encode() + b"=" + quote(v).encode() for k, v in pairs)
        )
    ),
)
HOSTILE_COOKIES = [
    b"cb_admin=\xb2.abc",
    b"cb_admin=" + b"9" * 400 + b".x",
    b"cb_admin=-1.x",
    b"cb_admin=",
    b"cb_admin",
    b"cb_admin=a.b.c.d",
    b'cb_admin="quoted"',
    b"=; ;=",
    b"cb_admin=1.x; cb_admin=2.y",
    b"cb_admin=\xff\xfe",
]
cookie_value = st.one_of(
    st.sampled_from(HOSTILE_COOKIES),
    header_value.map(lambda v: b"cb_admin=" + v.replace(b";", b"")),
)

# --- webhook headers --------------------------------------------------------------------

SIGNATURE_HEADERS = [
    b"webhook-id",
    b"webhook-timestamp",
    b"webhook-signature",
    b"svix-id",
    b"svix-timestamp",
    b"svix-signature",
    b"x-zendesk-webhook-signature",
    b"x-zendesk-webhook-signature-timestamp",
    b"x-zendesk-webhook-invocation-id",
    b"x-hub-signature",
    b"x-hubspot-signature-v3",
    b"x-hubspot-request-timestamp",
    b"x-front-signature",
    b"x-front-request-timestamp",
    b"x-front-challenge",
    b"x-helpscout-signature",
    b"x-helpscout-event",
    b"x-bridge-secret",
    b"x-signature",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"content-type",
]


@st.composite
def webhook_header_probe(draw: st.DrawFn, secrets: dict[str, str]) -> Probe:
    """A validly signed vector request of some kind with one to three headers made hostile
    (replaced, added or removed)."""
    kind = draw(st.sampled_from(KINDS))
    case = vector_cases(kind)[0][0]
    body = case["body"].encode()
    target = webhook_url("http://fuzz", kind)
    headers = {k.encode(): v.encode() for k, v in sign(kind, secrets[kind], body, target).items()}
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from([*headers, *SIGNATURE_HEADERS]))
        if draw(st.integers(0, 5)) == 0:
            headers.pop(name, None)
        else:
            headers[name] = draw(header_value)
    path = target.removeprefix("http://fuzz").encode()
    query = draw(query_string).lstrip(b"?") if draw(st.integers(0, 3)) == 0 else b""
    if query:
        path += (b"&" if b"?" in path else b"?") + query
    return Probe("POST", path, list(headers.items()), body, webhook=True)


def every_hostile_header(secrets: dict[str, str]) -> list[Probe]:
    """Each hostile value in each header each kind signs with, the rest of the request valid:
    the exhaustive companion of `webhook_header_probe`."""
    out = []
    for kind in KINDS:
        body = vector_cases(kind)[0][0]["body"].encode()
        target = webhook_url("http://fuzz", kind)
        signed = {
            k.encode(): v.encode() for k, v in sign(kind, secrets[kind], body, target).items()
        }
        path = target.removeprefix("http://fuzz").encode()
        for name in signed:
            for value in HOSTILE_VALUES:
                headers = {**signed, name: value}
                out.append(Probe("POST", path, list(headers.items()), body, webhook=True))
    return out


# --- admin and public routes ------------------------------------------------------------


def _auth(draw: st.DrawFn, session: bytes, csrf: bytes) -> list[tuple[bytes, bytes]]:
    how = draw(st.sampled_from(["none", "bearer", "bad-bearer", "cookie", "bad-cookie"]))
    if how == "bearer":
        return [(b"authorization", b"Bearer " + ADMIN_TOKEN.encode())]
    if how == "bad-bearer":
        return [(b"authorization", draw(header_value))]
    if how == "cookie":
        return [(b"cookie", b"cb_admin=" + session), (b"x-csrf-token", csrf)]
    return [(b"cookie", draw(cookie_value))]


@st.composite
def admin_probe(
    draw: st.DrawFn, routes: list[tuple[str, str]], session: bytes, csrf: bytes
) -> Probe:
    """Any admin route, its path parameters hostile, with any credentials (good ones too, so
    the handlers run), a hostile query string and a body of JSON, a form, or bytes."""
    method, template = draw(st.sampled_from(routes))
    path = template.encode()
    for param in (b"{id}", b"{source}", b"{external_id:path}"):
        if param in path:
            value = draw(st.one_of(st.just(b"demo"), hostile_id))
            path = path.replace(param, value)
    body = draw(
        st.one_of(
            st.sampled_from(
                [
                    b"",
                    b'{"all": true}',
                    b'{"ids": ["1-1", "../x", ""]}',
                    b'{"source": "demo"}',
                    b'{"ids": "nope"}',
                    b'{"agent_id": "a", "convo_id": "c"}',
                    b'{"agent_id": "", "convo_id": "\\u0000"}',
                    b"[1, 2]",
                    b"{",
                    b"token=" + ADMIN_TOKEN.encode(),
                    b"csrf=" + csrf,
                    b"token=%C2%B2&csrf=%FF",
                ]
            ),
            st.binary(max_size=200),
        )
    )
    content_type = draw(
        st.sampled_from(
            [b"application/json", b"application/x-www-form-urlencoded", b"text/plain", b"\xb2"]
        )
    )
    headers = [*_auth(draw, session, csrf), (b"content-type", content_type)]
    return Probe(method, path + draw(query_string), headers, body if method != "GET" else b"")


PUBLIC_ROUTES = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/admin", "/admin/"]


@st.composite
def public_probe(draw: st.DrawFn, session: bytes) -> Probe:
    """The GET routes anyone can reach, with hostile query strings, Accept and cookies."""
    path = draw(st.sampled_from(PUBLIC_ROUTES)).encode()
    headers = [
        (
            b"accept",
            draw(
                st.one_of(
                    st.sampled_from(
                        [
                            b"application/openmetrics-text; version=1.0.0",
                            b"application/openmetrics-text; version=0.0.1",
                            b"text/plain; version=9.9",
                            b"*/*",
                        ]
                    ),
                    header_value,
                )
            ),
        ),
        (b"cookie", draw(st.one_of(cookie_value, st.just(b"cb_admin=" + session)))),
    ]
    return Probe("GET", path + draw(query_string), headers)


def every_hostile_cookie(routes: list[tuple[str, str]]) -> list[Probe]:
    """Each hostile cookie on each admin route (path parameters filled) and public GET."""
    out = []
    for method, template in [*routes, *(("GET", p) for p in PUBLIC_ROUTES)]:
        path = template.replace("{id}", "1-1").replace("{source}", "demo")
        path = path.replace("{external_id:path}", "ext-1").encode()
        for cookie in HOSTILE_COOKIES:
            body = b"" if method == "GET" else b"csrf=x"
            form = (b"content-type", b"application/x-www-form-urlencoded")
            out.append(Probe(method, path, [(b"cookie", cookie), form], body))
    return out


# --- the run ----------------------------------------------------------------------------


def fuzz_probes(
    url: str,
    redis_url: str,
    probes: st.SearchStrategy[Probe] | list[Probe],
    examples: int,
    *,
    allowed_for_webhooks: set[int] = WEBHOOK_ANSWERS,
    derandomize: bool = True,
) -> Counter[int]:
    """Send `examples` probes drawn from a strategy (or every probe of a list); fails on a 5xx, a traceback, an undocumented webhook answer, or
    a refused webhook that wrote to Redis."""
    host, port = url.removeprefix("http://").split(":")
    seen: Counter[int] = Counter()
    r = redis.Redis.from_url(redis_url)

    def check(probe: Probe) -> None:
        before = len(keys_but_the_log(r)) if probe.webhook else 0
        answer = send(host, int(port), probe)
        seen[answer.status] += 1
        where = (probe.method, probe.target[:120], probe.headers[:6])
        assert answer.status < 500, (answer.status, answer.body[:300], where)
        assert b"Traceback" not in answer.body, where
        if probe.webhook:
            assert answer.status in allowed_for_webhooks, (answer.status, answer.body[:300], where)
            if answer.status != 202:
                assert len(keys_but_the_log(r)) <= before, (
                    "a refused webhook wrote to Redis",
                    where,
                )

    if isinstance(probes, list):  # a fixed list: every one of them, once
        try:
            for probe in probes:
                check(probe)
        finally:
            r.close()
        return seen

    @given(probe=probes)
    @fuzz_settings(examples, derandomize)
    def one(probe: Probe) -> None:
        check(probe)

    try:
        one()
    finally:
        r.close()
    return seen


def all_kinds_config(admin: bool = True) -> tuple[str, dict[str, str]]:
    """One config with a source per kind (named after it), and the environment it needs."""
    from tests.fuzzing import config_text

    text, env = "", {}
    for kind in KINDS:
        cases, source_config = vector_cases(kind)
        text += config_text(kind, source_config).replace("SENDER_SECRET", f"{kind.upper()}_SECRET")
        env[f"{kind.upper()}_SECRET"] = cases[0]["secret"]
    if admin:
        env["BRIDGE_ADMIN_TOKEN"] = ADMIN_TOKEN
    return text, env


def secrets_by_kind() -> dict[str, str]:
    return {kind: vector_cases(kind)[0][0]["secret"] for kind in KINDS}


def families(
    admin_routes: list[tuple[str, str]], session: bytes, csrf: bytes
) -> dict[str, st.SearchStrategy[Probe]]:
    """The route families the soak and the tests run, by name."""
    api = [(m, p) for m, p in admin_routes if not p.startswith("/admin/ui/") and "logout" not in p]
    page = [(m, p) for m, p in admin_routes if (m, p) not in api]
    return {
        "webhook headers": webhook_header_probe(secrets_by_kind()),
        "admin API": admin_probe(api, session, csrf),
        "admin page": admin_probe(page, session, csrf),
        "public GET": public_probe(session),
    }


def template_routes(app_routes: list[Any]) -> list[tuple[str, str]]:
    """(method, path template) of every admin route of an app."""
    from tests.routes import flat

    out = []
    for path, methods in flat(app_routes):
        if path.startswith("/admin"):
            out += [(m, path) for m in sorted(methods) if m != "HEAD"]
    return out
