"""Routing precedence: the event's own ids, then the source's JMESPath, then the link
registry, then the source's default_agent_id, else the event waits as `unroutable`.
`route` decides what it can without Redis; the registry and the default are resolved in the
accept script, so those steps are checked against a real Redis."""

import asyncio
import time

import jmespath
import pytest

from bridge.config import SourceSettings
from bridge.errors import PayloadError
from bridge.ingest import ingest, parse_json, route
from bridge.intents import Intent
from bridge.providers import provider
from bridge.providers.base import SourceEvent, WebhookRequest
from bridge.store import Store, conversation_key

T = 1_764_000_000_000


def source(**options):
    compiled = {k: jmespath.compile(v) for k, v in options.items() if k in ("agent_id", "convo_id")}
    return SourceSettings(
        name="src",
        kind="standard",
        secret_env="S",
        secret="x",
        default_agent_id=options.get("default_agent_id"),
        **compiled,
    )


def event(raw=None, **ids):
    return SourceEvent("evt_1", Intent(occurred_at=T, set={"title": "x"}, **ids), raw or {})


JMES = {"agent_id": "meta.agent", "convo_id": "meta.convo"}


def test_the_events_own_ids_come_first():
    routed = route(
        source(**JMES),
        event({"meta": {"agent": "j", "convo": "k"}}, agent_id="a", convo_id="c"),
        "",
    )
    assert routed is not None and routed.ck == conversation_key("a", "c")


def test_the_sources_jmespath_comes_before_the_registry_and_the_default():
    src = source(**JMES, default_agent_id="dflt")
    routed = route(src, event({"meta": {"agent": "j", "convo": 7}}, external_id="T-1"), "")
    assert routed is not None
    assert (routed.ck, routed.external_id) == (conversation_key("j", "7"), "")


def test_a_jmespath_that_finds_nothing_leaves_the_external_id_to_resolve():
    src = source(**JMES, default_agent_id="dflt")
    routed = route(src, event({"meta": {"agent": "j"}}, external_id="T-1"), "")
    assert routed is not None
    assert (routed.ck, routed.external_id) == ("", "T-1")
    assert routed.fallback_ck == conversation_key("dflt", "T-1")
    assert route(source(), event(external_id="T-1"), "").fallback_ck == ""


def test_an_external_id_with_a_slash_waits_for_a_link_instead_of_the_default_agent():
    src = source(default_agent_id="dflt")
    routed = route(src, event(external_id="T/1"), "")
    assert routed is not None
    assert (routed.ck, routed.external_id, routed.fallback_ck) == ("", "T/1", "")


def test_an_event_naming_no_conversation_is_refused_naming_its_index():
    with pytest.raises(PayloadError) as err:
        route(source(**JMES), event({}), "[2].")
    assert err.value.detail.startswith("[2].external_id:")


def test_a_bad_id_from_jmespath_names_the_expression():
    with pytest.raises(PayloadError) as err:
        route(source(**JMES), event({"meta": {"agent": "..", "convo": "k"}}), "")
    assert "agent_id" in err.value.detail and "'meta.agent'" in err.value.detail


def test_an_event_the_kind_does_not_map_is_ignored():
    assert route(source(), SourceEvent("evt_1", None, {}), "") is None


def test_odd_event_ids_are_made_safe_for_keys():
    odd = Intent(occurred_at=T, external_id="e", set={"title": "x"})
    routed = route(source(), SourceEvent("a\nb", odd, {}), "")
    assert routed is not None and routed.event_id.startswith("sha256:")


# --- through Redis: registry > default_agent_id > unroutable ----------------------------------

SOURCES = """
[sources.dflt]
kind = "standard"
secret_env = "DEMO_SECRET"
default_agent_id = "agent-default"
"""


def send(settings, name, body, msg_id):
    async def run():
        store = Store(settings.redis_url)
        try:
            request = WebhookRequest("POST", "http://x/", {"webhook-id": msg_id}, body, time.time())
            return await ingest(
                settings, store, settings.sources[name], provider("standard"), request
            )
        finally:
            await store.close()

    return asyncio.run(run())


def link(settings, src, ext, agent, convo):
    async def run():
        store = Store(settings.redis_url)
        try:
            await store.link(src, ext, agent, convo, coalesce_ms=0)
        finally:
            await store.close()

    asyncio.run(run())


def pending(rclient, agent, convo):
    return rclient.hgetall(f"cb:p:{conversation_key(agent, convo)}")


def body(external_id):
    return f'{{"external_id":"{external_id}","occurred_at":{T},"set":{{"title":"x"}}}}'.encode()


def test_a_link_wins_over_the_default_agent(make_settings, rclient):
    settings = make_settings(SOURCES)
    link(settings, "dflt", "T-1", "agent-linked", "convo-linked")
    receipt = send(settings, "dflt", body("T-1"), "m1")
    assert receipt.accepted == 1
    assert pending(rclient, "agent-linked", "convo-linked")
    assert not pending(rclient, "agent-default", "T-1")


def test_without_a_link_the_default_agent_takes_the_external_id_as_conversation(
    make_settings, rclient
):
    settings = make_settings(SOURCES)
    assert send(settings, "dflt", body("T-2"), "m2").accepted == 1
    assert b"f:title" in pending(rclient, "agent-default", "T-2")


def test_without_a_link_or_a_default_the_event_waits_as_unroutable(make_settings, rclient):
    settings = make_settings()
    receipt = send(settings, "demo", body("T-3"), "m3")
    assert receipt.accepted == 1  # queued: it waits as a dead letter, not lost
    assert not rclient.keys("cb:p:*")
    letters = [rclient.hgetall(f"cb:dl:{i.decode()}") for i in rclient.zrange("cb:dlq", 0, -1)]
    assert [(d[b"reason"], d[b"external_id"]) for d in letters] == [(b"unroutable", b"T-3")]


def test_an_event_with_nothing_to_change_is_ignored_not_parked(make_settings, rclient):
    # e.g. a generic source whose map yields only the ticket id for this status change
    settings = make_settings()
    empty = f'{{"external_id":"T-4","occurred_at":{T}}}'.encode()
    receipt = send(settings, "demo", empty, "m4")
    assert (receipt.accepted, receipt.ignored, receipt.unroutable) == (0, 1, 0)
    assert rclient.zrange("cb:dlq", 0, -1) == []
    assert not rclient.keys("cb:p:*")


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"NaN", "body is not valid JSON"),
        (b'{"a": 1e400}', "body is not valid JSON"),
        (b"\xff", "body is not valid JSON"),
        (b'{"a": [1, 9223372036854775808]}', "a[1]: number out of range"),
        (b'{"a": {"b": -1e300}}', "a.b: number out of range"),
    ],
)
def test_strict_json_refuses_what_a_lenient_reader_would_take(raw, detail):
    with pytest.raises(PayloadError) as err:
        parse_json(raw)
    assert err.value.detail.startswith(detail)


def test_strict_json_keeps_ordinary_numbers():
    assert parse_json(b'{"a": [1, 2.5, -9223372036854775807]}') == {"a": [1, 2.5, -(2**63) + 1]}
