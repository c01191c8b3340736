"""Map a log entry onto OpenTelemetry GenAI semantic convention attributes.

The names follow the GenAI conventions of the OpenTelemetry semantic-conventions
repository (``docs/gen-ai/gen-ai-metrics.md`` and ``anthropic.md``, status
Development). Attributes the conventions do not cover go under ``leyline.``.

Entries count ``input_tokens`` without cache reads and writes, as Anthropic
does. The conventions count every prompt token as input, so the input count
sent here is ``input_tokens + cache_read_tokens + cache_write_tokens``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

OPERATION_NAME = "gen_ai.operation.name"
REQUEST_MODEL = "gen_ai.request.model"
PROVIDER_NAME = "gen_ai.provider.name"
TOKEN_TYPE = "gen_ai.token.type"
CONVERSATION_ID = "gen_ai.conversation.id"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
ERROR_TYPE = "error.type"
# The fallback error.type that the conventions define for an unknown error class.
OTHER_ERROR = "_OTHER"

SERVICE = "leyline.service"
ENTRY_ID = "leyline.entry.id"
COST_USD = "leyline.cost_usd"
TOTAL_TOKENS = "leyline.tokens"
DURATION_SECONDS = "leyline.duration_seconds"
ERROR_MESSAGE = "leyline.error_message"
CACHE_WRITE_5M_TOKENS = "leyline.cache_write_5m_tokens"
CACHE_WRITE_1H_TOKENS = "leyline.cache_write_1h_tokens"

# Model id patterns and their gen_ai.provider.name values. Gemini models are
# served by both the Gemini API (gcp.gemini) and Vertex AI (gcp.vertex_ai), and
# the model id does not tell which, so they get the value that the conventions
# define for an unknown Google backend.
_PROVIDER_PATTERNS = (
    (re.compile(r"claude-"), "anthropic"),
    (re.compile(r"gpt-|o\d+(?:-|$)"), "openai"),
    (re.compile(r"gemini-"), "gcp.gen_ai"),
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def provider_name(model: str, overrides: Mapping[str, str]) -> str | None:
    """Return the ``gen_ai.provider.name`` of a model id, or None if it is unknown.

    ``overrides`` maps model id prefixes to provider names and wins over the
    built-in patterns. Among overrides, the longest matching prefix wins.
    """
    matches = [prefix for prefix in overrides if model.startswith(prefix)]
    if matches:
        return overrides[max(matches, key=len)]
    for pattern, provider in _PROVIDER_PATTERNS:
        if pattern.match(model):
            return provider
    return None


def input_tokens(entry: Mapping[str, Any]) -> int | None:
    """Return an entry's prompt tokens, cached or not, or None if none is known."""
    counts = [
        _count(entry, key)
        for key in ("input_tokens", "cache_read_tokens", "cache_write_tokens")
    ]
    known = [count for count in counts if count is not None]
    return sum(known) if known else None


def output_tokens(entry: Mapping[str, Any]) -> int | None:
    """Return an entry's output tokens, or None if the entry has no such count."""
    return _count(entry, "output_tokens")


def duration_seconds(entry: Mapping[str, Any]) -> float | None:
    """Return an entry's duration, or None if it was not measured (zero or missing)."""
    value = entry.get("duration_seconds")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return float(value)


def error_type(entry: Mapping[str, Any]) -> str | None:
    """Return the ``error.type`` of a failed entry, or None if it succeeded."""
    if entry.get("success") is not False:
        return None
    value = entry.get("error_type")
    return value if isinstance(value, str) and value else OTHER_ERROR


def common_attributes(
    entry: Mapping[str, Any], providers: Mapping[str, str]
) -> dict[str, str]:
    """Return the attributes shared by both metrics and the log record."""
    attributes = {OPERATION_NAME: str(entry.get("operation", ""))}
    model = entry.get("model")
    if isinstance(model, str) and model:
        attributes[REQUEST_MODEL] = model
        provider = provider_name(model, providers)
        if provider is not None:
            attributes[PROVIDER_NAME] = provider
    service = entry.get("service")
    if isinstance(service, str):
        attributes[SERVICE] = service
    return attributes


def log_attributes(
    entry: Mapping[str, Any], common: Mapping[str, str]
) -> dict[str, str | int | float]:
    """Return the attributes of an entry's log record."""
    attributes: dict[str, str | int | float] = dict(common)
    _put(attributes, CONVERSATION_ID, _text(entry, "session_id"))
    _put(attributes, USAGE_INPUT_TOKENS, input_tokens(entry))
    _put(attributes, USAGE_OUTPUT_TOKENS, output_tokens(entry))
    _put(attributes, USAGE_CACHE_READ_TOKENS, _count(entry, "cache_read_tokens"))
    _put(attributes, USAGE_CACHE_CREATION_TOKENS, _count(entry, "cache_write_tokens"))
    _put(attributes, CACHE_WRITE_5M_TOKENS, _count(entry, "cache_write_5m_tokens"))
    _put(attributes, CACHE_WRITE_1H_TOKENS, _count(entry, "cache_write_1h_tokens"))
    _put(attributes, TOTAL_TOKENS, _count(entry, "tokens"))
    _put(attributes, DURATION_SECONDS, duration_seconds(entry))
    _put(attributes, COST_USD, _number(entry, "cost_usd"))
    _put(attributes, ENTRY_ID, _text(entry, "id"))
    failure = error_type(entry)
    if failure is not None:
        attributes[ERROR_TYPE] = failure
        _put(attributes, ERROR_MESSAGE, _text(entry, "error_message"))
    return attributes


def timestamp_nanos(entry: Mapping[str, Any]) -> int | None:
    """Return an entry's ISO 8601 timestamp as nanoseconds since the epoch.

    Returns None for a missing or unreadable timestamp. The arithmetic is on
    integers, because a float of seconds cannot hold every microsecond.
    """
    text = entry.get("timestamp")
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    return seconds * 1_000_000_000 + delta.microseconds * 1_000


def _count(entry: Mapping[str, Any], key: str) -> int | None:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _number(entry: Mapping[str, Any], key: str) -> float | None:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _text(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    return value if isinstance(value, str) and value else None


def _put(
    attributes: dict[str, str | int | float], key: str, value: str | float | None
) -> None:
    if value is not None:
        attributes[key] = value
