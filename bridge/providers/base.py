"""What every sender kind is: its options, the body it takes, how it verifies a request,
how its payload becomes events, and what it answers.

A kind is a module implementing `Provider` (registered by name in bridge/providers/__init__):

    Options                                             its typed keys in [sources.NAME]
    options(where, table) -> Options                    raises ConfigError naming the key
    accepts(source, headers) -> None                    raises UnsupportedMedia (415)
    verify(source, request, tolerance_s) -> None        raises SignatureError
    parse(source, request) -> Any                       the body as one tree; PayloadError
    normalize(source, request, payload) -> list[SourceEvent]   raises PayloadError
    challenge(source, request) -> Answer | None         a set-up handshake's answer, or None
    acknowledge(source, counts) -> Answer | None        the success answer; None: 202 + counts

`verify` sees only the raw bytes and headers; `normalize` sees the parsed tree. An event the
kind does not map is a SourceEvent with `intent=None` (counted as ignored, answered 202).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bridge.errors import PayloadError, SignatureError
from bridge.expressions import Expression
from bridge.intents import MAX_TIME_MS, Intent, check_id, parse_time
from bridge.providers.formats import parse_json, require_json
from bridge.spec import read_table


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """One [sources.NAME] table: the keys every source takes, and its kind's `Options`."""

    name: str
    kind: str
    secret_env: str
    secret: str = field(repr=False)
    agent_id: Expression | None = None
    convo_id: Expression | None = None
    default_agent_id: str | None = None
    options: Any = None  # the kind's Options instance (each kind reads its own)
    account: str | None = None  # [convocore.accounts.NAME] its conversations are in


@dataclass(frozen=True, slots=True)
class Answer:
    """What the bridge answers a sender, when it is not the default 202 with the counts."""

    body: str
    status: int = 200
    media_type: str = "text/plain"


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    method: str
    url: str  # the URL as the bridge sees it: scheme://host[:port]/path[?query]
    headers: Mapping[str, str]  # names in lower case
    body: bytes
    received_at: float  # epoch seconds
    # what the body parsed into, kept by the kind that parsed it (proof, handshake and
    # mapping all read one tree: a body is parsed once per request)
    parsed: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class SourceEvent:
    event_id: str
    intent: Intent | None  # None: the kind does not map this event (ignored)
    raw: Any = None  # the payload element it came from, for JMESPath routing


class Provider(Protocol):
    """A sender kind. Modules implement it (mypy checks each one in the registry)."""

    Options: type[Any]

    def options(self, where: str, table: Mapping[str, Any]) -> Any:
        """The kind's keys of a [sources.NAME] table as its Options; ConfigError names a key."""

    def accepts(self, source: SourceSettings, headers: Mapping[str, str]) -> None:
        """Raise UnsupportedMedia unless the kind takes a body of this Content-Type (checked
        before the body is read; `headers` named in lower case)."""

    def parse(self, source: SourceSettings, request: WebhookRequest) -> Any:
        """A verified request's body as one tree (JSON, or what the kind takes)."""

    def acknowledge(self, source: SourceSettings, counts: Mapping[str, int]) -> Answer | None:
        """The answer once the request's events are queued; None for 202 with the counts."""

    def verify(self, source: SourceSettings, request: WebhookRequest, tolerance_s: int) -> None:
        """Raise SignatureError unless the raw request is signed by the source's sender and,
        where the sender signs a time, within `tolerance_s` of its receipt."""

    def normalize(
        self, source: SourceSettings, request: WebhookRequest, payload: Any
    ) -> list[SourceEvent]:
        """The events of a verified request's parsed body; PayloadError names what is wrong."""

    def challenge(self, source: SourceSettings, request: WebhookRequest) -> Answer | None:
        """The answer (nothing queued) to a sender's set-up request, on a verified request;
        None for every other request."""


# --- what most kinds share: no options, JSON bodies, no handshake, the default answer ------


@dataclass(frozen=True, slots=True)
class NoOptions:
    """A kind with no keys of its own."""


def options_reader(cls: type[Any]) -> Callable[[str, Mapping[str, Any]], Any]:
    """`options` for a kind whose Options dataclass says everything (types, defaults)."""

    def options(where: str, table: Mapping[str, Any]) -> Any:
        return read_table(cls, where, table)

    return options


def json_only(source: SourceSettings, headers: Mapping[str, str]) -> None:
    require_json(headers.get("content-type", ""))


def json_body(source: SourceSettings, request: WebhookRequest) -> Any:
    return parse_json(request.body)


def no_challenge(source: SourceSettings, request: WebhookRequest) -> Answer | None:
    """For kinds whose senders have no set-up handshake."""
    return None


def default_answer(source: SourceSettings, counts: Mapping[str, int]) -> Answer | None:
    return None


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def same(expected: bytes | str, given: bytes | str) -> bool:
    """Constant-time comparison; every signature check goes through here."""
    a = expected.encode() if isinstance(expected, str) else expected
    b = given.encode() if isinstance(given, str) else given
    return hmac.compare_digest(a, b)


def mac(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, message, algorithm).digest()


def require_header(request: WebhookRequest, name: str) -> str:
    value = request.header(name)
    if not value:
        raise SignatureError(f"missing {name} header")
    return value


_EPOCH = re.compile(
    r"[0-9]{1,16}"
)  # ASCII digits only: int() also takes Arabic-Indic digits, ' 1', '1_0'
_ISO_TIME = re.compile(r"[0-9T:.+\-Zz]{10,40}")


def signed_epoch(request: WebhookRequest, name: str, *, milliseconds: bool) -> tuple[str, float]:
    """A signed epoch-time header as sent (it is part of the signed bytes) and in seconds.
    Anything but 1 to 16 ASCII digits is a SignatureError (401), never a 500."""
    stamp = require_header(request, name)
    if not _EPOCH.fullmatch(stamp):
        unit = "milliseconds" if milliseconds else "seconds"
        raise SignatureError(f"{name}: expected epoch {unit} (ASCII digits)")
    value = int(stamp)
    return stamp, value / 1000 if milliseconds else float(value)


def signed_iso_time(request: WebhookRequest, name: str) -> tuple[str, float]:
    """A signed ISO-8601 time header with its zone, as sent and in epoch seconds."""
    stamp = require_header(request, name)
    try:
        if not _ISO_TIME.fullmatch(stamp):
            raise ValueError(stamp)
        moment = datetime.fromisoformat(stamp.replace("z", "Z"))
        if moment.tzinfo is None:
            raise ValueError(stamp)
        return stamp, moment.timestamp()
    except (ValueError, OverflowError, OSError):
        raise SignatureError(f"{name}: expected an ISO-8601 time with a zone") from None


def check_window(sent_at: float, request: WebhookRequest, tolerance_s: int, header: str) -> None:
    """A signed timestamp must be within the tolerance, in both directions."""
    if abs(request.received_at - sent_at) > tolerance_s:
        raise SignatureError(f"{header} is outside the {tolerance_s} s tolerance")


# --- payload helpers shared by the kinds -----------------------------------------------------


def dig(obj: Any, path: str) -> Any:
    """`a.b.c` from nested objects; None where anything on the way is missing."""
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def require_object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{name}: expected an object")
    return value


def text_id(value: Any, name: str) -> str:
    """An id the sender gives as a string or a number, as the intent's string."""
    if value is None:
        raise PayloadError(f"{name}: required")
    return check_id(value, name)


def optional_text(value: Any) -> str | None:
    if value is None or isinstance(value, bool) or value == "":
        return None
    return str(value) if isinstance(value, str | int) else None


def time_or_receipt(value: Any, name: str, request: WebhookRequest) -> int:
    """The payload's own time (`name`), else when the bridge received the request: for
    senders whose body may not say when the change happened. Ingest recognises the receipt
    time and dates such an event by Redis's clock instead (one clock for every replica)."""
    return parse_time(value, name) if value else int(request.received_at * 1000)


def seconds_ms(value: Any, name: str) -> int:
    """Epoch seconds (possibly fractional) as epoch milliseconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{name}: expected epoch seconds")
    if value != value or abs(value) > MAX_TIME_MS / 1000:
        raise PayloadError(f"{name}: expected epoch seconds")
    return parse_time(round(value * 1000), name)


def strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PayloadError(f"{name}: expected an array of strings")
    return tuple(value)


def indexed(payload: list[Any], read: Callable[[Any], SourceEvent]) -> list[SourceEvent]:
    """Read each element of a batch; a bad one refuses the whole request, naming its index."""
    out: list[SourceEvent] = []
    for i, item in enumerate(payload):
        try:
            out.append(read(item))
        except PayloadError as exc:
            raise exc.at(f"[{i}].") from None
    return out
