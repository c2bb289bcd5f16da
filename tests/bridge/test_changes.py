"""Intents as versioned per-field changes: the entry format reads back exactly, and versions
order by time (then event identity) as plain strings, which is how the Lua compares them."""

from hypothesis import given
from hypothesis import strategies as st

from bridge.changes import VERSION_LEN, changes, decode, encode, safe_event_id, version
from bridge.intents import MAX_TIME_MS, MIN_TIME_MS, Handoff, Intent

T = 1_764_000_000_000
times = st.integers(min_value=0, max_value=MAX_TIME_MS)
ids = st.text(min_size=1, max_size=40)
payloads = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(times, ids, payloads, st.integers(0, MAX_TIME_MS))
def test_an_entry_reads_back_exactly_whatever_the_payload(occurred, event_id, payload, received):
    event_id = safe_event_id(event_id)
    ver = version(occurred, "demo", event_id)
    raw = encode(ver, "demo", event_id, received, payload)
    entry = decode("f:notes", raw)
    assert (entry.name, entry.raw, entry.version) == ("f:notes", raw, ver)
    assert (entry.source, entry.event_id, entry.received_ms) == ("demo", event_id, received)
    assert entry.payload == payload and entry.occurred_at == occurred


@given(times, ids)
def test_every_version_has_the_fixed_width(occurred, event_id):
    assert len(version(occurred, "demo", event_id)) == VERSION_LEN


@given(times, times, ids, ids)
def test_a_later_event_has_the_greater_version_as_a_string(a, b, id_a, id_b):
    if a != b:
        assert (version(a, "s", id_a) < version(b, "s", id_b)) == (a < b)


def test_events_of_the_same_millisecond_order_the_same_way_everywhere():
    one, two = version(T, "demo", "evt_1"), version(T, "demo", "evt_2")
    assert one != two and version(T, "demo", "evt_1") == one
    assert version(T, "other", "evt_1") != one  # identity includes the source
    assert one[:15] == two[:15] == f"{T:015d}"


def test_odd_event_ids_are_hashed_and_plain_ones_kept():
    assert safe_event_id("msg_2Lh9") == "msg_2Lh9"
    for odd in ("", "a\nb", "x" * 201, "tab\there"):
        hashed = safe_event_id(odd)
        assert hashed.startswith("sha256:") and len(hashed) == 71
        assert "\n" not in hashed


def by_name(intent, completed_state="ended_chat"):
    pairs = changes(intent, "demo", "evt_1", completed_state, received_ms=T + 9)
    return {name: decode(name, raw) for name, raw in pairs}


def test_every_change_of_an_intent_carries_its_version_source_and_event():
    out = by_name(Intent(occurred_at=T, set={"title": "x"}, tags_add=("vip",)))
    assert set(out) == {"f:title", "t:vip"}
    for entry in out.values():
        assert entry.version == version(T, "demo", "evt_1")
        assert (entry.source, entry.event_id, entry.received_ms) == ("demo", "evt_1", T + 9)
    assert out["f:title"].payload == "x" and out["t:vip"].payload == 1


def test_a_tag_both_added_and_removed_is_removed_and_repeats_count_once():
    pairs = changes(
        Intent(occurred_at=T, tags_add=("a", "b", "a"), tags_remove=("b",)),
        "demo",
        "e",
        "ended_chat",
    )
    assert [name for name, _ in pairs].count("t:a") == 1
    assert {name: decode(name, raw).payload for name, raw in pairs} == {"t:a": 1, "t:b": 0}


def test_each_handoff_step_sets_the_state_it_implies():
    requested = by_name(Intent(occurred_at=T, handoff=Handoff("requested", team_key="billing")))
    assert requested["f:state"].payload == "requested_chat"
    assert requested["f:requestedTeamKey"].payload == "billing"
    accepted = by_name(Intent(occurred_at=T, handoff=Handoff("accepted", by="ada")))
    assert accepted["f:state"].payload == "human-chatting"
    assert accepted["f:chatAssignedTo"].payload == "ada"
    completed = by_name(Intent(occurred_at=T, handoff=Handoff("completed")), "ai-chatting")
    assert completed["f:state"].payload == "ai-chatting"
    released = by_name(Intent(occurred_at=T, handoff=Handoff("released")))
    assert released["f:state"].payload == "requested_chat"
    assert released["f:chatAssignedTo"].payload == ""


def test_a_handoff_is_one_history_step_at_its_versions_time_unless_given():
    ver = version(T, "demo", "evt_1")
    step = by_name(Intent(occurred_at=T, handoff=Handoff("accepted", by="ada", team_ids=("t",))))
    # no `at` of its own: the step happened at its version's time (Redis's receipt time when
    # the sender's occurred_at was not believed), which compose reads from the entry
    assert step[f"h:{ver}"].payload == {"event": "accepted", "by": "ada", "team_ids": ["t"]}
    assert step[f"h:{ver}"].occurred_at == T
    later = by_name(Intent(occurred_at=T, handoff=Handoff("completed", at=T + 60_000)))
    assert later[f"h:{ver}"].payload == {"event": "completed", "at": T + 60_000}


def test_an_explicit_set_wins_over_what_the_handoff_implies():
    out = by_name(Intent(occurred_at=T, set={"state": "ai-chatting"}, handoff=Handoff("requested")))
    assert out["f:state"].payload == "ai-chatting"


def test_the_time_range_fits_the_version_digits():
    assert len(f"{MAX_TIME_MS:015d}") == 15 and MIN_TIME_MS < MAX_TIME_MS
