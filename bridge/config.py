"""TOML file + environment → one frozen `Settings`.

Secrets never live in the file: it names the environment variable holding each one. Any
unknown key, wrong type or missing variable raises ConfigError naming it, so a typo stops
start-up instead of silently meaning a default.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from bridge.errors import ConfigError
from bridge.providers import KINDS

DEFAULT_BASE_URL = "https://eu-cloudflare.vg-stuff.com"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

_NUM = (int, float)
# section -> key -> (accepted types, default, lower bound or None)
_SECTIONS: dict[str, dict[str, tuple[tuple[type, ...], Any, float | None]]] = {
    "convocore": {
        "base_url": ((str,), DEFAULT_BASE_URL, None),
        "token_env": ((str,), "CONVOCORE_API_TOKEN", None),
        "time_unit": ((str,), "s", None),
        "completed_state": ((str,), "ended_chat", None),
    },
    "delivery": {
        "max_attempts": ((int,), 10, 1),
        "backoff_initial_s": (_NUM, 1.0, 0),
        "backoff_max_s": (_NUM, 300.0, 0),
        "request_timeout_s": (_NUM, 10.0, 0.001),
        "rate_limit_per_s": (_NUM, 0, 0),
        # Beyond product.md: tuning a production user may need; documented in the README.
        "concurrency": ((int,), 8, 1),
        "lease_s": (_NUM, 30.0, 1),
        "coalesce_ms": ((int,), 500, 0),
        "circuit_window": ((int,), 20, 2),
        "circuit_failure_ratio": (_NUM, 0.8, 0.01),
        "circuit_cooldown_s": (_NUM, 30.0, 0.1),
        "array_cache_s": ((int,), 3600, 1),
    },
    "ingest": {
        "max_body_bytes": ((int,), 1_048_576, 1),
        "dedup_window_s": ((int,), 86_400, 1),
        "signature_tolerance_s": ((int,), 300, 1),
        "read_timeout_s": (_NUM, 10.0, 0.1),
    },
    "log": {
        "level": ((str,), "INFO", None),
        "format": ((str,), "json", None),
    },
}

_COMMON_SOURCE_KEYS = {"kind", "secret_env", "agent_id", "convo_id", "default_agent_id"}
# Keys only some kinds understand; anywhere else they are a mistake worth stopping for.
KIND_KEYS: dict[str, set[str]] = {
    "freshdesk": {"header"},
    "front": {"variant"},
    "hubspot": {"public_url", "trust_proxy"},
    "generic": {
        "signature_header",
        "signature_prefix",
        "signature_algorithm",
        "signature_encoding",
        "map",
    },
}
MAP_KEYS = (
    "event_id",
    "occurred_at",
    "external_id",
    "agent_id",
    "convo_id",
    "tags_add",
    "tags_remove",
    "handoff.event",
    "handoff.at",
    "handoff.by",
    "handoff.team_key",
    "handoff.team_ids",
    "handoff.team_keys",
    "handoff.organization_id",
)


@dataclass(frozen=True, slots=True)
class ConvocoreSettings:
    base_url: str
    token_env: str
    time_unit: str
    completed_state: str
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    max_attempts: int = 10
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    request_timeout_s: float = 10.0
    rate_limit_per_s: float = 0
    concurrency: int = 8
    lease_s: float = 30.0
    coalesce_ms: int = 500
    circuit_window: int = 20
    circuit_failure_ratio: float = 0.8
    circuit_cooldown_s: float = 30.0
    array_cache_s: int = 3600


@dataclass(frozen=True, slots=True)
class IngestSettings:
    max_body_bytes: int = 1_048_576
    dedup_window_s: int = 86_400
    signature_tolerance_s: int = 300
    read_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "INFO"
    format: str = "json"


@dataclass(frozen=True, slots=True)
class SourceSettings:
    name: str
    kind: str
    secret_env: str
    secret: str = field(repr=False)
    agent_id: Any = None  # compiled JMESPath, or None
    convo_id: Any = None
    default_agent_id: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # kind-specific keys
    mapping: Mapping[str, Any] = field(default_factory=dict)  # generic: name -> compiled


@dataclass(frozen=True, slots=True)
class Settings:
    convocore: ConvocoreSettings
    delivery: DeliverySettings
    ingest: IngestSettings
    log: LogSettings
    sources: Mapping[str, SourceSettings]
    redis_url: str = DEFAULT_REDIS_URL
    admin_token: str | None = field(default=None, repr=False)
    path: str | None = None


def _typed(section: str, key: str, value: Any) -> Any:
    types, _, low = _SECTIONS[section][key]
    number: Any = value
    if isinstance(value, bool) or not isinstance(value, types):
        names = " or ".join("number" if t in _NUM else t.__name__ for t in types)
        raise ConfigError(f"{section}.{key}", f"expected {names}, got {value!r}")
    if low is not None and number < low:
        raise ConfigError(f"{section}.{key}", f"must be at least {low}")
    return float(number) if float in types else value


def _section(raw: Mapping[str, Any], section: str) -> dict[str, Any]:
    table = raw.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(section, "expected a table")
    spec = _SECTIONS[section]
    for key in table:
        if key not in spec:
            raise ConfigError(f"{section}.{key}", f"unknown key; known: {', '.join(spec)}")
    return {k: _typed(section, k, table[k]) if k in table else d for k, (_, d, _) in spec.items()}


def _compile(expr: Any, key: str) -> Any:
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError(key, "expected a JMESPath expression string")
    try:
        return jmespath.compile(expr)
    except JMESPathError as exc:
        raise ConfigError(key, f"JMESPath does not compile: {str(exc).splitlines()[0]}") from None


def _secret(env: Mapping[str, str], var: Any, key: str) -> str:
    if not isinstance(var, str) or not var:
        raise ConfigError(key, "expected the name of an environment variable")
    value = env.get(var)
    if not value:
        raise ConfigError(key, f"environment variable {var} is not set")
    return value


def _source(name: str, table: Any, env: Mapping[str, str]) -> SourceSettings:
    where = f"sources.{name}"
    if not isinstance(table, dict):
        raise ConfigError(where, "expected a table")
    kind = table.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    allowed = _COMMON_SOURCE_KEYS | KIND_KEYS.get(kind, set())
    for key in table:
        if key not in allowed:
            owners = [k for k, keys in KIND_KEYS.items() if key in keys]
            hint = f"only for kind {' or '.join(owners)}" if owners else "unknown key"
            raise ConfigError(f"{where}.{key}", hint)
    secret = _secret(env, table.get("secret_env"), f"{where}.secret_env")
    options = {k: table[k] for k in KIND_KEYS.get(kind, set()) if k in table and k != "map"}
    for key, value in options.items():
        expect_bool = key == "trust_proxy"
        if expect_bool != isinstance(value, bool) or (
            not expect_bool and not isinstance(value, str)
        ):
            raise ConfigError(
                f"{where}.{key}", "expected " + ("true or false" if expect_bool else "a string")
            )
    _check_kind_options(where, kind, options)
    mapping: dict[str, Any] = {}
    if kind == "generic":
        raw_map = table.get("map")
        if not isinstance(raw_map, dict) or not raw_map:
            raise ConfigError(f"{where}.map", "a generic source needs a [map] table")
        for key, expr in raw_map.items():
            if key not in MAP_KEYS and not key.startswith("set."):
                raise ConfigError(
                    f"{where}.map.{key}",
                    f"unknown; expected set.FIELD or one of {', '.join(MAP_KEYS)}",
                )
            mapping[key] = _compile(expr, f"{where}.map.{key}")
    default_agent = table.get("default_agent_id")
    if default_agent is not None and not isinstance(default_agent, str):
        raise ConfigError(f"{where}.default_agent_id", "expected a string")
    has_agent, has_convo = "agent_id" in table, "convo_id" in table
    if has_agent != has_convo:
        raise ConfigError(
            f"{where}.{'convo_id' if has_agent else 'agent_id'}",
            "agent_id and convo_id go together",
        )
    return SourceSettings(
        name=name,
        kind=kind,
        secret_env=table["secret_env"],
        secret=secret,
        agent_id=_compile(table["agent_id"], f"{where}.agent_id") if has_agent else None,
        convo_id=_compile(table["convo_id"], f"{where}.convo_id") if has_convo else None,
        default_agent_id=default_agent,
        options=options,
        mapping=mapping,
    )


def _check_kind_options(where: str, kind: str, options: Mapping[str, Any]) -> None:
    choices = {
        "signature_algorithm": ("sha256", "sha1"),
        "signature_encoding": ("hex", "base64"),
        "variant": ("app", "rule"),
    }
    for key, allowed in choices.items():
        if key in options and options[key] not in allowed:
            raise ConfigError(f"{where}.{key}", f"expected one of {', '.join(allowed)}")
    url = options.get("public_url")
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"{where}.public_url",
            "expected a full URL, e.g. https://bridge.example.com/webhooks/hubspot",
        )


def load_settings(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    require_token: bool = False,
) -> Settings:
    """Read the file at `path` (or $BRIDGE_CONFIG; none means all defaults) and the environment."""
    env = os.environ if env is None else env
    path = path or env.get("BRIDGE_CONFIG") or None
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                str(path), "file not found (from --config or BRIDGE_CONFIG)"
            ) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    for key in raw:
        if key not in (*_SECTIONS, "sources"):
            raise ConfigError(key, f"unknown section; known: {', '.join((*_SECTIONS, 'sources'))}")

    cc = _section(raw, "convocore")
    if cc["time_unit"] not in ("s", "ms"):
        raise ConfigError("convocore.time_unit", "expected 's' or 'ms'")
    if cc["completed_state"] not in ("ended_chat", "ai-chatting"):
        raise ConfigError("convocore.completed_state", "expected 'ended_chat' or 'ai-chatting'")
    base_url = (env.get("CONVOCORE_BASE_URL") or cc["base_url"]).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError("convocore.base_url", f"expected an http(s) URL, got {base_url!r}")
    token = env.get(cc["token_env"]) or None
    if require_token and token is None:
        raise ConfigError(
            "convocore.token_env", f"environment variable {cc['token_env']} is not set"
        )
    convocore = ConvocoreSettings(
        base_url=base_url,
        token_env=cc["token_env"],
        time_unit=cc["time_unit"],
        completed_state=cc["completed_state"],
        token=token,
    )
    delivery = DeliverySettings(**_section(raw, "delivery"))
    if delivery.backoff_max_s < delivery.backoff_initial_s:
        raise ConfigError("delivery.backoff_max_s", "must be at least backoff_initial_s")
    if delivery.circuit_failure_ratio > 1:
        raise ConfigError("delivery.circuit_failure_ratio", "must be at most 1")
    log = LogSettings(**_section(raw, "log"))
    log = LogSettings(
        level=env.get("BRIDGE_LOG_LEVEL", log.level).upper(),
        format=env.get("BRIDGE_LOG_FORMAT", log.format),
    )
    if log.level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("log.level", "expected DEBUG, INFO, WARNING or ERROR")
    if log.format not in ("json", "text"):
        raise ConfigError("log.format", "expected 'json' or 'text'")

    sources_raw = raw.get("sources", {})
    if not isinstance(sources_raw, dict):
        raise ConfigError("sources", "expected tables [sources.NAME]")
    sources = {name: _source(name, table, env) for name, table in sources_raw.items()}
    for name in sources:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(
                f"sources.{name}", "a source name is a URL segment: letters, digits, - and _"
            )
    return Settings(
        convocore=convocore,
        delivery=delivery,
        ingest=IngestSettings(**_section(raw, "ingest")),
        log=log,
        sources=sources,
        redis_url=env.get("REDIS_URL") or DEFAULT_REDIS_URL,
        admin_token=env.get("BRIDGE_ADMIN_TOKEN") or None,
        path=str(path) if path else None,
    )
