"""Built-in kinds that are the generic kind with shipped settings: data, not code.

Each `presets/<kind>.toml` holds generic options and a `[map]`; a source of that kind may
override any key (its `[map]` keys override the preset's one by one). Each file's comments
say how the sender signs and what its events become.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.errors import ConfigError
from bridge.providers import generic
from bridge.providers.base import Answer, SourceEvent, SourceSettings, WebhookRequest

HERE = Path(__file__).resolve().parent / "presets"


class Preset:
    """A sender kind made of the generic kind and a preset file."""

    Options = generic.Options

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.defaults: dict[str, Any] = tomllib.loads((HERE / f"{kind}.toml").read_text("utf-8"))

    def options(self, where: str, table: Mapping[str, Any]) -> Any:
        own_map = table.get("map", {})
        if not isinstance(own_map, dict):
            raise ConfigError(f"{where}.map", "expected a table of JMESPath expressions")
        merged = {**self.defaults, **table}
        merged["map"] = {**self.defaults.get("map", {}), **own_map}
        return generic.options(where, merged)

    def accepts(self, source: SourceSettings, headers: Mapping[str, str]) -> None:
        generic.accepts(source, headers)

    def parse(self, source: SourceSettings, request: WebhookRequest) -> Any:
        return generic.parse(source, request)

    def verify(self, source: SourceSettings, request: WebhookRequest, tolerance_s: int) -> None:
        generic.verify(source, request, tolerance_s)

    def normalize(
        self, source: SourceSettings, request: WebhookRequest, payload: Any
    ) -> list[SourceEvent]:
        return generic.normalize(source, request, payload)

    def challenge(self, source: SourceSettings, request: WebhookRequest) -> Answer | None:
        return generic.challenge(source, request)

    def acknowledge(self, source: SourceSettings, counts: Mapping[str, int]) -> Answer | None:
        return generic.acknowledge(source, counts)


def presets() -> dict[str, Preset]:
    return {p.stem: Preset(p.stem) for p in sorted(HERE.glob("*.toml"))}
