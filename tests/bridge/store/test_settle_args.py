"""settle.lua's arguments are named fields, written from one definition on each side."""

from __future__ import annotations

import re
from dataclasses import fields
from importlib.resources import files

from bridge.store.records import SettleOptions, SettleRow


def _settle_lua() -> str:
    return files("bridge.store").joinpath("lua", "settle.lua").read_text(encoding="utf-8")


def test_settle_reads_every_field_python_sends_by_name_and_no_other() -> None:
    lua = _settle_lua()
    assert {f.name for f in fields(SettleOptions)} == set(re.findall(r"\bopt\.(\w+)", lua))
    assert {f.name for f in fields(SettleRow)} == set(re.findall(r"\bs\.(\w+)", lua))


def test_settle_takes_the_prefix_its_options_and_its_rows_and_nothing_else() -> None:
    code = "\n".join(line.split("--", 1)[0] for line in _settle_lua().splitlines())
    assert set(re.findall(r"ARGV\[(\d+)\]", code)) == {"2", "3"}
