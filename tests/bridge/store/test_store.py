"""The Redis layout's guarantees, script by script, against a real Redis server."""

import asyncio
import time

import pytest

from bridge.changes import changes, payloads
from bridge.config import DeliverySettings
from bridge.intents import Handoff, Intent
from bridge.store import AcceptResult, Outcome, Routed, Store, conversation_key

T0 = 1_764_000_000_000
D = DeliverySettings(coalesce_ms=0)


def routed(intent, event_id, source="demo"):
    ck = conversation_key(intent.agent_id, intent.convo_id) if intent.agent_id else ""
    return Routed(
        source,
        event_id,
        payloads(intent, "ended_chat"),
        intent.occurred_at,
        ck=ck,
        external_id=intent.external_id or "",
    )


async def accept(store, *events, ttl=60):
    return await store.accept(list(events), dedup_ttl_s=ttl, coalesce_ms=0)


async def take_one(store):
    work, _ = await store.take(10, lease_ms=5000, rate_limit=0)
    return work


def values(work):
    return {e.name: e.payload for e in work.entries}


class Runner:
    """Runs a test body with a fresh Store in its own event loop."""

    def __init__(self, url, rq_url="", settings=None):
        self.url, self.rq_url, self.settings = url, rq_url, settings

    def run(self, body):
        async def main():
            store = Store(self.url, rq_url=self.rq_url, durability=self.settings)
            try:
                return await body(store)
            finally:
                await store.close()

        return asyncio.run(main())


@pytest.fixture
def store(redis_url):
    return Runner(redis_url)


def test_a_redelivered_event_is_a_duplicate(store):
    async def go(store):
        i = Intent(T0, "a", "c", set={"title": "x"})
        first = await accept(store, routed(i, "e1"))
        again = await accept(store, routed(i, "e1"))
        return first, again

    first, again = store.run(go)
    assert (first.accepted, first.duplicates) == (1, 0)
    assert (again.accepted, again.duplicates) == (0, 1)


def test_a_settle_writes_its_attempts_log_entry_in_the_same_call_naming_its_dead_letter(
    store, redis_url
):
    """The PATCH's event-log entry rides in settle's own call (one Redis call per attempt,
    not two), and names the dead letter that same call made."""
    import redis

    from bridge.config import EventLogSettings
    from bridge.eventlog import EventQuery, log_bounds, patch_entry, search

    logged = EventLogSettings()
    dead = Outcome("dead", attempt={"status": 404}, reason="rejected_404", status="404")

    async def go(store):
        await accept(store, routed(Intent(T0, "a", "c", set={"title": "x"}), "e1"))
        [work] = await take_one(store)
        row = patch_entry(logged, work, dead)
        counter = redis.Redis.from_url(redis_url)
        counter.config_resetstat()
        dl_id = await store.settle(work, dead, settings=D, log=row, log_bounds=log_bounds(logged))
        stats = counter.info("commandstats")["cmdstat_evalsha"]
        # a first call of a script is refused (NOSCRIPT) and sent again once it is loaded
        calls = stats["calls"] - stats.get("rejected_calls", 0) - stats.get("failed_calls", 0)
        counter.close()
        return dl_id, calls, await search(store, EventQuery(kind="patch"))

    dl_id, calls, entries = store.run(go)
    assert calls == 1
    [entry] = entries
    assert (entry.verdict, entry.status, entry.event_ids) == ("dead_lettered", "404", ["e1"])
    assert entry.dead_letter == dl_id != ""


def test_older_event_never_overwrites_newer_pending_value(store):
    async def go(store):
        await accept(store, routed(Intent(T0 + 10, "a", "c", set={"title": "new"}), "e2"))
        await accept(store, routed(Intent(T0, "a", "c", set={"title": "old"}), "e1"))
        return await take_one(store)

    [work] = store.run(go)
    assert values(work) == {"f:title": "new"}


def test_one_conversation_is_taken_by_one_worker_at_a_time(store):
    async def go(store):
        await accept(store, routed(Intent(T0, "a", "c", set={"title": "x"}), "e1"))
        first = await take_one(store)
        await accept(store, routed(Intent(T0 + 1, "a", "c", set={"title": "y"}), "e2"))
        second = await take_one(store)
        return first, second

    first, second = store.run(go)
    assert len(first) == 1 and second == []


def test_settle_keeps_what_arrived_during_the_patch(store):
    async def go(store):
        await accept(store, routed(Intent(T0, "a", "c", set={"title": "x", "userName": "A"}), "e1"))
        [work] = await take_one(store)
        await accept(store, routed(Intent(T0 + 1, "a", "c", set={"title": "y"}), "e2"))
        await store.settle(work, Outcome("ok", sent=work.entries), settings=D)
        return await take_one(store)

    [again] = store.run(go)
    assert values(again) == {"f:title": "y"}


def test_the_arrays_are_read_and_written_again_only_by_a_patch_of_an_array(store, rclient):
    """The cached tags/handoffHistory (arr:<ck>) are what an answer said: a take reads them
    only for a PATCH that changes an array, and only such a PATCH's settle writes them again
    (before, every take read them and every settle wrote them back, its expiry renewed)."""
    known = {"tags": ["vip"], "handoffHistory": []}

    async def go(store):
        await accept(store, routed(Intent(T0, "a", "c", set={"title": "x"}), "e1"))
        [first] = await take_one(store)
        await store.settle(first, Outcome("ok", sent=first.entries, arrays=known), settings=D)
        rclient.pexpire("cb:arr:a/c", 40_000)  # as if the answer came a while ago
        await accept(store, routed(Intent(T0 + 1, "a", "c", set={"title": "y"}), "e2"))
        [plain] = await take_one(store)
        await store.settle(
            plain, Outcome("ok", sent=plain.entries, arrays=plain.arrays), settings=D
        )
        ttl = rclient.pttl("cb:arr:a/c")
        await accept(store, routed(Intent(T0 + 2, "a", "c", tags_add=("new",)), "e3"))
        [tagged] = await take_one(store)
        return plain, ttl, tagged

    plain, ttl, tagged = store.run(go)
    assert plain.arrays is None  # a title change: the arrays not read
    assert 0 < ttl <= 40_000  # nor written back with a fresh expiry
    assert tagged.arrays == known  # a tag change starts from them


def test_an_event_older_than_the_applied_value_is_dropped(store):
    async def go(store):
        await accept(store, routed(Intent(T0 + 10, "a", "c", set={"title": "new"}), "e2"))
        [work] = await take_one(store)
        await store.settle(work, Outcome("ok", sent=work.entries), settings=D)
        await accept(store, routed(Intent(T0, "a", "c", set={"title": "old"}), "e1"))
        return await take_one(store)

    assert store.run(go) == []


def test_expired_lease_is_swept_back_to_due(store, rclient):
    async def go(store):
        await accept(store, routed(Intent(T0, "a", "c", set={"title": "x"}), "e1"))
        work, _ = await store.take(1, lease_ms=50, rate_limit=0)
        await asyncio.sleep(0.12)
        swept = await store.sweep(0)
        return work, swept, await take_one(store)

    work, swept, again = store.run(go)
    assert swept == 1 and len(again) == 1 and values(again[0]) == values(work[0])


def test_dead_letter_keeps_changes_and_attempts_and_replay_loses_to_newer(store):
    async def go(store):
        await accept(
            store, routed(Intent(T0, "a", "c", set={"title": "old", "userName": "A"}), "e1")
        )
        [work] = await take_one(store)
        attempt = {"at": T0, "status": 404, "answer": "not found"}
        dl_id = await store.settle(
            work,
            Outcome(
                "dead", attempt=attempt, reason="rejected_404", status="404", snippet="not found"
            ),
            settings=D,
        )
        letter = await store.dead_letter(dl_id)
        # a newer title is applied meanwhile
        await accept(store, routed(Intent(T0 + 50, "a", "c", set={"title": "newer"}), "e2"))
        [w2] = await take_one(store)
        await store.settle(w2, Outcome("ok", sent=w2.entries), settings=D)
        replayed = await store.replay([dl_id], coalesce_ms=0)
        return letter, replayed, await take_one(store), await store.dead_letter_ids()

    letter, replayed, [again], left = store.run(go)
    assert letter.reason == "rejected_404" and letter.attempts[0]["status"] == 404
    assert {e.event_id for e in letter.entries} == {"e1"}
    assert replayed == {letter.id: "replayed"} and left == []
    assert values(again) == {"f:userName": "A"}  # the old title lost to the newer one


@pytest.mark.parametrize("kind", ["dead", "retry"])
def test_a_repeated_failed_settle_changes_nothing_more(store, kind):
    """A settle whose answer was lost (timeout, dropped connection) is sent again by the
    worker: the repeat must not dead-letter or count the newer changes that arrived since."""

    async def go(store):
        await accept(store, routed(Intent(T0, "a", "c", set={"title": "old"}), "e1"))
        [work] = await take_one(store)
        outcome = Outcome(
            kind,
            attempt={"at": T0, "status": 422},
            reason="rejected_422",
            status="422",
            retry_in_ms=0,
        )
        first = await store.settle(work, outcome, settings=D)
        await accept(store, routed(Intent(T0 + 50, "a", "c", set={"notes": "newer"}), "e2"))
        again = await store.settle(work, outcome, settings=D)
        return first, again, await store.dead_letter_ids(), await take_one(store)

    first, again, letters, [pending] = store.run(go)
    assert again == ""
    assert letters == ([first] if kind == "dead" else [])
    assert "f:notes" in values(pending)  # the newer change is still to be delivered
    assert pending.attempts == (0 if kind == "dead" else 1)  # not counted twice


def test_unroutable_events_wait_for_their_link(store):
    async def go(store):
        i = Intent(T0, external_id="T-1", set={"title": "x"})
        res = await accept(store, routed(i, "e1"))
        ids = await store.dead_letter_ids()
        letter = await store.dead_letter(ids[0])
        linked = await store.link("demo", "T-1", "a", "c", coalesce_ms=0)
        return res, letter, linked, await take_one(store), await store.dead_letter_ids()

    res, letter, linked, [work], left = store.run(go)
    assert res.unroutable == 1 and letter.reason == "unroutable"
    assert letter.external_id == "T-1"
    assert linked == "replayed" and left == []
    assert work.ids == ("a", "c") and values(work) == {"f:title": "x"}


def test_an_external_id_a_key_must_escape_still_meets_its_link(store):
    """An email or a path as the external id ('@', '/', ' ' are escaped in key names): the
    parked event is replayed when its link is set, not left 'unroutable'."""

    async def go(store):
        i = Intent(T0, external_id="ann@example.com/t 1", set={"title": "x"})
        res = await accept(store, routed(i, "e1"))
        linked = await store.link("demo", "ann@example.com/t 1", "a", "c", coalesce_ms=0)
        return res, linked, await take_one(store), await store.dead_letter_ids()

    res, linked, [work], left = store.run(go)
    assert res.unroutable == 1
    assert linked == "replayed" and left == []
    assert work.ids == ("a", "c") and values(work) == {"f:title": "x"}


def test_a_letter_parked_by_an_earlier_version_still_meets_its_link(redis_url, rclient):
    """Upgrading keeps the one-shard layout as it was: a letter parked before letters kept
    the id as sent (no `ext` field) is still replayed by `links set`."""

    async def go(store):
        await accept(store, routed(Intent(T0, external_id="T-9", set={"title": "x"}), "e1"))
        [dl_id] = await store.dead_letter_ids()
        rclient.hdel(f"cb:dl:{dl_id}", "ext")  # as an earlier version wrote it
        linked = await store.link("demo", "T-9", "a", "c", coalesce_ms=0)
        return linked, await take_one(store)

    linked, [work] = Runner(redis_url).run(go)
    assert linked == "replayed" and values(work) == {"f:title": "x"}


def test_handoff_steps_are_entries_of_their_own(store):
    async def go(store):
        await accept(
            store,
            routed(Intent(T0, "a", "c", handoff=Handoff("requested")), "e1"),
            routed(Intent(T0 + 1, "a", "c", handoff=Handoff("accepted", by="x")), "e2"),
        )
        return await take_one(store)

    [work] = store.run(go)
    steps = [e for e in work.entries if e.name.startswith("h:")]
    assert [s.payload["event"] for s in sorted(steps, key=lambda e: e.version)] == [
        "requested",
        "accepted",
    ]
    assert values(work)["f:state"] == "human-chatting"


def test_rate_limit_caps_takes_per_second(store):
    async def go(store):
        for n in range(5):
            await accept(store, routed(Intent(T0, "a", f"c{n}", set={"title": "x"}), f"e{n}"))
        work, _ = await store.take(10, lease_ms=5000, rate_limit=2)
        more, nxt = await store.take(10, lease_ms=5000, rate_limit=2)
        return work, more, nxt

    work, more, nxt = store.run(go)
    assert len(work) == 2 and more == [] and nxt is not None


def test_circuit_opens_after_mostly_failures_and_probes_after_cooldown(store):
    d = DeliverySettings(
        coalesce_ms=0, circuit_window=4, circuit_failure_ratio=0.75, circuit_cooldown_s=0.2
    )

    async def go(store):
        for n in range(6):
            await accept(store, routed(Intent(T0, "a", f"c{n}", set={"title": "x"}), f"e{n}"))
        work, _ = await store.take(4, lease_ms=5000, rate_limit=0)
        for w in work:
            await store.settle(
                w,
                Outcome("retry", attempt={"status": 503}, retry_in_ms=0, circuit="fail"),
                settings=d,
            )
        blocked, _ = await store.take(10, lease_ms=5000, rate_limit=0)
        state = (await store.status()).circuit.state
        await asyncio.sleep(0.25)
        probe, _ = await store.take(10, lease_ms=5000, rate_limit=0)
        await store.settle(probe[0], Outcome("ok", sent=probe[0].entries, circuit="ok"), settings=d)
        after, _ = await store.take(10, lease_ms=5000, rate_limit=0)
        return blocked, state, probe, after

    blocked, state, probe, after = store.run(go)
    assert blocked == [] and state == "open"
    assert len(probe) == 1
    assert len(after) == 5


def test_the_accept_script_makes_the_entries_bridge_changes_describes(store):
    """accept.lua and bridge.changes.changes build the same entries (receipt time aside)."""
    i = Intent(T0, "a", "c", set={"title": "x"}, tags_add=("vip",), handoff=Handoff("requested"))

    async def go(store):
        await accept(store, routed(i, "e1"))
        return await take_one(store)

    [work] = store.run(go)
    received = {e.received_ms for e in work.entries}
    assert len(received) == 1 and abs(received.pop() - time.time() * 1000) < 60_000
    made = {e.name: e.raw for e in work.entries}
    assert made == dict(changes(i, "demo", "e1", "ended_chat", work.entries[0].received_ms))


def test_receipt_time_and_far_future_times_are_redis_time(store, rclient):
    """No occurred_at (None) and one later than receipt + skew both become Redis's receipt
    time; the far-future one keeps what the sender said."""
    far = T0 + 10 * 365 * 86_400_000
    ahead = Intent(far, "a", "c", set={"title": "ahead"})
    untimed = Intent(T0, "a", "c2", set={"title": "untimed"})

    async def go(store):
        result = await store.accept(
            [
                routed(ahead, "e1"),
                Routed("demo", "e2", payloads(untimed, "ended_chat"), None, ck="a/c2"),
            ],
            dedup_ttl_s=60,
            coalesce_ms=0,
            max_clock_skew_ms=300_000,
        )
        return result, await store.take(10, lease_ms=5000, rate_limit=0)

    result, (works, _) = store.run(go)
    seconds, micros = rclient.time()
    redis_now = seconds * 1000 + micros // 1000
    assert result.accepted == 2 and result.future == (0,)
    by_ck = {w.ck: w.entries[0] for w in works}
    for entry in by_ck.values():
        assert entry.occurred_at == entry.received_ms
        assert 0 <= redis_now - entry.received_ms < 60_000
    assert by_ck["a/c"].claimed_ms == far and by_ck["a/c2"].claimed_ms is None


def test_a_request_with_no_events_to_route_is_accepted_as_nothing(store):
    """(The one-shard accept's own path once failed on an empty list.)"""

    async def go(store):
        return await accept(store)

    assert store.run(go) == AcceptResult(0, 0, 0)
