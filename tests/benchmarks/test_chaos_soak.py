"""The chaos soak, small: 1,500 events over 60 conversations through 2 serve + 3 worker
processes, 20 % 503s and 5 % 429s from the target, a worker kill -9 every 1.5 s, Redis
kill -9 and restart once. The script checks the guarantees and exits non-zero on a breach."""

from benchmarks.chaos_soak import main


def test_small_chaos_soak_keeps_every_guarantee(capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(["--events", "1500", "--convos", "60", "--kill-every", "1.5"])
    out = capsys.readouterr().out
    print(out)
    assert code == 0, out
    assert "lost (accepted, neither applied nor dead-lettered)  0" in out
