"""The intent reader: strict, every refusal names the field; the wire form reads back the same."""

import pytest

from bridge.errors import PayloadError
from bridge.intents import (
    MAX_ID_LEN,
    MAX_TIME_MS,
    MIN_TIME_MS,
    Handoff,
    Intent,
    check_id,
    check_segment_id,
    parse_intent,
    parse_time,
)

T = 1_764_000_000_000


def intent(**extra):
    return {"agent_id": "a", "convo_id": "c", "occurred_at": T, **extra}


def refusal(obj) -> str:
    with pytest.raises(PayloadError) as err:
        parse_intent(obj)
    return err.value.detail


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (T, T),
        (float(T), T),
        ("2025-11-24T16:00:00Z", T),
        ("2025-11-24T16:00:00z", T),
        ("2025-11-24T17:00:00+01:00", T),
        ("2025-11-24T16:00:00.250Z", T + 250),
        (MIN_TIME_MS, MIN_TIME_MS),
    ],
)
def test_a_time_is_epoch_milliseconds_or_rfc3339_with_a_zone(value, ms):
    assert parse_time(value, "occurred_at") == ms


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2025-11-24T16:00:00", "needs a zone"),
        ("yesterday", "RFC 3339"),
        (True, "epoch milliseconds"),
        (None, "epoch milliseconds"),
        (MIN_TIME_MS - 1, "outside"),
        (MAX_TIME_MS, "outside"),
        (1_764_000_000, "outside"),  # seconds, not milliseconds
    ],
)
def test_a_time_that_is_not_one_is_refused_naming_the_field(value, problem):
    with pytest.raises(PayloadError) as err:
        parse_time(value, "handoff.at")
    assert err.value.detail.startswith("handoff.at: ") and problem in err.value.detail


def test_an_id_is_a_short_printable_string_that_cannot_change_the_url():
    assert check_id("convo 1/ä", "convo_id") == "convo 1/ä"
    assert check_id(42, "agent_id") == "42"
    assert check_id("x" * MAX_ID_LEN, "agent_id") == "x" * MAX_ID_LEN
    for bad in ("", "x" * (MAX_ID_LEN + 1), ".", "..", "a\nb", "a\x00", True, None, 1.5, ["a"]):
        with pytest.raises(PayloadError) as err:
            check_id(bad, "convo_id")
        assert err.value.detail.startswith("convo_id: ")


def test_an_agent_or_conversation_id_is_one_url_segment():
    assert check_segment_id("c?x#%ä", "convo_id") == "c?x#%ä"
    assert check_id("T/1", "external_id") == "T/1"  # a sender's own id may hold one
    for bad in ("c/d", "../../victim-agent/convos/victim-convo", "/", "a/"):
        with pytest.raises(PayloadError) as err:
            check_segment_id(bad, "convo_id")
        assert err.value.detail.startswith("convo_id: '/' is not allowed")
    assert refusal(intent(agent_id="x/y")).startswith("agent_id: '/'")
    assert parse_intent({"external_id": "T/1", "occurred_at": T}).external_id == "T/1"


def test_a_full_intent_reads_into_typed_parts():
    read = parse_intent(
        intent(
            type="conversation.update",
            set={"title": "Refund", "messagesNum": 3},
            tags={"add": ["vip"], "remove": ["bot"]},
            handoff={"event": "accepted", "by": "ada", "team_ids": ["t1"], "at": T + 5},
        )
    )
    assert read == Intent(
        occurred_at=T,
        agent_id="a",
        convo_id="c",
        set={"title": "Refund", "messagesNum": 3},
        tags_add=("vip",),
        tags_remove=("bot",),
        handoff=Handoff(event="accepted", at=T + 5, by="ada", team_ids=("t1",)),
    )
    assert not read.is_empty()


def test_the_wire_form_reads_back_as_the_same_intent():
    original = parse_intent(
        {
            "external_id": "ticket-7",
            "occurred_at": "2025-11-24T16:00:00Z",
            "set": {"userEmail": "a@b.c"},
            "tags": {"add": ["x", "y"]},
            "handoff": {"event": "requested", "team_key": "billing", "team_keys": ["k"]},
        }
    )
    wire = original.to_json()
    assert wire["type"] == "conversation.update" and wire["occurred_at"] == T
    assert "agent_id" not in wire and "remove" not in wire["tags"]
    assert parse_intent(wire) == original


def test_an_intent_with_nothing_to_change_is_empty():
    assert parse_intent(intent()).is_empty()


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ([], "expected an intent object"),
        (intent(colour="red"), "colour: unknown key"),
        (intent(type="ticket.update"), "type:"),
        ({"agent_id": "a", "convo_id": "c"}, "occurred_at: required"),
        ({"agent_id": "a", "occurred_at": T}, "agent_id: give agent_id and convo_id"),
        (intent(convo_id=".."), "convo_id:"),
        (intent(set=[1]), "set: expected an object"),
        (intent(set={"colour": "red"}), "set.colour: colour is not a Convocore"),
        (intent(set={"messagesNum": "3"}), "set.messagesNum: expected a number"),
        (intent(set={"lastModified": T}), "set.lastModified: lastModified is set by the server"),
        (intent(tags=["vip"]), "tags: expected an object"),
        (intent(tags={"put": ["vip"]}), "tags.put: unknown key"),
        (intent(tags={"add": "vip"}), "tags.add: expected an array of strings"),
        (intent(tags={"remove": [1]}), "tags.remove: expected an array of strings"),
        (intent(handoff="requested"), "handoff: expected an object"),
        (intent(handoff={"event": "escalated"}), "handoff.event: expected one of"),
        (intent(handoff={"event": "requested", "when": 1}), "handoff.when: unknown key"),
        (intent(handoff={"event": "requested", "by": 7}), "handoff.by: expected a string"),
        (intent(handoff={"event": "requested", "at": "noon"}), "handoff.at:"),
        (intent(handoff={"event": "requested", "team_ids": "t"}), "handoff.team_ids:"),
    ],
)
def test_a_bad_intent_is_refused_naming_the_field(obj, field):
    assert refusal(obj).startswith(field)


def test_a_null_handoff_means_none():
    assert parse_intent(intent(handoff=None)).handoff is None
