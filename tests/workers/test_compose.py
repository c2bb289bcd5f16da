from bridge.changes import changes, decode
from bridge.intents import Handoff, Intent
from workers.compose import compose, needs_arrays

T0 = 1_764_000_000_000


def entries_of(*intents, source="s"):
    latest = {}
    for i, intent in enumerate(intents):
        for name, raw in changes(intent, source, f"e{i}", "ended_chat"):
            e = decode(name, raw)
            if name not in latest or latest[name].version < e.version:
                latest[name] = e
    return list(latest.values())


def test_fields_go_out_as_their_newest_values():
    es = entries_of(
        Intent(T0, "a", "c", set={"title": "old"}),
        Intent(T0 + 5, "a", "c", set={"title": "new", "userName": "Ada"}),
    )
    out = compose(es, [], None, "s")
    assert out.conversation == {"title": "new", "userName": "Ada"}
    assert not needs_arrays(es)


def test_tags_are_sent_whole_from_the_known_array():
    es = entries_of(Intent(T0, "a", "c", tags_add=("vip", "new"), tags_remove=("bot",)))
    out = compose(es, [], {"tags": ["bot", "x"], "handoffHistory": []}, "s")
    assert out.conversation == {"tags": ["x", "vip", "new"]}


def test_a_tag_removed_after_it_was_added_stays_removed():
    es = entries_of(
        Intent(T0, "a", "c", tags_add=("vip",)), Intent(T0 + 1, "a", "c", tags_remove=("vip",))
    )
    out = compose(es, [], {"tags": ["vip"], "handoffHistory": []}, "s")
    assert out.conversation == {"tags": []}


def test_handoff_steps_become_history_state_and_assignee():
    es = entries_of(
        Intent(T0, "a", "c", handoff=Handoff("requested", team_key="billing")),
        Intent(T0 + 2000, "a", "c", handoff=Handoff("accepted", by="ann@acme.com")),
    )
    out = compose(es, [], {"tags": [], "handoffHistory": []}, "s")
    assert out.conversation["state"] == "human-chatting"
    assert out.conversation["chatAssignedTo"] == "ann@acme.com"
    assert out.conversation["requestedTeamKey"] == "billing"
    assert out.conversation["handoffHistory"] == [
        {
            "requestedAt": T0 // 1000,
            "requestedTeamKey": "billing",
            "acceptedAt": T0 // 1000 + 2,
            "acceptedBy": "ann@acme.com",
        }
    ]


def test_a_step_already_in_history_adds_nothing():
    es = entries_of(Intent(T0, "a", "c", handoff=Handoff("requested")))
    history = [{"requestedAt": T0 // 1000}]
    out = compose(es, [], {"tags": [], "handoffHistory": history}, "s")
    assert "handoffHistory" not in out.conversation
    assert out.conversation["state"] == "requested_chat"


def test_completed_closes_the_open_entry_in_milliseconds():
    es = entries_of(Intent(T0 + 9, "a", "c", handoff=Handoff("completed")))
    out = compose(
        es, [], {"tags": [], "handoffHistory": [{"requestedAt": 1, "acceptedAt": 2}]}, "ms"
    )
    assert out.conversation["handoffHistory"] == [
        {"requestedAt": 1, "acceptedAt": 2, "completedAt": T0 + 9}
    ]
    assert out.conversation["state"] == "ended_chat"


def test_released_waits_for_a_human_again_with_a_new_history_entry():
    es = entries_of(
        Intent(T0, "a", "c", handoff=Handoff("accepted", by="sam@acme.test")),
        Intent(T0 + 5000, "a", "c", handoff=Handoff("released")),
    )
    history = [{"requestedAt": T0 // 1000 - 60}]
    out = compose(es, [], {"tags": [], "handoffHistory": history}, "s")
    assert out.conversation["state"] == "requested_chat"
    assert out.conversation["chatAssignedTo"] == ""
    assert out.conversation["handoffHistory"] == [
        {"requestedAt": T0 // 1000 - 60, "acceptedAt": T0 // 1000, "acceptedBy": "sam@acme.test"},
        {"requestedAt": T0 // 1000 + 5},
    ]


def test_a_replayed_release_adds_no_second_entry():
    released = entries_of(Intent(T0, "a", "c", handoff=Handoff("released")))
    once = compose(released, [], {"tags": [], "handoffHistory": []}, "s")
    again = compose(released, [], once.arrays, "s")
    assert again.conversation.get("handoffHistory", once.arrays["handoffHistory"]) == [
        {"requestedAt": T0 // 1000}
    ]


def test_a_release_with_team_fields_opens_a_bare_history_entry():
    released = entries_of(
        Intent(T0, "a", "c", handoff=Handoff("released", team_key="billing", team_ids=("t1",)))
    )
    out = compose(released, [], {"tags": [], "handoffHistory": []}, "s")
    assert out.conversation["handoffHistory"] == [{"requestedAt": T0 // 1000}]


def test_a_late_whole_tag_list_replays_the_newer_applied_changes_on_top():
    [whole] = entries_of(Intent(T0 + 1000, "a", "c", set={"tags": ["a", "b"]}))
    applied = entries_of(
        Intent(T0 + 500, "a", "c", tags_add=("old",)),  # older than the list: gone
        Intent(T0 + 2000, "a", "c", tags_add=("x",), tags_remove=("b",)),
    )
    out = compose([whole], applied, None, "s")  # no GET needed: the list is the start
    assert out.conversation == {"tags": ["a", "x"]}
    assert not needs_arrays([whole], applied)


def test_a_re_send_carries_the_newest_applied_values():
    applied = entries_of(Intent(T0, "a", "c", set={"title": "applied", "tags": ["k"]}))
    redo = [decode(n, f"{T0:015d}{0:012d}\nbridge\nredo\n0\nnull") for n in ("r:f:title", "r:tags")]
    out = compose(redo, applied, None, "s")
    assert out.conversation == {"title": "applied", "tags": ["k"]}


def test_tens_of_thousands_of_tag_changes_compose_in_linear_time():
    import time

    def timed(n):
        es = entries_of(Intent(T0, "a", "c", tags_add=tuple(f"t{i}" for i in range(n))))
        started = time.process_time()
        compose(es, [], {"tags": [f"t{i}" for i in range(0, n, 2)], "handoffHistory": []}, "s")
        return time.process_time() - started

    small, big = timed(10_000), timed(40_000)
    assert big < 8 * small + 0.05  # 4x the work: linear (quadratic would be 16x)


def test_two_assignments_within_one_second_are_two_history_entries():
    es = entries_of(
        Intent(T0 + 100, "a", "c", handoff=Handoff("accepted", by="ann@acme.test")),
        Intent(T0 + 600, "a", "c", handoff=Handoff("accepted", by="bob@acme.test")),
    )
    history = [{"requestedAt": T0 // 1000 - 60}]
    out = compose(es, [], {"tags": [], "handoffHistory": history}, "s")
    assert out.conversation["chatAssignedTo"] == "bob@acme.test"
    assert out.conversation["handoffHistory"] == [
        {"requestedAt": T0 // 1000 - 60, "acceptedAt": T0 // 1000, "acceptedBy": "ann@acme.test"},
        {"acceptedAt": T0 // 1000, "acceptedBy": "bob@acme.test"},
    ]
    again = compose(es, [], out.arrays, "s")  # replayed: nothing added
    assert (
        again.conversation.get("handoffHistory", out.arrays["handoffHistory"])
        == (out.arrays["handoffHistory"])
    )


def test_a_release_then_a_team_request_within_one_second_are_two_history_entries():
    es = entries_of(
        Intent(T0 + 100, "a", "c", handoff=Handoff("released")),
        Intent(T0 + 600, "a", "c", handoff=Handoff("requested", team_key="billing")),
    )
    out = compose(es, [], {"tags": [], "handoffHistory": []}, "s")
    assert out.conversation["handoffHistory"] == [
        {"requestedAt": T0 // 1000},
        {"requestedAt": T0 // 1000, "requestedTeamKey": "billing"},
    ]
