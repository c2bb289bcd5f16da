"""Each Convocore account's own circuit ([convocore.accounts.NAME], lua/gate.lua) in the one
status report: `convo-bridge status` and the `/metrics` gauge name it by account."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from bridge.config import DeliverySettings, Settings
from bridge.metrics import render
from bridge.status import DEFAULT_ACCOUNT, StatusReport, gated_accounts, status_report
from bridge.store import Store
from tests.bridge.store.test_gate import run
from workers.accounts import DEFAULT

D = DeliverySettings(circuit_window=2, circuit_failure_ratio=0.5, circuit_cooldown_s=60.0)
NA = '[convocore.accounts.na]\nbase_url = "https://na.example.test"\ntoken_env = "NA_TOKEN"\n'


def open_na_circuit(redis_url: str) -> None:
    async def fail_twice(store: Store) -> None:
        for _ in range(2):
            await store.gate_record("na", "fail", D)

    run(redis_url, fail_twice)


def test_the_report_holds_each_accounts_own_circuit(redis_url: str) -> None:
    open_na_circuit(redis_url)
    report: StatusReport = run(redis_url, lambda s: status_report(s, ("default", "na")))
    assert report.accounts["na"].state == "open" and report.accounts["na"].opened == 1
    assert report.accounts["na"].until_ms is not None
    assert report.accounts["default"].state == "closed"  # never written: closed
    assert report.circuit.state == "closed"  # the shared one is not the account's
    accounts = report.to_json()["accounts"]
    assert accounts["na"]["state"] == "open" and accounts["default"]["until"] is None


def test_metrics_show_each_accounts_circuit_by_account_label(redis_url: str) -> None:
    open_na_circuit(redis_url)
    report = run(redis_url, lambda s: status_report(s, ("default", "na")))
    text = render(report)[0].decode()
    name = "convo_bridge_account_circuit_open"
    assert f'{name}{{account="na",scope="cluster"}} 1.0' in text
    assert f'{name}{{account="default",scope="cluster"}} 0.0' in text
    plain = run(redis_url, status_report)  # no [convocore.accounts]: no such gauge
    assert name not in render(plain)[0].decode()


def test_accounts_are_gated_only_when_configured_and_the_default_one_by_the_workers_name(
    make_settings: Callable[..., Settings],
) -> None:
    assert DEFAULT_ACCOUNT == DEFAULT
    assert gated_accounts(make_settings().convocore) == ()
    with_na = make_settings(NA, env={"NA_TOKEN": "t"})
    assert gated_accounts(with_na.convocore) == ("default", "na")


def test_status_command_prints_each_accounts_circuit(
    redis_url: str, make_settings: Callable[..., Settings], bridge_env: dict[str, str]
) -> None:
    open_na_circuit(redis_url)
    settings = make_settings(NA, env={"NA_TOKEN": "t"})
    env = {**bridge_env, "NA_TOKEN": "t", "REDIS_URL": redis_url}
    cmd = [sys.executable, "-m", "bridge.cli", "status", "--config", str(settings.path)]
    text = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "circuit na" in text.stdout and "open until" in text.stdout, text.stdout
    as_json = subprocess.run(
        [*cmd, "--json"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(as_json.stdout)["accounts"]["na"]["state"] == "open"
