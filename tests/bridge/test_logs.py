"""`serve`'s stderr as a log reader sees it: in `json` format every line is one JSON object,
uvicorn's own records included; in `text` format a value holding a line break (a path with
`%0A` in it) stays on its line, escaped, and cannot forge another."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge.config import LogSettings
from bridge.logs import configure, text_value
from tests.conftest import write_config
from tests.servers import free_port, ready, stop

FORGED = "/webhooks/x%0A10:00:00%20INFO%20%20%20%20convo_bridge.worker:%20patched%20agent_id=a"
TEXT_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: ")


def serve_and_poke(tmp_path: Path, env: dict[str, str], log_format: str) -> list[str]:
    """Start `serve` at log level INFO, send it hostile requests, stop it: its stderr lines."""
    config = write_config(tmp_path, f'[log]\nlevel = "INFO"\nformat = "{log_format}"\n')
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    err = tmp_path / "stderr.log"
    with err.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bridge.cli",
                "--config",
                str(config),
                "serve",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        try:
            for _ in range(200):
                if ready(url, "/healthz"):
                    break
            assert httpx.post(url + FORGED, content=b"{}").status_code == 404
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")  # uvicorn warns
                sock.settimeout(5)
                sock.recv(1024)
            httpx.post(f"{url}/webhooks/demo", content=b"{", headers={"content-type": "x"})
        finally:
            stop([proc])
    return [line for line in err.read_text().splitlines() if line]


@pytest.fixture
def env(bridge_env: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **bridge_env}


def test_json_format_writes_only_json_lines_uvicorns_included(
    tmp_path: Path, env: dict[str, str]
) -> None:
    lines = serve_and_poke(tmp_path, env, "json")
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not JSON: {line!r}")
    loggers = {r["logger"] for r in records}
    assert "uvicorn.error" in loggers, lines  # its "Invalid HTTP request" warning
    refused = [r for r in records if r["msg"] == "refused" and r.get("status") == 404]
    assert refused and refused[0]["source"].startswith("x\n10:00:00")


def test_text_format_escapes_a_line_break_in_a_value(tmp_path: Path, env: dict[str, str]) -> None:
    lines = serve_and_poke(tmp_path, env, "text")
    for line in lines:
        assert TEXT_LINE.match(line), f"not a log line of ours: {line!r}"
        assert not re.match(r"^\S+ INFO +convo_bridge\.worker: patched", line), line
    refused = [x for x in lines if "refused" in x and "status=404" in x]
    assert refused and 'source="x\\n10:00:00 INFO' in refused[0], refused
    assert any("uvicorn.error" in x for x in lines), lines


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger configured by bridge.logs, writing into a buffer; restored after."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()
    yield buffer
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_uvicorns_access_records_follow_the_format(
    captured: io.StringIO, monkeypatch: pytest.MonkeyPatch, log_format: str
) -> None:
    monkeypatch.setattr(sys, "stderr", captured)
    configure(LogSettings(level="INFO", format=log_format))
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.INFO)
    access.info(
        '%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "POST", "/webhooks/x\nforged line", "1.1", 404
    )
    (line,) = captured.getvalue().splitlines()
    if log_format == "json":
        record = json.loads(line)
        assert record["logger"] == "uvicorn.access" and record["path"] == "/webhooks/x\nforged line"
        assert record["status"] == 404
    else:
        assert 'path="/webhooks/x\\nforged line"' in line and "status=404" in line


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("demo", "demo"),
        ("a b", '"a b"'),
        ("x\r\ny", '"x\\r\\ny"'),
        ('q"uote\\', '"q\\"uote\\\\"'),
        ("\x1b[31mred", '"\\x1b[31mred"'),
        ("line\u2028sep", '"line\\u2028sep"'),
        (["demo:e1"], '"[\\"demo:e1\\"]"'),
        (3.5, "3.5"),
    ],
)
def test_text_values_are_escaped(value: object, shown: str) -> None:
    assert text_value(value) == shown


def test_json_format_turns_what_python_prints_on_stderr_into_json_records(
    tmp_path: Path,
) -> None:
    """An exception that ends a thread, one raised in `__del__`, and one that ends the
    program are records in the log's format, not raw traceback lines."""
    program = (
        "import threading\n"
        "from bridge.config import LogSettings\n"
        "from bridge.logs import configure\n"
        "configure(LogSettings(level='INFO', format='json'))\n"
        "t = threading.Thread(target=lambda: 1 / 0, name='pubsub'); t.start(); t.join()\n"
        "class Closing:\n"
        "    def __del__(self): raise TypeError('argument must be an int')\n"
        "Closing()\n"
        "raise RuntimeError('the end')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30
    )
    lines = [line for line in done.stderr.splitlines() if line]
    records = [json.loads(line) for line in lines]  # raises on a raw traceback line
    by_msg = {r["msg"]: r for r in records}
    assert by_msg["thread crashed"]["thread"] == "pubsub"
    assert by_msg["thread crashed"]["error"].startswith("ZeroDivisionError")
    assert by_msg["exception ignored"]["error"] == "TypeError: argument must be an int"
    assert by_msg["uncaught exception"]["error"] == "RuntimeError: the end"
    assert done.returncode == 1
