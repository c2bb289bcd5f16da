"""The Redis store: every key (keys.py), every transition as one Lua script (lua/*.lua,
loaded by scripts.py), the records that cross its boundary (records.py), and `Store`, the
async client the rest of the bridge uses (client.py)."""

from bridge.store.client import OFFLOAD_ENTRIES, Store, now_ms
from bridge.store.keys import PREFIX, conversation_key, ext_key, split_key
from bridge.store.records import (
    AcceptResult,
    DeadLetter,
    Outcome,
    OutcomeKind,
    Routed,
    Verdict,
    Work,
)

__all__ = [
    "OFFLOAD_ENTRIES",
    "PREFIX",
    "AcceptResult",
    "DeadLetter",
    "Outcome",
    "OutcomeKind",
    "Routed",
    "Store",
    "Verdict",
    "Work",
    "conversation_key",
    "ext_key",
    "now_ms",
    "split_key",
]
