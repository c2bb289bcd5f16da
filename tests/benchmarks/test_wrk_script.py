"""The bench's wrk script sends what it says: distinct, signed webhooks that serve accepts.
Written as one Lua statement per request, a script of more than ~21,000 requests passed
LuaJIT's 65,536 constants per chunk: wrk then sent its default GET and every answer was a
405, while bench printed the rate of those answers as ingest's."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from benchmarks.bench import Rig, wrk_counts, wrk_lua

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)


def test_a_wrk_script_of_many_requests_sends_them_all_signed_and_distinct(tmp_path: Path) -> None:
    rig = Rig(tmp_path, "WARNING")
    rig.start()
    try:
        script = tmp_path / "signed.lua"
        wrk_lua(script, 70_000)
        out = subprocess.run(
            ["wrk", "-t1", "-c8", "-d2s", "-s", str(script), rig.serve_url],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert "constants" not in out.stderr, out.stderr
        sent, refused = wrk_counts(out.stdout)
        assert sent > 0
        assert refused == 0, out.stdout
        # each was accepted as new, not answered "duplicate": the status counts say so
        status = httpx.get(f"{rig.serve_url}/metrics").text
        accepted = sum(
            float(m.group(1))
            for m in re.finditer(
                r'convo_bridge_intents_total\{[^}]*outcome="accepted"[^}]*\} (\S+)', status
            )
        )
        assert accepted >= min(sent, 70_000) - 8  # requests in flight at the end may be uncounted
    finally:
        rig.stop()
