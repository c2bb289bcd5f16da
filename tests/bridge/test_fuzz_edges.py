"""Hostile headers, cookies, query strings and every admin route against a real `serve`
app (every sender kind configured, an admin token set) and a real Redis: never a 5xx, never
a traceback, and a refused webhook queues nothing. benchmarks/fuzz_soak.py runs 10,000 per
family."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.admin.auth import csrf_token, session_cookie
from bridge.app import build_app
from bridge.config import load_settings
from tests.fuzzing_edges import (
    ADMIN_TOKEN,
    all_kinds_config,
    every_hostile_cookie,
    every_hostile_header,
    families,
    fuzz_probes,
    secrets_by_kind,
    template_routes,
)
from tests.servers import serve_app_in_thread

EXAMPLES = 150  # per family here


@pytest.fixture(scope="module")
def app_and_families(
    tmp_path_factory: pytest.TempPathFactory, redis_server: object
) -> Iterator[tuple[str, dict[str, object]]]:
    from bridge.local.redis_server import RedisServer

    assert isinstance(redis_server, RedisServer)
    text, env = all_kinds_config()
    path = tmp_path_factory.mktemp("fuzz-edges") / "config.toml"
    path.write_text(text)
    settings = load_settings(path, {**env, "REDIS_URL": redis_server.url})
    app = build_app(settings)
    session = session_cookie(ADMIN_TOKEN).encode()
    by_name = families(template_routes(app.routes), session, csrf_token(ADMIN_TOKEN).encode())
    probes: dict[str, object] = dict(by_name)
    probes["every hostile header"] = every_hostile_header(secrets_by_kind())
    probes["every hostile cookie"] = every_hostile_cookie(template_routes(app.routes))
    with serve_app_in_thread(app) as url:
        yield url, probes


@pytest.mark.parametrize("family", ["webhook headers", "admin API", "admin page", "public GET"])
def test_no_hostile_request_gets_a_5xx(
    app_and_families: tuple[str, dict[str, object]], redis_url: str, family: str
) -> None:
    url, by_name = app_and_families
    seen = fuzz_probes(url, redis_url, by_name[family], EXAMPLES)
    print(family, dict(sorted(seen.items())))
    assert sum(seen.values()) >= EXAMPLES
    if family == "webhook headers":
        assert seen[401] > 0 and seen[202] + seen[400] > 0  # both sides of the signature
    if family.startswith("admin"):
        assert seen[401] + seen[303] > 0 and seen[200] + seen[303] > 0


@pytest.mark.parametrize("family", ["every hostile header", "every hostile cookie"])
def test_every_hostile_header_and_cookie_value_is_refused_cleanly(
    app_and_families: tuple[str, dict[str, object]], redis_url: str, family: str
) -> None:
    url, by_name = app_and_families
    probes = by_name[family]
    assert isinstance(probes, list) and len(probes) > 200
    seen = fuzz_probes(url, redis_url, probes, len(probes))
    print(family, dict(sorted(seen.items())))
    assert sum(seen.values()) == len(probes)
    if family == "every hostile header":
        assert seen[401] > 0
    else:
        assert seen[200] > 0 and seen[401] > 0 and seen[303] > 0
