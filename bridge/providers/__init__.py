"""Sender kinds by name: the registry every part of the bridge looks kinds up in.

Each kind is a module implementing `base.Provider` (verify the raw request, normalize its
payload, answer a set-up handshake); mypy checks every entry against the protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    }
)
KINDS: tuple[str, ...] = tuple(PROVIDERS)


def provider(kind: str) -> Provider:
    """The provider of `kind`; KeyError for a kind that does not exist."""
    return PROVIDERS[kind]


__all__ = ["KINDS", "PROVIDERS", "Provider", "provider"]
