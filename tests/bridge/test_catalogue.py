"""The Convocore field table: what may be written to a conversation, checked the same way by
ingest and the sandbox."""

import math

import pytest

from bridge.catalogue import FIELDS, SERVER_SET, STATES, field_problem, is_number, json_schemas


@pytest.mark.parametrize(
    ("name", "good", "bad", "expected"),
    [
        ("userEmail", "a@b.c", 3, "a string"),
        ("messagesNum", 3.5, "3", "a number"),
        ("isBlocked", False, 0, "a boolean"),
        ("sessions", [], {}, "an array"),
        ("vapi", {}, [], "an object"),
        ("tags", ["a"], ["a", 1], "an array of strings"),
    ],
)
def test_each_field_takes_its_type_and_refuses_another(name, good, bad, expected):
    assert field_problem(name, good) is None
    assert field_problem(name, bad) == f"expected {expected}"


def test_any_json_fields_take_anything():
    for value in (None, 1, "x", [1], {"a": 1}):
        assert field_problem("capturedVariables", value) is None


def test_state_is_one_of_the_conversation_states():
    for state in STATES:
        assert field_problem("state", state) is None
    assert "expected one of" in (field_problem("state", "closed") or "")


def test_a_server_field_and_an_unknown_field_are_refused_by_name():
    assert (
        field_problem("lastModified", 1)
        == "lastModified is set by the server and cannot be written"
    )
    assert field_problem("colour", "red") == "colour is not a Convocore conversation field"


def test_handoff_history_entries_are_checked_key_by_key():
    good = [{"requestedAt": 1, "acceptedBy": "ada", "teamIds": ["t"]}, {}]
    assert field_problem("handoffHistory", good) is None
    assert field_problem("handoffHistory", {}) == "expected an array of handoff entries"
    assert field_problem("handoffHistory", [{}, "x"]) == "[1]: expected an object"
    assert (
        field_problem("handoffHistory", [{"acceptedAt": "now"}])
        == "[0]: acceptedAt: expected number"
    )
    assert (
        field_problem("handoffHistory", [{"teamKeys": [1]}])
        == "[0]: teamKeys: expected array of strings"
    )
    assert (field_problem("handoffHistory", [{"who": "x"}]) or "").startswith(
        "[0]: unknown key 'who'"
    )


def test_a_json_number_is_an_int_or_a_finite_float_never_a_bool():
    assert is_number(0) and is_number(-2.5) and is_number(2**70)
    for value in (True, False, math.nan, math.inf, -math.inf, "1", None):
        assert not is_number(value)


def test_the_schemas_cover_exactly_the_writable_fields():
    schemas = json_schemas()
    assert set(schemas) == set(FIELDS) - SERVER_SET
    assert schemas["state"] == {"enum": list(STATES)}
    assert schemas["messagesNum"] == {"type": "number"}
    assert schemas["capturedVariables"] == {}
