"""The monitoring pack in deploy/monitoring: the alert rules pass `promtool check rules` and
their own `promtool test rules`, every alert is tested, the Grafana dashboard is valid JSON
whose every expression parses, and rules and dashboard only name metrics the bridge exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import generate_latest

from bridge.metrics import WORKER_REGISTRY, render
from bridge.status import StatusReport

PACK = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES = PACK / "convo-bridge.rules.yml"
RULE_TESTS = PACK / "convo-bridge.rules.test.yml"
DASHBOARD = PACK / "convo-bridge.dashboard.json"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"  # Debian package `prometheus`
METRIC = re.compile(r"\bconvo_bridge_\w+")


def promtool(*args: str, cwd: Path = PACK) -> subprocess.CompletedProcess[str]:
    assert Path(PROMTOOL).exists(), "promtool is missing: apt-get install prometheus"
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def _dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_the_alert_rules_pass_promtool_check() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    fired = {
        case["alertname"]
        for t in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    names = {r["alert"] for r in _alerts()}
    assert len(names) == 7 and names == fired


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    exprs = _dashboard_exprs()
    assert exprs
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:expr{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    (tmp_path / "dashboard.rules.yml").write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", "dashboard.rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_rules_and_dashboard_name_only_exported_metrics_and_show_every_alerted_one() -> None:
    report = StatusReport(0, 0, None, 0, 0, workers_alive=1, delivery_paused=False)
    text = render(report)[0].decode() + generate_latest(WORKER_REGISTRY).decode()
    types = re.findall(r"^# TYPE (convo_bridge_\w+) (\w+)$", text, re.M)
    suffixes = {"histogram": ["_bucket", "_sum", "_count"]}  # a counter is typed as name_total
    exported = {n + s for n, kind in types for s in suffixes.get(kind, [""])}
    alerted = {m for r in _alerts() for m in METRIC.findall(r["expr"])}
    shown = {m for e in _dashboard_exprs() for m in METRIC.findall(e)}
    assert alerted <= exported and shown <= exported
    assert alerted <= shown
