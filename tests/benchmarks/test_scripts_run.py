"""Every benchmark script runs as the README shows it, `python benchmarks/<name>.py`, from any
directory: `cluster_spread.py` and `split_brain.py` failed at their first import
(`No module named 'benchmarks'`, `'tests'`) until they put the project on sys.path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if "__main__" in p.read_text())


def test_the_scripts_are_found() -> None:
    assert {"bench.py", "cluster_spread.py", "split_brain.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_benchmark_script_answers_help_when_run_from_elsewhere(name: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
