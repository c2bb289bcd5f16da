"""The shape of the tree: the ingest package never reaches into the workers, and the local
tools stay off the production path."""

from __future__ import annotations

import ast
from pathlib import Path

BRIDGE = Path(__file__).resolve().parents[2] / "bridge"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_bridge_never_imports_workers_except_the_cli_entry_point() -> None:
    offenders = [
        str(p.relative_to(BRIDGE))
        for p in BRIDGE.rglob("*.py")
        if p.name != "cli.py" and any(m.split(".")[0] == "workers" for m in _imports(p))
    ]
    assert offenders == []


def test_production_modules_do_not_import_the_local_tools() -> None:
    offenders = [
        str(p.relative_to(BRIDGE))
        for p in BRIDGE.rglob("*.py")
        if "local" not in p.parts
        and p.name != "cli.py"
        and any(m.startswith("bridge.local") for m in _imports(p))
    ]
    assert offenders == []
