"""Request bodies as the one tree a kind reads: strict JSON (and, for the generic kind, form
and XML bodies). Every refusal is a PayloadError naming what is wrong."""

from __future__ import annotations

from typing import Any

import orjson

from bridge.errors import PayloadError, UnsupportedMedia

MAX_NUMBER = 2**63  # "absurd numbers": integers beyond 64 bits, floats beyond this magnitude


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_json(content_type: str) -> bool:
    media = media_type(content_type)
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def require_json(content_type: str) -> None:
    """For kinds whose senders always send JSON: anything else is a 415."""
    if not is_json(content_type):
        raise UnsupportedMedia("expected Content-Type: application/json")


def parse_json(body: bytes) -> Any:
    """Strict JSON: valid UTF-8, no NaN/Infinity, no absurd numbers."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"body is not valid JSON: {str(exc).split(':')[0]}") from None
    _check_numbers(payload, "")
    return payload


def _check_numbers(value: Any, path: str) -> None:
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float):
            if item != item or abs(item) >= MAX_NUMBER:
                raise PayloadError(f"{where or 'body'}: number out of range")
        elif isinstance(item, int) and not isinstance(item, bool):
            if abs(item) >= MAX_NUMBER:
                raise PayloadError(f"{where or 'body'}: number out of range")
        elif isinstance(item, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
