"""TOML file + environment → one frozen `Settings`.

The settings dataclasses below are the one source of truth: each file key is a field made
with `setting(default, help=…, low=…, high=…, env=…)`; its type hint says what the file may
hold (`int`, `float` (an int is accepted), `str`, `bool`, or a `Literal` of choices), and
`load_settings` validates every section from `dataclasses.fields` alone. Secrets never live
in the file: it names the environment variable holding each one. Any unknown key, wrong type
or missing variable raises ConfigError naming it, so a typo stops start-up instead of
silently meaning a default.

The worker's token rule (`require_worker_token`): a worker needs the Convocore token unless
`[convocore] sandbox = true` (or `CONVOCORE_SANDBOX=1`) says base_url is a `convo-bridge
sandbox`; the public API can never be a sandbox. `config check` applies the same rule.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from jmespath.exceptions import JMESPathError

from bridge.errors import ConfigError
from bridge.expressions import Expression
from bridge.providers import KINDS

DEFAULT_BASE_URL = "https://eu-cloudflare.vg-stuff.com"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
LEASE_MARGIN_S = 1.0  # a lease must outlast a request by this (renewal round trip, slack)


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


@dataclass(frozen=True, slots=True)
class ConvocoreSettings:
    base_url: str = setting(DEFAULT_BASE_URL, help="the Convocore API", env="CONVOCORE_BASE_URL")
    token_env: str = setting(
        "CONVOCORE_API_TOKEN", help="the environment variable holding the API token"
    )
    time_unit: Literal["s", "ms"] = setting("s", help="unit of the handoffHistory times")
    completed_state: Literal["ended_chat", "ai-chatting"] = setting(
        "ended_chat", help="the conversation state after a completed handoff"
    )
    sandbox: bool = setting(
        False,
        help="base_url is a `convo-bridge sandbox`: a worker runs without a token",
        env="CONVOCORE_SANDBOX",
    )
    token: str | None = field(default=None, repr=False)  # from the token_env variable


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    max_attempts: int = setting(10, low=1, help="then the work is dead-lettered")
    backoff_initial_s: float = setting(1.0, low=0, help="first retry delay (full jitter)")
    backoff_max_s: float = setting(300.0, low=0, help="longest retry delay")
    request_timeout_s: float = setting(10.0, low=0.001, help="one PATCH")
    rate_limit_per_s: float = setting(
        0.0, low=0, help="PATCHes per second across all workers; 0 = unlimited"
    )
    # Tuning a production user may need; documented in the README.
    concurrency: int = setting(8, low=1, help="PATCHes in flight per worker process")
    lease_s: float = setting(
        30.0, low=1, help="a dead worker's conversations return after this (+ <= 3 s sweep)"
    )
    coalesce_ms: int = setting(
        500, low=0, help="at most one PATCH per conversation per this window"
    )
    circuit_window: int = setting(20, low=2, help="circuit breaker: of the last N PATCHes...")
    circuit_failure_ratio: float = setting(
        0.8, low=0.01, high=1, help="...this share failing retryably opens it..."
    )
    circuit_cooldown_s: float = setting(30.0, low=0.1, help="...for this long, then one probe")
    array_cache_s: int = setting(
        3600, low=1, help="how long tags/handoffHistory from an answer are trusted"
    )
    in_doubt_quiet_s: float = setting(
        10.0,
        low=0,
        help="after a PATCH whose fate is unknown, the conversation's next PATCH waits this long",
    )


@dataclass(frozen=True, slots=True)
class IngestSettings:
    max_body_bytes: int = setting(1_048_576, low=1, help="a larger body is 413")
    dedup_window_s: int = setting(86_400, low=1, help="a redelivered event id is a duplicate")
    signature_tolerance_s: int = setting(300, low=1, help="signed timestamps this old or new")
    read_timeout_s: float = setting(10.0, low=0.1, help="a body slower than this is 408")
    max_header_bytes: int = setting(
        65_536, low=1024, help="a larger request head (request line and headers) is 431"
    )
    head_timeout_s: float = setting(
        10.0, low=0.1, help="a request head (new or kept-alive connection) slower than this: closed"
    )
    max_connections: int = setting(
        1000, low=1, help="open connections per serve process (below its open-file limit)"
    )
    max_clock_skew_s: int = setting(
        300, low=0, help="an occurred_at later than receipt + this counts as the receipt time"
    )


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting(
        "INFO", help="log level", env="BRIDGE_LOG_LEVEL"
    )
    format: Literal["json", "text"] = setting(
        "json", help="one JSON line per event, or text", env="BRIDGE_LOG_FORMAT"
    )


@dataclass(frozen=True, slots=True)
class RedisSettings:
    durability: Literal["local", "replica"] = setting(
        "local",
        help='"replica": a write is acknowledged (202) only once `replicas` replicas hold it',
    )
    replicas: int = setting(1, low=1, high=16, help="replicas that must hold a write")
    # tuning a production user may need; documented in the README
    replica_timeout_ms: int = setting(
        500, low=1, high=60_000, help="wait this long for the replicas, else answer 503"
    )


# The file's [section] tables, each read into its dataclass.
SECTIONS: dict[str, type[Any]] = {
    "convocore": ConvocoreSettings,
    "delivery": DeliverySettings,
    "ingest": IngestSettings,
    "log": LogSettings,
    "redis": RedisSettings,
}


def file_keys(cls: type[Any]) -> dict[str, Field[Any]]:
    """The keys of a section: the fields made with `setting()` (not derived ones like token)."""
    return {f.name: f for f in fields(cls) if "help" in f.metadata}


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
    # RQ's Redis (worker registry, failed jobs, replay jobs, `rq suspend`): RQ_REDIS_URL, the
    # variable RQ's own command line reads too; "" means the same Redis as redis_url
    rq_redis_url: str = ""
    redis: RedisSettings = RedisSettings()
    admin_token: str | None = field(default=None, repr=False)
    path: str | None = None

    @property
    def rq_url(self) -> str:
        """RQ's Redis: RQ_REDIS_URL's, else REDIS_URL's."""
        return self.rq_redis_url or self.redis_url


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _from_env(where: str, hint: Any, text: str) -> Any:
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


def _checked(where: str, hint: Any, meta: Mapping[str, Any], value: Any) -> Any:
    """`value` for the key at `where`, checked against its type hint and bounds."""
    if get_origin(hint) is Literal:
        choices = get_args(hint)
        for choice in choices:  # case does not matter: "info" is INFO
            if isinstance(value, str) and value.lower() == str(choice).lower():
                return choice
        raise ConfigError(where, f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
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


def _section(raw: Mapping[str, Any], section: str, env: Mapping[str, str]) -> Any:
    """The [section] table (then the environment over it) as its settings dataclass."""
    cls = SECTIONS[section]
    table = raw.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(section, "expected a table")
    keys = file_keys(cls)
    for key in table:
        if key not in keys:
            hint = _SECRET_IN_FILE.get(key, f"unknown key; known: {', '.join(keys)}")
            raise ConfigError(f"{section}.{key}", hint)
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, f in keys.items():
        where, var = f"{section}.{name}", f.metadata["env"]
        if var and env.get(var):
            try:
                values[name] = _checked(
                    where, hints[name], f.metadata, _from_env(where, hints[name], env[var])
                )
            except ConfigError as exc:
                raise ConfigError(exc.key, f"{exc.problem} (from {var})") from None
        elif name in table:
            values[name] = _checked(where, hints[name], f.metadata, table[name])
    return cls(**values)


def require_worker_token(settings: Settings) -> None:
    """A worker needs the Convocore token, unless base_url is declared a sandbox."""
    cc = settings.convocore
    if cc.token is None and not cc.sandbox:
        raise ConfigError(
            "convocore.token_env",
            f"environment variable {cc.token_env} is not set; a worker needs it "
            "(against a `convo-bridge sandbox`, set [convocore] sandbox = true or "
            "CONVOCORE_SANDBOX=1 instead)",
        )


def _compile(expr: Any, key: str) -> Expression:
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError(key, "expected a JMESPath expression string")
    try:
        return Expression.compile(key, expr)
    except JMESPathError as exc:
        raise ConfigError(key, f"JMESPath does not compile: {str(exc).splitlines()[0]}") from None


def _secret(env: Mapping[str, str], var: Any, key: str, required: bool = True) -> str:
    if not isinstance(var, str) or not var:
        raise ConfigError(key, "expected the name of an environment variable")
    value = env.get(var)
    if not value and required:
        raise ConfigError(key, f"environment variable {var} is not set")
    return value or ""


# A secret or token written into the file itself: say where it goes instead.
_SECRET_IN_FILE = {
    "secret": "secrets never go in the file: put it in an environment variable and name "
    'that variable with secret_env = "..."',
    "token": "tokens never go in the file: put it in an environment variable and name "
    'that variable with token_env = "..."',
}


def _source(name: str, table: Any, env: Mapping[str, str], secrets: bool = True) -> SourceSettings:
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
            hint = _SECRET_IN_FILE.get(key, hint)
            raise ConfigError(f"{where}.{key}", hint)
    secret = _secret(env, table.get("secret_env"), f"{where}.secret_env", required=secrets)
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
    if default_agent is not None:
        from bridge.errors import PayloadError
        from bridge.intents import check_segment_id

        try:
            check_segment_id(default_agent, "default_agent_id")
        except PayloadError as exc:
            raise ConfigError(f"{where}.default_agent_id", exc.detail) from None
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
    path: str | Path | None = None, env: Mapping[str, str] | None = None, *, secrets: bool = True
) -> Settings:
    """Read the file at `path` (or $BRIDGE_CONFIG; none means all defaults) and the environment.
    `secrets=False`: for commands that only read Redis (status, dlq, links, trace), a source's
    unset secret variable is not an error (its secret is then empty and never used)."""
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
    known = (*SECTIONS, "sources")
    for key in raw:
        if key not in known:
            raise ConfigError(key, f"unknown section; known: {', '.join(known)}")

    convocore: ConvocoreSettings = _section(raw, "convocore", env)
    base_url = convocore.base_url.rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError("convocore.base_url", f"expected an http(s) URL, got {base_url!r}")
    if convocore.sandbox and base_url == DEFAULT_BASE_URL:
        raise ConfigError(
            "convocore.sandbox",
            "base_url is the public Convocore API, not a sandbox; set CONVOCORE_BASE_URL "
            "to the sandbox's address",
        )
    convocore = replace(convocore, base_url=base_url, token=env.get(convocore.token_env) or None)
    delivery: DeliverySettings = _section(raw, "delivery", env)
    if delivery.backoff_max_s < delivery.backoff_initial_s:
        raise ConfigError("delivery.backoff_max_s", "must be at least backoff_initial_s")
    if delivery.lease_s < delivery.request_timeout_s + LEASE_MARGIN_S:
        raise ConfigError(
            "delivery.lease_s",
            f"must be at least request_timeout_s + {LEASE_MARGIN_S:g} s "
            f"({delivery.request_timeout_s + LEASE_MARGIN_S:g}): a worker sends only while its "
            "lease outlasts the whole request",
        )

    sources_raw = raw.get("sources", {})
    if not isinstance(sources_raw, dict):
        raise ConfigError("sources", "expected tables [sources.NAME]")
    sources = {name: _source(name, table, env, secrets) for name, table in sources_raw.items()}
    for name in sources:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(
                f"sources.{name}", "a source name is a URL segment: letters, digits, - and _"
            )
    from bridge.store.connect import parse_redis_url  # bridge.store imports this module

    redis_url = env.get("REDIS_URL") or DEFAULT_REDIS_URL
    parse_redis_url(redis_url)
    rq_redis_url = env.get("RQ_REDIS_URL") or ""
    if rq_redis_url:
        parse_redis_url(rq_redis_url, "RQ_REDIS_URL")
    return Settings(
        convocore=convocore,
        delivery=delivery,
        ingest=_section(raw, "ingest", env),
        log=_section(raw, "log", env),
        sources=sources,
        redis_url=redis_url,
        rq_redis_url=rq_redis_url,
        redis=_section(raw, "redis", env),
        admin_token=env.get("BRIDGE_ADMIN_TOKEN") or None,
        path=str(path) if path else None,
    )
