"""The log entry: field order, validation, timestamps, ids and JSON encoding.

An entry is a plain dict whose first ten keys are those of the original leyline
logger, in its order, so files stay readable by tools written against it.
Optional keys follow in the order of :data:`OPTIONAL_KEYS`.

Token fields follow Anthropic's convention: ``input_tokens`` counts uncached
input only, and cache reads and writes are separate, so ``tokens`` (the total)
is the plain sum of the breakdown and no token is counted twice.
"""

from __future__ import annotations

import datetime
import math
import operator
import os
import re
import time
from collections.abc import Mapping
from itertools import count
from typing import Any

import orjson

BASE_KEYS = (
    "timestamp",
    "session_id",
    "service",
    "operation",
    "tokens",
    "success",
    "duration_seconds",
    "error_type",
    "error_message",
    "metadata",
)
TOKEN_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
)
OPTIONAL_KEYS = ("model", *TOKEN_KEYS, "cost_usd", "id")

Entry = dict[str, Any]


# JSON readers, orjson among them, hold integers in 64 bits.
MAX_COUNT = 2**63 - 1


def check_token_count(name: str, value: object) -> int:
    """Return ``value`` if it is an integer from 0 to 2**63 - 1, else raise."""
    if type(value) is not int:
        if isinstance(value, bool) or not hasattr(value, "__index__"):
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        value = operator.index(value)
    if not 0 <= value <= MAX_COUNT:
        raise ValueError(
            f"{name} must be a non-negative integer below 2**63, got {value!r}"
        )
    return value


def check_duration(value: object) -> float:
    """Return ``value`` as seconds if it is a finite, non-negative number."""
    if type(value) is not float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"duration must be a number of seconds, got {value!r}")
        try:
            value = float(value)
        except OverflowError:
            raise ValueError(f"duration must be finite, got {value!r}") from None
    if not (value >= 0.0 and value != math.inf):
        raise ValueError(f"duration must be finite and non-negative, got {value!r}")
    return value


def token_breakdown(
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_tokens: int | None,
    cache_write_tokens: int | None,
    cache_write_5m_tokens: int | None,
    cache_write_1h_tokens: int | None,
) -> dict[str, int]:
    """Validate the token breakdown and return the counts that were given.

    A cache write total missing beside its 5-minute and 1-hour split is filled
    in as their sum.
    """
    counts: dict[str, int] = {}
    # Plain non-negative ints pass with one type test: this runs per entry.
    if input_tokens is not None:
        counts["input_tokens"] = (
            input_tokens
            if type(input_tokens) is int and 0 <= input_tokens <= MAX_COUNT
            else check_token_count("input_tokens", input_tokens)
        )
    if output_tokens is not None:
        counts["output_tokens"] = (
            output_tokens
            if type(output_tokens) is int and 0 <= output_tokens <= MAX_COUNT
            else check_token_count("output_tokens", output_tokens)
        )
    if cache_read_tokens is not None:
        counts["cache_read_tokens"] = (
            cache_read_tokens
            if type(cache_read_tokens) is int and 0 <= cache_read_tokens <= MAX_COUNT
            else check_token_count("cache_read_tokens", cache_read_tokens)
        )
    if cache_write_5m_tokens is None and cache_write_1h_tokens is None:
        if cache_write_tokens is not None:
            counts["cache_write_tokens"] = (
                cache_write_tokens
                if type(cache_write_tokens) is int
                and 0 <= cache_write_tokens <= MAX_COUNT
                else check_token_count("cache_write_tokens", cache_write_tokens)
            )
    else:
        counts.update(
            _cache_writes(
                cache_write_tokens, cache_write_5m_tokens, cache_write_1h_tokens
            )
        )
    return counts


def _cache_writes(
    total: int | None, write_5m: int | None, write_1h: int | None
) -> dict[str, int]:
    """Validate cache writes given with a 5-minute or 1-hour split."""
    counts = {}
    if write_5m is not None:
        counts["cache_write_5m_tokens"] = check_token_count(
            "cache_write_5m_tokens", write_5m
        )
    if write_1h is not None:
        counts["cache_write_1h_tokens"] = check_token_count(
            "cache_write_1h_tokens", write_1h
        )
    split = counts.get("cache_write_5m_tokens", 0) + counts.get(
        "cache_write_1h_tokens", 0
    )
    if total is None:
        if split:
            return {"cache_write_tokens": split, **counts}
        return counts
    total = check_token_count("cache_write_tokens", total)
    if split > total:
        raise ValueError(
            f"cache_write_tokens ({total}) is less than its "
            f"5-minute and 1-hour split ({split}); pass the total or omit it"
        )
    return {"cache_write_tokens": total, **counts}


def breakdown_total(counts: Mapping[str, int]) -> int:
    """Return the total tokens of a breakdown (the split is part of the write total)."""
    return (
        counts.get("input_tokens", 0)
        + counts.get("output_tokens", 0)
        + counts.get("cache_read_tokens", 0)
        + counts.get("cache_write_tokens", 0)
    )


class _Timestamps:
    """Formats UTC times as ``2025-12-05T10:30:00.412907Z``.

    The date and time-of-day part changes once a second, so it is cached and
    only the microseconds are formatted per call.
    """

    def __init__(self) -> None:
        # One tuple, replaced whole, so a thread never pairs one second with
        # another second's text.
        self._cached = (-1, "")

    def format(self, when: float) -> str:
        second = int(when)
        cached_second, prefix = self._cached
        if second != cached_second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._cached = (second, prefix)
        micros = int((when - second) * 1_000_000)
        return f"{prefix}.{micros:06d}Z"


format_timestamp = _Timestamps().format


class _EntryIds:
    """Entry ids unique across processes: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = count(1)

    def next(self) -> str:
        # count.__next__ runs in C without releasing the GIL, so threads
        # never receive the same number.
        return f"{self._prefix}-{next(self._counter):x}"


_entry_ids = _EntryIds()
new_entry_id = _entry_ids.next
if hasattr(os, "register_at_fork"):
    # A forked child must not repeat the parent's ids.
    os.register_at_fork(after_in_child=_entry_ids._reset)


def _to_text(value: object) -> str:
    """Stand in for a metadata value that JSON cannot encode."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, (set, frozenset)):
        return str(sorted(value, key=repr))
    if isinstance(value, (datetime.date, datetime.time)):
        # The text orjson writes for a datetime it encodes natively.
        return value.isoformat()
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _key_text(key: object) -> str:
    """Return a non-string dict key as the text orjson's OPT_NON_STR_KEYS writes."""
    if key is None or isinstance(key, bool):
        return orjson.dumps(key).decode()
    return _to_text(key)


def _reject(value: object) -> str:
    raise TypeError(
        f"metadata value {value!r} of type {type(value).__name__} is not JSON "
        "serializable; convert it to str, int, float, bool, list or dict"
    )


# Without OPT_NON_STR_KEYS, metadata with non-string keys takes the sanitize()
# path, which can tell when two keys would become the same JSON key.
_LENIENT = orjson.OPT_APPEND_NEWLINE
_STRICT = (
    orjson.OPT_APPEND_NEWLINE
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def encode_entry(entry: Entry, strict: bool = False) -> bytes:
    """Encode ``entry`` as one JSON line ending in a newline.

    Without ``strict``, metadata values JSON cannot represent become strings.
    With ``strict``, they raise TypeError and nothing is written.
    """
    if strict:
        try:
            return orjson.dumps(entry, default=_reject, option=_STRICT)
        except orjson.JSONEncodeError as exc:
            if isinstance(exc.__cause__, TypeError):
                raise exc.__cause__ from None
            raise TypeError(f"entry cannot be encoded as JSON: {exc}") from exc
    try:
        return orjson.dumps(entry, default=_to_text, option=_LENIENT)
    except orjson.JSONEncodeError:
        # Lone surrogates (in any text field), integers beyond 64 bits,
        # reference cycles or excessive nesting: rebuild the entry from plain
        # values and try once more.
        plain = {key: sanitize(value) for key, value in entry.items()}
        return orjson.dumps(plain, default=_to_text, option=_LENIENT)


_MAX_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


def sanitize(value: object, depth: int = 0, seen: frozenset[int] = frozenset()) -> Any:
    """Return a copy of ``value`` built from JSON types only.

    Strings with lone surrogates get U+FFFD in their place, reference cycles
    and nesting deeper than 64 levels become a short marker string, and any
    other object becomes its ``str``.
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -MAX_COUNT - 1 <= value <= 2**64 - 1 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if id(value) in seen:
        return "<cycle>"
    if depth >= _MAX_DEPTH:
        return "<too deep>"
    inner = seen | {id(value)}
    if isinstance(value, Mapping):
        plain: dict[str, Any] = {}
        originals: dict[str, object] = {}
        for key, item in value.items():
            text = sanitize(key if isinstance(key, str) else _key_text(key), depth + 1)
            if text in plain:
                raise ValueError(
                    f"metadata keys {originals[text]!r} and {key!r} both become "
                    f"{text!r} in JSON; rename one of them"
                )
            originals[text] = key
            plain[text] = sanitize(item, depth + 1, inner)
        return plain
    if isinstance(value, (list, tuple)):
        return [sanitize(v, depth + 1, inner) for v in value]
    return sanitize(_to_text(value), depth + 1, inner)
