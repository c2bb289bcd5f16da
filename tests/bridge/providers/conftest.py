"""A real ingest server for one sender kind, configured from its test vectors (tests/vectors)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.app import build_app
from bridge.config import load_settings
from tests.fuzzing import config_text, vector_cases
from tests.servers import serve_app_in_thread


@pytest.fixture
def source(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, sandbox_url: str
) -> Iterator[tuple[str, str, str]]:
    kind = request.param
    cases, config = vector_cases(kind)
    path = tmp_path / "config.toml"
    path.write_text(config_text(kind, config))
    env = {
        "SENDER_SECRET": cases[0]["secret"],
        "REDIS_URL": redis_url,
        "CONVOCORE_BASE_URL": sandbox_url,
        "CONVOCORE_API_TOKEN": "t",
    }
    with serve_app_in_thread(build_app(load_settings(path, env))) as url:
        yield kind, url, cases[0]["secret"]
