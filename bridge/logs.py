"""Logging set-up: one JSON line per event (or plain text), level and format from config.

Call sites pass structured fields with `extra={"fields": {...}}`; nothing here ever logs a
body, a secret or a token, and callers must not either. What Python itself would print to
stderr (an exception that ends a thread, one raised where it cannot be, such as in `__del__`,
one that ends the program) becomes a record too, so a `json` log holds nothing but JSON.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
import traceback
from types import TracebackType
from typing import Any

import orjson

from bridge.config import LogSettings

UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _access_fields(record: logging.LogRecord) -> dict[str, Any] | None:
    """uvicorn's access line as fields (its args: client, method, path, HTTP version, status)."""
    args = record.args
    if record.name != "uvicorn.access" or not isinstance(args, tuple) or len(args) != 5:
        return None
    client, method, path, version, status = args
    return {"client": client, "method": method, "path": path, "http": version, "status": status}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        access = _access_fields(record)
        if access is not None:
            out.update(access, msg="request")
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return orjson.dumps(out, default=str).decode()


# Line breaks and every other control or separator character a terminal or a log shipper
# might act on, and the backslash that starts an escape: escaped, so no value forges a line.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")
_BARE = re.compile(r"[A-Za-z0-9_.:/@+,\-\[\]]+")  # a value shown without quotes


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}.get(
        char, f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


def text_value(value: Any) -> str:
    """One field's value on a text line: bare when plain, else a quoted, escaped string."""
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    if _BARE.fullmatch(text):
        return text
    return '"' + _UNSAFE.sub(_escape, text).replace('"', '\\"') + '"'


class TextFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL logger: message key=value …`, one line per record whatever the values
    hold (a path with `%0A` in it must not write a second, forged line)."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = getattr(record, "fields", None) or _access_fields(record) or {}
        message = "request" if record.name == "uvicorn.access" else record.getMessage()
        extra = " ".join(f"{k}={text_value(v)}" for k, v in fields.items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {_UNSAFE.sub(_escape, message)}"
        return f"{line} {extra}".rstrip()


def configure(settings: LogSettings) -> None:
    """Every record of the process, uvicorn's included, through one handler in one format.
    (uvicorn is started with `log_config=None`, so it adds no handlers of its own.)"""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for name in UVICORN:
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    for name in list(logging.Logger.manager.loggerDict):
        if name.split(".")[0] == "rq":  # `rq worker` gives RQ's loggers text handlers of their own
            logger = logging.getLogger(name)
            logger.handlers[:] = []
            logger.propagate = True
    logging.captureWarnings(True)  # Python warnings as records too, not raw stderr text
    threading.excepthook = _thread_crashed
    sys.unraisablehook = _unraisable
    sys.excepthook = _uncaught
    for noisy in ("httpx", "httpcore", "uvicorn.access", "rq"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fields(**values: Any) -> dict[str, Any]:
    """`logger.info("...", extra=fields(event_id=..., status=...))`."""
    return {"fields": values}


_CRASHES = logging.getLogger("convo_bridge.crash")


def _crash_fields(
    exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None, **more: Any
) -> dict[str, Any]:
    """The exception in one line and where it was raised (file:line of the innermost frame)."""
    frames = traceback.extract_tb(tb) if tb is not None else []
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return fields(**more, error=f"{exc_type.__name__}: {exc}", where=where)


def _thread_crashed(args: threading.ExceptHookArgs) -> None:
    """threading.excepthook: an exception ended a thread."""
    if args.exc_type is SystemExit:  # as threading's own hook: a thread may exit this way
        return
    name = args.thread.name if args.thread is not None else ""
    _CRASHES.error(
        "thread crashed",
        extra=_crash_fields(args.exc_type, args.exc_value, args.exc_traceback, thread=name),
    )


def _unraisable(args: Any) -> None:
    """sys.unraisablehook: an exception Python could not raise (in __del__, a callback…)."""
    exc_type = args.exc_type
    what = args.err_msg or "Exception ignored in"
    _CRASHES.error(
        "exception ignored",
        extra=_crash_fields(
            exc_type, args.exc_value, args.exc_traceback, context=f"{what}: {args.object!r}"[:200]
        ),
    )


def _uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """sys.excepthook: an exception ended the program."""
    if issubclass(exc_type, KeyboardInterrupt):
        _CRASHES.warning("interrupted", extra=_crash_fields(exc_type, exc, tb))
        return
    _CRASHES.critical("uncaught exception", extra=_crash_fields(exc_type, exc, tb))
