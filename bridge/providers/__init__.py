"""Sender kinds by name: the registry every part of the bridge looks kinds up in.

Each kind is a module implementing `base.Provider` (its typed options and their checks, the
body it takes, verify the raw request, normalize its payload, its answers); mypy checks every
entry against the protocol. Config and the app only loop over this registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from types import MappingProxyType

from bridge.providers import (
    freshdesk,
    front,
    generic,
    helpscout,
    hubspot,
    intercom,
    standard,
    zendesk,
)
from bridge.providers.base import Provider
from bridge.providers.presets import presets

PROVIDERS: Mapping[str, Provider] = MappingProxyType(
    {
        "standard": standard,
        "zendesk": zendesk,
        "intercom": intercom,
        "hubspot": hubspot,
        "front": front,
        "freshdesk": freshdesk,
        "helpscout": helpscout,
        "generic": generic,
        **presets(),  # kinds that are the generic kind with shipped settings
    }
)
KINDS: tuple[str, ...] = tuple(PROVIDERS)


def provider(kind: str) -> Provider:
    """The provider of `kind`; KeyError for a kind that does not exist."""
    return PROVIDERS[kind]


def option_keys(kind: str) -> tuple[str, ...]:
    """The keys a [sources.NAME] table of `kind` may hold beyond the common ones."""
    return tuple(f.name for f in fields(PROVIDERS[kind].Options))


__all__ = ["KINDS", "PROVIDERS", "Provider", "option_keys", "provider"]
