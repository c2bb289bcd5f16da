"""One spec per setting: a dataclass field made with `setting()`, validated from its type hint.

The config file's sections (bridge/config.py) and every sender kind's own options
(bridge/providers/<kind>.py, `Options`) are such dataclasses; `read_table` turns a TOML table
into one, naming the key of any unknown key, wrong type or out-of-bounds value. Kept apart
from config.py so a kind can define its options without importing the config loader.

Type hints understood: `int`, `float` (an int is accepted), `str`, `bool`, a `Literal` of
choices (case-blind), `str | None` (optional), `tuple[str, ...]` (an array of strings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import Field, field, fields
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from bridge.errors import ConfigError

T = TypeVar("T")


def setting(
    default: Any,
    *,
    help: str,
    low: float | None = None,
    high: float | None = None,
    env: str | None = None,
) -> Any:
    """A file key: its default, what it means, its bounds and the variable overriding it."""
    return field(default=default, metadata={"help": help, "low": low, "high": high, "env": env})


def file_keys(cls: type[Any]) -> dict[str, Field[Any]]:
    """The keys of a table: the fields made with `setting()` (not derived ones like token)."""
    return {f.name: f for f in fields(cls) if "help" in f.metadata}


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def from_env(where: str, hint: Any, text: str) -> Any:
    """An environment variable's text as the value a file would hold for the same key."""
    if hint is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ConfigError(where, f"expected 1/true or 0/false, got {text!r}")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise ConfigError(where, f"expected a number, got {text!r}") from None
    return text


def checked(where: str, hint: Any, meta: Mapping[str, Any], value: Any) -> Any:
    """`value` for the key at `where`, checked against its type hint and bounds."""
    args = get_args(hint)
    if get_origin(hint) is Literal:
        for choice in args:  # case does not matter: "info" is INFO
            if isinstance(value, str) and value.lower() == str(choice).lower():
                return choice
        raise ConfigError(where, f"expected one of {', '.join(map(repr, args))}, got {value!r}")
    if type(None) in args:  # optional: the same checks as the type it wraps
        (inner,) = (a for a in args if a is not type(None))
        return checked(where, inner, meta, value)
    if get_origin(hint) is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(where, f"expected an array of non-empty strings, got {value!r}")
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(where, f"expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(where, f"expected a non-empty string, got {value!r}")
        return value
    number_types = (int, float) if hint is float else (int,)
    if isinstance(value, bool) or not isinstance(value, number_types):
        names = "number" if hint is float else "integer"
        raise ConfigError(where, f"expected {names}, got {value!r}")
    if meta["low"] is not None and value < meta["low"]:
        raise ConfigError(where, f"must be at least {meta['low']}")
    if meta["high"] is not None and value > meta["high"]:
        raise ConfigError(where, f"must be at most {meta['high']}")
    return float(value) if hint is float else value


def read_table(
    cls: type[T], where: str, table: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> T:
    """The TOML `table` at `where` (then any variable a key names, from `env`) as `cls`."""
    keys = file_keys(cls)
    for key in table:
        if key not in keys:
            known = ", ".join(keys) or "none"
            raise ConfigError(f"{where}.{key}", f"unknown key; known: {known}")
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, f in keys.items():
        at, var = f"{where}.{name}", f.metadata["env"]
        if var and env is not None and env.get(var):
            try:
                values[name] = checked(
                    at, hints[name], f.metadata, from_env(at, hints[name], env[var])
                )
            except ConfigError as exc:
                raise ConfigError(exc.key, f"{exc.problem} (from {var})") from None
        elif name in table:
            values[name] = checked(at, hints[name], f.metadata, table[name])
    return cls(**values)
