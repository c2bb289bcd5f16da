"""The committed vectors are exactly what tests/vectors/make_vectors.py makes: signed by the
official libraries, from fixed secrets and times, so anyone can regenerate and review them."""

from pathlib import Path

from tests.vectors.make_vectors import KINDS, documents

HERE = Path(__file__).resolve().parent


def test_committed_vectors_equal_what_the_script_makes():
    made = documents()
    assert sorted(made) == sorted(f"{kind}.json" for kind in KINDS)
    for name, text in made.items():
        assert (HERE / name).read_text(encoding="utf-8") == text, (
            f"{name} is out of date: run python -m tests.vectors.make_vectors"
        )


def test_the_script_is_deterministic():
    assert documents() == documents()
