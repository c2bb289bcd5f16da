"""Hostile input for every sender kind, validly signed, and the one rule it must meet:
a documented answer (202 / 400 / 413 / 415), never a 5xx, and nothing queued unless 202.

Used by tests/bridge/providers/test_fuzz.py (a few hundred cases per kind) and by
benchmarks/fuzz_soak.py (10,000+ per kind).
"""

from __future__ import annotations

import functools
import hmac
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.servers import keys_but_the_log
from tests.signing import sign_as

VECTORS = Path(__file__).resolve().parent / "vectors"  # made by tests/vectors/make_vectors.py
KINDS = ["standard", "zendesk", "intercom", "hubspot", "front", "freshdesk", "helpscout", "generic"]
# shipped presets of the generic kind with JSON bodies: an HMAC header (Kustomer) and a URL
# token with an array of events and a 200 answer (Zoho Desk)
PRESETS = ["kustomer", "zohodesk"]
ALLOWED = {202, 400, 413, 415}


def accepted_status(kind: str) -> int:
    """What the kind answers once queued (Zoho Desk counts anything but 200 as failed)."""
    return 200 if kind == "zohodesk" else 202


def fuzz_settings(examples: int, derandomize: bool) -> settings:
    """How every fuzzer runs: `examples` cases, no deadline or example database (each run
    stands alone), reproducible with `derandomize`, no health checks (servers make slow cases)."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
    )


@functools.cache
def vector_cases(kind: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The kind's valid vectors that carry intents, and the source config they need."""
    doc = json.loads((VECTORS / f"{kind}.json").read_text())
    cases = [c for c in doc["cases"] if c["valid"] and c["intents"] and "config" not in c]
    if not cases:  # a kind every case of which needs a config (generic)
        cases = [c for c in doc["cases"] if c["valid"] and c["intents"]]
    return cases, cases[0].get("config", {})


def config_text(kind: str, config: dict[str, Any], *, default_agent: bool = True) -> str:
    """A source named after its kind; with `default_agent`, events with no link still route
    (so mapped events queue), without it they wait as unroutable."""
    lines = [f"[sources.{kind}]", f'kind = "{kind}"', 'secret_env = "SENDER_SECRET"']
    if default_agent and kind != "standard":
        lines.append('default_agent_id = "fuzz-agent"')
    lines += [f"{k} = {json.dumps(v)}" for k, v in config.items() if k not in ("kind", "map")]
    if config.get("map"):
        lines.append(f"[sources.{kind}.map]")
        lines += [f'"{k}" = {json.dumps(v)}' for k, v in config["map"].items()]
    return "\n".join(lines) + "\n"


def webhook_url(base: str, kind: str, secret: str = "") -> str:
    """Where the kind's source takes webhooks (with a query for HubSpot, which signs it, and
    for Zoho Desk, whose token is in the URL)."""
    query = {"hubspot": "?portal=62515", "zohodesk": f"?token={secret}"}.get(kind, "")
    return f"{base}/webhooks/{kind}{query}"


def sign(kind: str, secret: str, body: bytes, target: str, **kw: Any) -> dict[str, str]:
    """Headers the kind's sender would send (Help Scout's event header from its vectors)."""
    cases, config = vector_cases(kind)
    if kind == "kustomer":  # lowercase hex HMAC-SHA256 of the body, keyed with the token
        mac = hmac.new(secret.encode(), body, "sha256").hexdigest()
        return {"content-type": "application/json", "x-kustomer-webhook-signature": mac}
    if kind == "zohodesk":  # proven by the URL's token
        return {"content-type": "application/json"}
    event = cases[0]["headers"].get("x-helpscout-event", "")
    headers = sign_as(kind, secret, body, target, event=event, **kw)
    if kind == "generic":  # the source's own prefix (ClickUp's vectors: none)
        mac = headers["x-signature"].removeprefix("sha256=")
        headers["x-signature"] = config.get("signature_prefix", "sha256=") + mac
    return headers


# --- strategies --------------------------------------------------------------------------

SPECIAL_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 40, "9" * 25]
HOSTILE_IDS = [
    "a/b",
    "../x",
    "x?y=1",
    "%2F",
    "a#b",
    "..",
    "/",
    "",
    " ",
    "\u0000",
    "é/ü",
    "x" * 5000,
]

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(HOSTILE_IDS)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=15,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any, delete: bool = False) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if delete and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _replace(value[head], rest, new, delete)
        return copy
    copy_list = list(value)
    if delete and not rest:
        copy_list.pop(head)
    else:
        copy_list[head] = _replace(value[head], rest, new, delete)
    return copy_list


@st.composite
def mutated(draw: st.DrawFn, bodies: list[Any]) -> bytes:
    """A valid sender body with one thing changed: a value, a key gone, an object as an
    array, a number JSON does not allow, a duplicated key, bad UTF-8, deep nesting, cut short."""
    body = draw(st.sampled_from(bodies))
    how = draw(
        st.sampled_from(
            [
                "value",
                "value",
                "delete",
                "wrap",
                "special",
                "duplicate",
                "utf8",
                "deep",
                "truncate",
                "time",
                "id",
            ]
        )
    )
    paths = _paths(body)
    path = draw(st.sampled_from(paths))
    if how == "value":
        return json.dumps(_replace(body, path, draw(json_value))).encode()
    if how == "delete" and path:
        return json.dumps(_replace(body, path, None, delete=True)).encode()
    if how == "wrap":
        return json.dumps(_replace(body, path, [draw(json_value), 1])).encode()
    if how == "time":
        far = draw(
            st.sampled_from(
                [
                    -1,
                    0,
                    10**13 * 1000,
                    2**62,
                    "9999-12-31T23:59:59Z",
                    "0001-01-01T00:00:00Z",
                    "yesterday",
                ]
            )
        )
        return json.dumps(_replace(body, path, far)).encode()
    if how == "id":
        return json.dumps(_replace(body, path, draw(st.sampled_from(HOSTILE_IDS)))).encode()
    text = json.dumps(body)
    if how == "special":
        marker = "__special__"
        return (
            json.dumps(_replace(body, path, marker))
            .replace(f'"{marker}"', draw(st.sampled_from(SPECIAL_NUMBERS)))
            .encode()
        )
    if how == "duplicate" and text.startswith("{") and len(text) > 2:
        return ('{"occurred_at": 1, "type": 7, ' + text[1:]).encode()
    if how == "utf8":
        cut = draw(st.integers(0, len(text)))
        return (
            text[:cut].encode()
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"]))
            + text[cut:].encode()
        )
    if how == "deep":
        depth = draw(st.sampled_from([100, 1000, 100_000]))
        return (
            json.dumps(_replace(body, path, "__deep__"))
            .replace('"__deep__"', "[" * depth + "]" * depth)
            .encode()
        )
    if how == "truncate":
        return text[: draw(st.integers(0, max(len(text) - 1, 0)))].encode()
    return text.encode()


def bodies_for(kind: str) -> st.SearchStrategy[bytes]:
    cases, _ = vector_cases(kind)
    valid = [json.loads(c["body"]) for c in cases]
    return st.one_of(
        mutated(valid),
        json_value.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=200),
    )


# --- the run -------------------------------------------------------------------------------


def fuzz(
    kind: str, url: str, secret: str, redis_url: str, examples: int, *, derandomize: bool = True
) -> Counter[int]:
    """POST `examples` hostile, validly signed bodies to the kind's source at `url`. Fails on
    an undocumented answer, or on anything written to Redis by a refused request."""
    target = webhook_url(url, kind, secret)
    ok = accepted_status(kind)
    allowed = ALLOWED - {202} | {ok}
    seen: Counter[int] = Counter()
    r = redis.Redis.from_url(redis_url)
    client = httpx.Client(timeout=30)
    content_types = st.sampled_from(
        ["application/json"] * 8
        + [
            "text/plain",
            "application/x-www-form-urlencoded",
            "",
            "application/json; charset=latin-1",
        ]
    )

    @given(body=bodies_for(kind), content_type=content_types)
    @fuzz_settings(examples, derandomize)
    def one(body: bytes, content_type: str) -> None:
        headers = sign(kind, secret, body, target)
        headers["content-type"] = content_type
        before = len(keys_but_the_log(r))
        answer = client.post(target, content=body, headers=headers)
        seen[answer.status_code] += 1
        assert answer.status_code in allowed, (answer.status_code, answer.text[:300], body[:300])
        if answer.status_code != ok:  # (keys may expire meanwhile, never appear)
            assert len(keys_but_the_log(r)) <= before, (
                "a refused request wrote to Redis",
                body[:300],
            )
            detail = answer.json().get("detail", "")
            assert secret not in detail and "Traceback" not in answer.text

    try:
        one()
    finally:
        client.close()
        r.close()
    return seen


def still_up(url: str) -> bool:
    return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
