"""The Lua scripts, one file per transition in `lua/`, with the shared parts they include.

Each script file opens with its ARGV contract. The shared parts are plain Lua files too
(`prelude.lua` for every script; `dead.lua`, `circuit.lua` and `eventlog.lua` where listed
below), put in front of the script once, when this module first loads them. Constants both
sides need are written into the header here from their Python definition, never retyped in
Lua.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Literal

from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.results import Result

from bridge.changes import TIME_DIGITS, VERSION_LEN
from bridge.store.keys import CHART_TTL_S, HIGH_WATER_TTL_MS, RQ_QUEUE
from bridge.store.shards import WAKE_CHANNEL

# RQ's failed-job registry of our queue: a script's KEYS[2] when RQ shares the store's Redis
RQ_FAILED_KEY = FailedJobRegistry.key_template.format(RQ_QUEUE)


def script_keys(prefix: str, cluster: bool) -> list[str]:
    """A script call's KEYS: a key of the prefix (its slot, on Redis Cluster), then RQ's
    failed-job registry unless on Cluster (RQ is never there; dead.lua touches RQ's keys only
    when declared)."""
    anchor = prefix + "due"
    return [anchor] if cluster else [anchor, RQ_FAILED_KEY]


ScriptName = Literal[
    "accept",
    "take",
    "settle",
    "renew",
    "sweep",
    "replay",
    "purge",
    "link",
    "clear",
    "log",
    "events",
    "gate",
    "merge",
]

INCLUDES: dict[ScriptName, tuple[str, ...]] = {
    "accept": ("dead", "eventlog"),
    "take": ("circuit",),
    "settle": ("dead", "circuit", "eventlog"),
    "renew": (),
    "sweep": (),
    "replay": ("dead",),
    "purge": ("dead",),
    "link": ("dead",),
    "clear": (),
    "log": ("eventlog",),
    "events": (),
    "gate": ("circuit",),
    "merge": (),
}


def _read(name: str) -> str:
    return files("bridge.store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


@cache
def source(name: ScriptName) -> str:
    """The whole text sent to Redis for script `name`."""
    header = (
        # a shebang: on Redis Cluster the server then refuses a key outside the slot of the
        # declared KEYS (no allow-cross-slot-keys), so a slip fails in the cluster tests
        "#!lua\n"
        f"local VERSION_LEN = {VERSION_LEN}\n"
        f"local TIME_DIGITS = {TIME_DIGITS}\n"
        f"local HIGH_WATER_TTL_MS = {HIGH_WATER_TTL_MS}\n"
        f"local CHART_TTL_S = {CHART_TTL_S}\n"
        f"local WAKE_CHANNEL = '{WAKE_CHANNEL}'\n"
        # RQ's keys for a dead letter's failed job (bridge/store/rq_mirror.py), from RQ itself
        f"local RQ_JOB = '{Job.key_for('')}'\n"
        f"local RQ_RESULTS = '{Result.get_key('')}'\n"  # type: ignore[no-untyped-call]
        f"local RQ_FAILED = '{RQ_FAILED_KEY}'\n"
    )
    parts = [header, _read("prelude"), *(_read(inc) for inc in INCLUDES[name]), _read(name)]
    return "\n".join(parts)
