"""Logging set-up: one JSON line per event (or plain text), level and format from config.

Call sites pass structured fields with `extra={"fields": {...}}`; nothing here ever logs a
body, a secret or a token, and callers must not either.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from bridge.config import LogSettings


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = getattr(record, "fields", None) or {}
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        return (
            f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()} {extra}".rstrip()
        )


def configure(settings: LogSettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for noisy in ("httpx", "httpcore", "uvicorn.access", "rq"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fields(**values: Any) -> dict[str, Any]:
    """`logger.info("...", extra=fields(event_id=..., status=...))`."""
    return {"fields": values}
