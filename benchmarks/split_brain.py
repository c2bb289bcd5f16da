"""Split brain, counted: how many acknowledged webhooks the promoted replica lacks when the
old primary is cut off from its replicas and sentinels while ingest keeps writing to it.
Not part of the test suite (tests/workers/test_failover.py asserts 0 for "replica").

    .venv/bin/python benchmarks/split_brain.py [--seconds 3]

Starts a primary, two replicas and three sentinels (tests/ha.py) and, for each
[redis] durability, ingest pinned to the primary by a direct URL.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from tests.ha import HaRedis
from tests.workers.test_failover import split_brain


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--seconds", type=float, default=3.0, help="writes to the old primary after promotion"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ha = HaRedis(Path(tmp) / "ha").start()
        try:
            for durability in ("local", "replica"):
                ha.flush()
                acked, lost = split_brain(ha, Path(tmp) / durability, durability, args.seconds)
                print(f"durability {durability:<8} acknowledged {acked:>7,}  lost {lost:>7,}")
        finally:
            ha.stop()


if __name__ == "__main__":
    main()
