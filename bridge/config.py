"""TOML file + environment → one frozen `Settings`.

The settings dataclasses below are the one source of truth: each file key is a field made
with `setting(default, help=…, low=…, high=…, env=…)` (bridge/spec.py); its type hint says
what the file may hold, and `load_settings` validates every section from `dataclasses.fields`
alone. A [sources.NAME] table's own keys belong to its kind: config loops over the kinds'
registry and each kind reads and checks its `Options` (bridge/providers/). Secrets never live
in the file: it names the environment variable holding each one. Any unknown key, wrong type
or missing variable raises ConfigError naming it, so a typo stops start-up instead of
silently meaning a default.

The worker's token rule (`require_worker_token`): a worker needs the Convocore token unless
`[convocore] sandbox = true` (or `CONVOCORE_SANDBOX=1`) says base_url is a `convo-bridge
sandbox`; the public API can never be a sandbox; the same for each
`[convocore.accounts.NAME]`. `config check` applies the same rule.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from bridge.errors import ConfigError
from bridge.expressions import compile_expression
from bridge.providers import KINDS, option_keys, provider
from bridge.providers.base import SourceSettings
from bridge.spec import file_keys, read_table, setting

__all__ = ["SECTIONS", "Settings", "SourceSettings", "file_keys", "load_settings", "setting"]

DEFAULT_BASE_URL = "https://eu-cloudflare.vg-stuff.com"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
LEASE_MARGIN_S = 1.0  # a lease must outlast a request by this (renewal round trip, slack)


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
    # [convocore.accounts.NAME]: other accounts or regions; this table is the default one
    accounts: Mapping[str, AccountSettings] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """[convocore.accounts.NAME]: a Convocore account (or region) beside the default one,
    chosen per source (`account = "NAME"`) or per agent id (`agents`); its own rate limit
    and circuit breaker."""

    base_url: str | None = setting(None, help="this account's Convocore API (required)")
    token_env: str | None = setting(
        None, help="the environment variable holding this account's token (required)"
    )
    agents: tuple[str, ...] = setting((), help="agent ids whose conversations are here")
    rate_limit_per_s: float = setting(
        0.0, low=0, help="PATCHes per second to this account, all workers; 0 = unlimited"
    )
    sandbox: bool = setting(False, help="base_url is a `convo-bridge sandbox`")
    name: str = field(default="")
    token: str | None = field(default=None, repr=False)


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
    keep_alive_s: float = setting(
        5.0,
        low=0.1,
        help="a kept-alive connection idle this long is closed (behind a load balancer: above "
        "its idle timeout for upstream connections)",
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
    # Tuning a production user may need; documented in the README.
    replica_timeout_ms: int = setting(
        500, low=1, high=60_000, help="wait this long for the replicas, else answer 503"
    )
    shards: int = setting(
        0,
        low=0,
        high=4096,
        help="conversations are spread over this many hash-tagged shards (0: 1 on one server, "
        "120 on Redis Cluster); a Redis keeps the count it started with",
    )


@dataclass(frozen=True, slots=True)
class EventLogSettings:
    enabled: bool = setting(True, help="keep the event log (every webhook request and PATCH)")
    bodies: bool = setting(
        True, help="keep request and PATCH bodies (personal data); false keeps metadata only"
    )
    max_events: int = setting(20_000, low=100, help="entries kept at most (about, oldest go)")
    retention_s: int = setting(86_400, low=60, help="entries older than this go")
    max_body_bytes: int = setting(2048, low=0, high=65_536, help="bodies are cut to this")


# The file's [section] tables, each read into its dataclass.
SECTIONS: dict[str, type[Any]] = {
    "convocore": ConvocoreSettings,
    "delivery": DeliverySettings,
    "ingest": IngestSettings,
    "log": LogSettings,
    "redis": RedisSettings,
    "eventlog": EventLogSettings,
}


# Keys every source takes; everything else in a [sources.NAME] table is its kind's `Options`.
_COMMON_SOURCE_KEYS = ("kind", "secret_env", "agent_id", "convo_id", "default_agent_id", "account")


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
    eventlog: EventLogSettings = field(default_factory=EventLogSettings)

    @property
    def rq_url(self) -> str:
        """RQ's Redis: RQ_REDIS_URL's, else REDIS_URL's."""
        return self.rq_redis_url or self.redis_url


def _section(raw: Mapping[str, Any], section: str, env: Mapping[str, str]) -> Any:
    """The [section] table (then the environment over it) as its settings dataclass."""
    table = raw.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(section, "expected a table")
    _secret_in_file(SECTIONS[section], section, table)
    return read_table(SECTIONS[section], section, table, env)


def _secret_in_file(cls: type[Any], where: str, table: Mapping[str, Any]) -> None:
    """A secret or token written into the file itself: say where it goes instead."""
    for key in table:
        if key in _SECRET_IN_FILE and key not in file_keys(cls):
            raise ConfigError(f"{where}.{key}", _SECRET_IN_FILE[key])


def require_worker_token(settings: Settings) -> None:
    """A worker needs each account's Convocore token, unless its base_url is declared a
    sandbox."""
    cc = settings.convocore
    if cc.token is None and not cc.sandbox:
        raise ConfigError(
            "convocore.token_env",
            f"environment variable {cc.token_env} is not set; a worker needs it "
            "(against a `convo-bridge sandbox`, set [convocore] sandbox = true or "
            "CONVOCORE_SANDBOX=1 instead)",
        )
    for name, account in cc.accounts.items():
        if account.token is None and not account.sandbox:
            raise ConfigError(
                f"convocore.accounts.{name}.token_env",
                f"environment variable {account.token_env} is not set; a worker needs it",
            )


def _accounts(raw: Any, env: Mapping[str, str]) -> dict[str, AccountSettings]:
    """The [convocore.accounts.NAME] tables, each checked; an agent id in two is a mistake."""
    if not isinstance(raw, dict):
        raise ConfigError("convocore.accounts", "expected tables [convocore.accounts.NAME]")
    out: dict[str, AccountSettings] = {}
    owner: dict[str, str] = {}
    for name, table in raw.items():
        where = f"convocore.accounts.{name}"
        if not isinstance(table, dict):
            raise ConfigError(where, "expected a table")
        _secret_in_file(AccountSettings, where, table)
        account: AccountSettings = read_table(AccountSettings, where, table)
        for key in ("base_url", "token_env"):
            if getattr(account, key) is None:
                raise ConfigError(f"{where}.{key}", "required for every account")
        base_url = str(account.base_url).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.base_url", f"expected an http(s) URL, got {base_url!r}")
        if account.sandbox and base_url == DEFAULT_BASE_URL:
            raise ConfigError(f"{where}.sandbox", "base_url is the public Convocore API")
        for agent in account.agents:
            if agent in owner:
                raise ConfigError(
                    f"{where}.agents", f"agent {agent!r} is already in account {owner[agent]}"
                )
            owner[agent] = name
        out[name] = replace(
            account, name=name, base_url=base_url, token=env.get(str(account.token_env)) or None
        )
    return out


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
    own = option_keys(kind)
    for key in table:
        if key not in _COMMON_SOURCE_KEYS and key not in own:
            owners = [k for k in KINDS if key in option_keys(k)]
            hint = f"only for kind {' or '.join(owners)}" if owners else "unknown key"
            hint = _SECRET_IN_FILE.get(key, hint)
            raise ConfigError(f"{where}.{key}", hint)
    secret = _secret(env, table.get("secret_env"), f"{where}.secret_env", required=secrets)
    options = provider(kind).options(where, {k: v for k, v in table.items() if k in own})
    default_agent = table.get("default_agent_id")
    if default_agent is not None:
        from bridge.errors import PayloadError
        from bridge.intents import check_segment_id

        try:
            check_segment_id(default_agent, "default_agent_id")
        except PayloadError as exc:
            raise ConfigError(f"{where}.default_agent_id", exc.detail) from None
    account = table.get("account")
    if account is not None and (not isinstance(account, str) or not account):
        raise ConfigError(f"{where}.account", "expected the name of a [convocore.accounts] table")
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
        agent_id=compile_expression(table["agent_id"], f"{where}.agent_id") if has_agent else None,
        convo_id=compile_expression(table["convo_id"], f"{where}.convo_id") if has_convo else None,
        default_agent_id=default_agent,
        options=options,
        account=account,
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

    convocore_raw = raw.get("convocore", {})
    accounts_raw = convocore_raw.pop("accounts", {}) if isinstance(convocore_raw, dict) else {}
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
    convocore = replace(
        convocore,
        base_url=base_url,
        token=env.get(convocore.token_env) or None,
        accounts=_accounts(accounts_raw, env),
    )
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
    for name, src in sources.items():
        if src.account is not None and src.account not in convocore.accounts:
            names = ", ".join(convocore.accounts) or "none"
            raise ConfigError(
                f"sources.{name}.account", f"no [convocore.accounts.{src.account}]; known: {names}"
            )
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
        eventlog=_section(raw, "eventlog", env),
        sources=sources,
        redis_url=redis_url,
        rq_redis_url=rq_redis_url,
        redis=_section(raw, "redis", env),
        admin_token=env.get("BRIDGE_ADMIN_TOKEN") or None,
        path=str(path) if path else None,
    )
