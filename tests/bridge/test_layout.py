"""The shape of the tree: the ingest package never reaches into the workers, and the local
tools stay off the production path."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from bridge import openapi

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


ROOT = BRIDGE.parent
# Team notes that are not in the repository: a reader here cannot follow them.
OUTSIDE = re.compile(
    r"\b(?:product|convocore|providers|style)\.md\b|delivery-notes|shared/docs|guarantees? \d",
    re.IGNORECASE,
)


def _repository_text_files() -> list[Path]:
    tops = [ROOT / n for n in ("README.md", "Dockerfile", "docker-compose.yml", "pyproject.toml")]
    trees = ("bridge", "workers", "tests", "benchmarks", "deploy")
    files = [p for t in trees for p in (ROOT / t).rglob("*") if p.is_file()]
    return [
        p
        for p in tops + files
        if p.exists()
        and "__pycache__" not in p.parts
        and p.suffix not in (".pyc", ".json")
        and p.resolve() != Path(__file__).resolve()
    ]


def test_no_file_sends_the_reader_to_notes_outside_the_repository() -> None:
    offenders = [
        f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
        for p in _repository_text_files()
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


def test_the_served_openapi_document_cites_nothing_outside_the_repository() -> None:
    text = json.dumps(openapi.document(["demo"]))
    assert OUTSIDE.findall(text) == []
