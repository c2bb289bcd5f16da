"""The chaos soak, small: 1,500 events over 60 conversations through 2 serve + 3 worker
processes, 20 % 503s and 5 % 429s from the target, 3 % of PATCHes held past the client's
timeout and applied late, a worker kill -9 every 1.5 s, a worker paused (SIGSTOP) past its
lease every 4 s, Redis kill -9 and restart once (on the cluster, a primary: its replica takes
over). The script checks the guarantees and exits non-zero on a breach."""

import pytest

from benchmarks.chaos_soak import main


@pytest.mark.parametrize("where", ["one server", "cluster"])
def test_small_chaos_soak_keeps_every_guarantee(where, capsys) -> None:  # type: ignore[no-untyped-def]
    """On one Redis server, and on a 3-primary Redis Cluster (120 shards, durability
    "replica", RQ on a Redis of its own) where the Redis kill -9 kills a primary."""
    extra = ["--cluster"] if where == "cluster" else []
    code = main(
        ["--events", "1500", "--convos", "60", "--kill-every", "1.5", "--pause-every", "4", *extra]
    )
    out = capsys.readouterr().out
    print(out)
    assert code == 0, out
    figures = {
        line.rsplit("  ", 1)[0].strip(): line.rsplit("  ", 1)[1]
        for line in out.splitlines()
        if "  " in line
    }
    assert figures["lost (accepted, neither applied nor dead-lettered)"] == "0"
    assert figures["stale values / wrong tags"] == "0 / 0"
    assert figures["overlapping PATCHes of one conversation"] == "0"
    assert int(figures["PATCHes held past the client timeout, applied late"]) > 0
    assert (
        int(
            figures["worker kill -9s / SIGSTOP+SIGCONTs / Redis kill -9 + restarts"].split(" / ")[1]
        )
        > 0
    )
