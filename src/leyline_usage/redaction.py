"""The built-in secret redaction enricher, on unless disabled in the config file.

Metadata keys that name a credential have their values replaced at any depth,
so an API key passed along with other request details never reaches the log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from leyline_usage.hookspecs import hookimpl

REDACTED = "[REDACTED]"

# Matched against keys split into lowercase words ("X-Api-Key", "apiKey" and
# "api_key" all become api, key). Plural "tokens" stays visible, because token
# counts are what this library logs.
_SECRET_WORDS = frozenset(
    {
        "apikey",
        "authorization",
        "bearer",
        "cookie",
        "cookies",
        "credential",
        "credentials",
        "passphrase",
        "passwd",
        "password",
        "secret",
        "token",
    }
)
_SECRET_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key")})
_WORD_BREAK = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
# The depth up to which the encoder keeps nesting (entry.sanitize).
_MAX_DEPTH = 64


@lru_cache(maxsize=4096)
def is_secret_key(key: object) -> bool:
    """Return True if a metadata key names a credential."""
    if not isinstance(key, str):
        return False
    words = _WORD_BREAK.split(_CAMEL.sub(r"\1_\2", key).lower())
    if any(word in _SECRET_WORDS for word in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in zip(words, words[1:], strict=False))


def redact(value: Any, depth: int = 0, seen: frozenset[int] = frozenset()) -> Any:
    """Return ``value`` with credential values replaced, copying only what changes.

    Containers nested deeper than the encoder keeps, and reference cycles, are
    replaced by the markers the encoder would write, so no secret hides there.
    """
    if not isinstance(value, (dict, list, tuple)):
        return value
    if id(value) in seen:
        return "<cycle>"
    if depth >= _MAX_DEPTH:
        return "<too deep>"
    inner = seen | {id(value)}
    if isinstance(value, dict):
        changed = None
        for key, item in value.items():
            new = REDACTED if is_secret_key(key) else redact(item, depth + 1, inner)
            if new is not item:
                if changed is None:
                    changed = dict(value)
                changed[key] = new
        return value if changed is None else changed
    items = [redact(item, depth + 1, inner) for item in value]
    if any(new is not old for new, old in zip(items, value, strict=True)):
        return items
    return value


_CONTAINERS = (dict, list, tuple)


def may_hold_secrets(metadata: Mapping[Any, Any]) -> bool:
    """Return False for flat metadata without secret keys, which needs no redaction."""
    for key, value in metadata.items():
        if is_secret_key(key) or isinstance(value, _CONTAINERS):
            return True
    return False


@hookimpl(trylast=True)
def leyline_usage_enrich(entry: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Replace credential values in the metadata; runs after other enrichers."""
    # Flat metadata without secret keys, the common case, needs no copy.
    if not may_hold_secrets(metadata):
        return
    redacted = redact(metadata)
    if redacted is not metadata:
        metadata.clear()
        metadata.update(redacted)
