"""The Lua scripts, one file per transition in `lua/`, with the shared parts they include.

Each script file opens with its ARGV contract. The shared parts are plain Lua files too
(`prelude.lua` for every script; `dead.lua` and `circuit.lua` where listed below), put in
front of the script once, when this module first loads them. Constants both sides need
are written into the header here from their Python definition, never retyped in Lua.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Literal

from bridge.changes import VERSION_LEN
from bridge.store.keys import HIGH_WATER_TTL_MS

ScriptName = Literal["accept", "take", "settle", "renew", "sweep", "replay", "purge", "link"]

INCLUDES: dict[ScriptName, tuple[str, ...]] = {
    "accept": ("dead",),
    "take": ("circuit",),
    "settle": ("dead", "circuit"),
    "renew": (),
    "sweep": (),
    "replay": ("dead",),
    "purge": ("dead",),
    "link": ("dead",),
}


def _read(name: str) -> str:
    return files("bridge.store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


@cache
def source(name: ScriptName) -> str:
    """The whole text sent to Redis for script `name`."""
    header = f"local VERSION_LEN = {VERSION_LEN}\nlocal HIGH_WATER_TTL_MS = {HIGH_WATER_TTL_MS}\n"
    parts = [header, _read("prelude"), *(_read(inc) for inc in INCLUDES[name]), _read(name)]
    return "\n".join(parts)
