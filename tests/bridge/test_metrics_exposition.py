"""The /metrics exposition: valid for Prometheus's own linter (`promtool check metrics`),
OpenMetrics when the scraper asks for it, dead letters at 0 rather than absent, and queue
gauges that two serve replicas on one Redis do not double-count under the documented
PromQL (checked by promtool's rule-test evaluator)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from bridge.app import build_app
from bridge.config import Settings
from tests.bridge.test_metrics import send, value
from tests.servers import serve_app_in_thread

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"  # Debian package `prometheus`
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
# README, Metrics: how to read the Redis-read gauges across replicas
DOCUMENTED_QUERY = 'max by (__name__, reason) ({scope="cluster"})'


def promtool(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    assert Path(PROMTOOL).exists(), "promtool is missing: apt-get install prometheus"
    return subprocess.run(
        [PROMTOOL, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_exposition_passes_promtool(ingest_url: str) -> None:
    assert send(ingest_url, "p1").status_code == 202
    text = httpx.get(f"{ingest_url}/metrics").text
    checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_openmetrics_is_served_when_asked_for(ingest_url: str) -> None:
    assert send(ingest_url, "om1").status_code == 202
    answer = httpx.get(f"{ingest_url}/metrics", headers={"Accept": OPENMETRICS})
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}  # strict parser
    requests = families["convo_bridge_webhook_requests"]
    assert requests.type == "counter"
    assert any(s.labels.get("status") == "202" for s in requests.samples)
    assert families["convo_bridge_queue_depth"].type == "gauge"
    plain = httpx.get(f"{ingest_url}/metrics", headers={"Accept": "text/plain"})
    assert plain.headers["content-type"].startswith("text/plain")
    assert "# EOF" not in plain.text


def test_dead_letters_are_reported_as_zero_when_there_are_none(ingest_url: str) -> None:
    text = httpx.get(f"{ingest_url}/metrics").text
    lines = [x for x in text.splitlines() if x.startswith("convo_bridge_dead_letters{")]
    assert lines, text
    assert value(text, "convo_bridge_dead_letters") == 0
    assert 'convo_bridge_dead_letters{reason="unroutable",scope="cluster"} 0.0' in lines


def _series(text: str, instance: str) -> list[str]:
    """promtool rule-test input series (`name{labels,instance=…}` 'value') from one scrape."""
    out = []
    for line in text.splitlines():
        m = re.match(r'^(convo_bridge_\w+)\{([^}]*scope="cluster"[^}]*)\} (\S+)$', line)
        if m:
            labels = f'{m.group(2)},instance="{instance}"'
            out.append(f"  - series: '{m.group(1)}{{{labels}}}'\n    values: '{m.group(3)}'")
    return out


def test_two_replicas_do_not_double_count_the_queue_under_the_documented_query(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    with (
        serve_app_in_thread(build_app(settings)) as a,
        serve_app_in_thread(build_app(settings)) as b,
    ):
        for i in range(3):
            assert send(a if i % 2 else b, f"rep{i}").status_code == 202
        time.sleep(0.2)  # past coalesce_ms (20 ms): all three are due now
        scrapes = {
            "a:8080": httpx.get(f"{a}/metrics").text,
            "b:8080": httpx.get(f"{b}/metrics").text,
        }
    for text in scrapes.values():
        assert value(text, "convo_bridge_queue_depth", scope="cluster") == 3
        own = [x for x in text.splitlines() if x.startswith("convo_bridge_webhook_requests_total")]
        assert own and not any("scope=" in x for x in own)  # each process's own: no scope
    series = [s for instance, text in scrapes.items() for s in _series(text, instance)]
    (tmp_path / "rules.yml").write_text("groups: []\n")
    (tmp_path / "test.yml").write_text(
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n- interval: 1m\n"
        "  input_series:\n" + "\n".join(series) + "\n"
        "  promql_expr_test:\n"
        f"  - expr: '{DOCUMENTED_QUERY.replace(chr(39), chr(39) * 2)}'\n"
        "    eval_time: 0m\n    exp_samples:\n"
        + "".join(
            f"    - labels: '{name}{labels}'\n      value: {v}\n"
            for name, labels, v in (
                ("convo_bridge_queue_depth", "", 3),
                ("convo_bridge_conversations_waiting", "", 3),
                ("convo_bridge_in_flight", "", 0),
                ("convo_bridge_scheduled_retries", "", 0),
                ("convo_bridge_circuit_open", "", 0),
                ("convo_bridge_dead_letters", '{reason="max_attempts"}', 0),
                ("convo_bridge_dead_letters", '{reason="unroutable"}', 0),
                ("convo_bridge_workers_alive", "", 0),
                ("convo_bridge_delivery_paused", "", 0),
            )
        )
    )
    tested = promtool("test", "rules", str(tmp_path / "test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    summed = sum(value(t, "convo_bridge_queue_depth") for t in scrapes.values())
    assert summed == 6  # what `sum` says instead: why the README says `max`
