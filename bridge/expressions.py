"""JMESPath expressions from the config (a source's `agent_id`/`convo_id`, the generic kind's
`map`), named by their config key.

An expression that compiles can still fail on a payload it does not fit: `join('-', [org,
team])` when `team` is a number raises JMESPathTypeError. That is the sender's payload not
matching the config, so it is a 400 naming the key and the expression (a 5xx would make the
sender retry it forever). The message names types, never the payload's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError, JMESPathTypeError
from jmespath.parser import ParsedResult

from bridge.errors import ConfigError, PayloadError


@dataclass(frozen=True, slots=True)
class Expression:
    key: str  # where the config holds it: sources.NAME.agent_id, sources.NAME.map.set.title
    expression: str
    parsed: ParsedResult

    @classmethod
    def compile(cls, key: str, expression: str) -> Expression:
        """Raises JMESPathError when it does not compile (config.py names the key)."""
        return cls(key, expression, jmespath.compile(expression))

    def search(self, data: Any) -> Any:
        try:
            return self.parsed.search(data)
        except (JMESPathError, ArithmeticError, ValueError, TypeError, RecursionError) as exc:
            raise PayloadError(
                f"{self.key} = {self.expression!r} does not fit this payload: {_why(exc)}"
            ) from None


_JSON_TYPES = {  # jmespath names some types the Python way
    "int": "number",
    "float": "number",
    "str": "string",
    "list": "array",
    "dict": "object",
    "bool": "boolean",
    "NoneType": "null",
}


def _why(exc: Exception) -> str:
    if isinstance(exc, JMESPathTypeError):
        expects = " or ".join(str(t) for t in exc.expected_types)
        got = _JSON_TYPES.get(str(exc.actual_type), str(exc.actual_type))
        return f"{exc.function_name}() got a {got} where it takes {expects}"
    return type(exc).__name__


def compile_expression(expr: Any, key: str) -> Expression:
    """A config value as an Expression; ConfigError naming `key` when it is not one."""
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError(key, "expected a JMESPath expression string")
    try:
        return Expression.compile(key, expr)
    except JMESPathError as exc:
        raise ConfigError(key, f"JMESPath does not compile: {str(exc).splitlines()[0]}") from None
