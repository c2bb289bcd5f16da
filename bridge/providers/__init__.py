"""Sender kinds by name: each module verifies a raw request and normalizes its payload."""

from __future__ import annotations

import importlib
from types import ModuleType

from bridge.config import KINDS


def kind_module(kind: str) -> ModuleType:
    """The module implementing `kind` (see base.py for what it provides)."""
    if kind not in KINDS:
        raise KeyError(kind)
    return importlib.import_module(f"bridge.providers.{kind}")


__all__ = ["kind_module"]
