"""/openapi.json is true: every route is documented and nothing else is, and schemathesis,
driving a live server with generated requests, finds no 5xx and no undocumented answer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bridge.app import build_app
from bridge.config import Settings
from tests.conftest import SECRET
from tests.routes import flat
from tests.servers import serve_app_in_thread
from tests.signing import standard_headers

ADMIN = {"Authorization": "Bearer admin-token"}


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from bridge.config import load_settings
    from tests.conftest import SECRET, write_config

    config = write_config(tmp_path_factory.mktemp("openapi"))
    env = {
        "DEMO_SECRET": SECRET,
        "REDIS_URL": redis_server.url,
        "CONVOCORE_BASE_URL": "http://127.0.0.1:9",
        "CONVOCORE_API_TOKEN": "t",
        "BRIDGE_ADMIN_TOKEN": "admin-token",
    }
    with serve_app_in_thread(build_app(load_settings(config, env))) as url:
        yield url


def test_every_route_is_documented_and_nothing_else(settings: Settings) -> None:
    from bridge.openapi import document

    routed = set()
    for template, methods in flat(build_app(settings).routes):
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", template)
        routed |= {(path, m.lower()) for m in methods if m != "HEAD"}
    documented = {(p, m) for p, ops in document()["paths"].items() for m in ops}
    assert routed == documented


def test_the_served_document_is_the_document(ingest_url: str) -> None:
    from bridge.openapi import document

    answer = httpx.get(f"{ingest_url}/openapi.json")
    assert answer.status_code == 200 and answer.json() == document(["demo"])


def signed_call(url: str, case) -> httpx.Response:  # type: ignore[no-untyped-def]
    """Send the generated webhook with a valid signature, so the body is really parsed."""
    body = json.dumps(case.body).encode() if isinstance(case.body, (dict, list)) else b""
    headers = {
        **{k: str(v) for k, v in (case.headers or {}).items()},
        "content-type": case.media_type or "application/json",
        **standard_headers(SECRET, body),
    }
    return httpx.post(
        f"{url}/webhooks/{case.path_parameters['source']}", content=body, headers=headers
    )


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_api_answers_only_as_documented_and_never_5xx(live_url: str) -> None:
    """Every operation, 25 generated requests each (with the admin token, so the admin
    routes are exercised past authentication)."""
    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case) -> None:  # type: ignore[no-untyped-def]
            if operation.path == "/webhooks/{source}" and operation.method.upper() == "POST":
                case.validate_response(signed_call(live_url, case), checks=CHECKS)
            else:
                case.call_and_validate(headers=ADMIN, checks=CHECKS, allow_redirects=False)

        check()


def test_the_document_offers_every_handoff_step_the_intent_takes() -> None:
    from bridge.intents import HANDOFF_EVENTS
    from bridge.openapi import document

    text = json.dumps(document(["demo"]))
    assert '"enum": ["requested", "accepted", "completed", "released"]' in text
    assert HANDOFF_EVENTS == ("requested", "accepted", "completed", "released")


def _operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for ops in doc["paths"].values() for op in ops.values()]


def test_every_operation_has_its_own_operation_id() -> None:
    from bridge.openapi import document

    ids = [op.get("operationId") for op in _operations(document(["demo"]))]
    assert None not in ids and len(set(ids)) == len(ids)


def test_every_sender_kind_documents_the_headers_it_verifies() -> None:
    from bridge.openapi import document
    from bridge.providers import PROVIDERS

    post = document(["demo"])["paths"]["/webhooks/{source}"]["post"]
    documented = {
        p["name"].lower(): p["description"] for p in post["parameters"] if p["in"] == "header"
    }
    for kind, module in PROVIDERS.items():
        read = {getattr(module, n) for n in ("SIG", "STAMP", "EVENT") if hasattr(module, n)}
        read |= {getattr(module, "DEFAULT_HEADER", "x-signature")} if kind == "generic" else set()
        described = {name for name, said in documented.items() if kind in said.split(":")[0]}
        assert described and read <= described, kind
    assert {"webhook-signature", "svix-signature"} <= documented.keys()


def test_a_client_generator_generates_every_operation(tmp_path: Path) -> None:
    """openapi-python-client (PyPI) used to skip POST /webhooks/{source} (arrays without
    `items`) and let /admin and /admin/ overwrite each other."""
    from bridge.openapi import document

    doc = document(["demo"])
    (tmp_path / "openapi.json").write_text(json.dumps(doc))
    bin_dir = Path(sys.executable).parent
    generate = ["generate", "--path", "openapi.json", "--output-path", "client", "--meta", "none"]
    ran = subprocess.run(
        [str(bin_dir / "openapi-python-client"), *generate],
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    said = ran.stdout + ran.stderr
    assert ran.returncode == 0 and "warning" not in said.lower(), said
    generated = {p.stem for p in (tmp_path / "client" / "api").rglob("*.py")} - {"__init__"}
    assert generated == {op["operationId"] for op in _operations(doc)}
