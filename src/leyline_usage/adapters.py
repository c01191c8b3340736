"""Built-in usage adapters: SDK usage objects or dicts to the entry's token counts.

Entries count uncached input, output, cache reads and cache writes separately
(Anthropic's convention). OpenAI and Google include cached tokens in their
input count, so their adapters subtract them: no token is priced twice.
Reasoning and thinking tokens are billed as output by both, and are reported
separately as ``reasoning_tokens`` for the entry's metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leyline_usage.hookspecs import hookimpl

Counts = dict[str, int]


def _get(source: Any, *names: str) -> Any:
    """Return the first present field of a dict or an attribute object."""
    for name in names:
        if isinstance(source, Mapping):
            value = source.get(name)
        else:
            value = getattr(source, name, None)
        if value is not None:
            return value
    return None


def _int(source: Any, *names: str) -> int:
    value = _get(source, *names)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def _has(source: Any, *names: str) -> bool:
    return _get(source, *names) is not None


def anthropic_counts(usage: Any) -> Counts:
    """Anthropic Messages: ``input_tokens`` already excludes cache reads and writes."""
    counts = {
        "input_tokens": _int(usage, "input_tokens"),
        "output_tokens": _int(usage, "output_tokens"),
        "cache_read_tokens": _int(usage, "cache_read_input_tokens"),
        "cache_write_tokens": _int(usage, "cache_creation_input_tokens"),
    }
    split = _get(usage, "cache_creation")
    if split is not None:
        counts["cache_write_5m_tokens"] = _int(split, "ephemeral_5m_input_tokens")
        counts["cache_write_1h_tokens"] = _int(split, "ephemeral_1h_input_tokens")
        written = counts["cache_write_5m_tokens"] + counts["cache_write_1h_tokens"]
        counts["cache_write_tokens"] = max(counts["cache_write_tokens"], written)
    return counts


def openai_chat_counts(usage: Any) -> Counts:
    """OpenAI Chat Completions: ``prompt_tokens`` includes the cached tokens."""
    prompt = _int(usage, "prompt_tokens")
    cached = min(
        _int(_get(usage, "prompt_tokens_details") or {}, "cached_tokens"), prompt
    )
    details = _get(usage, "completion_tokens_details") or {}
    return {
        "input_tokens": prompt - cached,
        "output_tokens": _int(usage, "completion_tokens"),
        "cache_read_tokens": cached,
        "reasoning_tokens": _int(details, "reasoning_tokens"),
    }


def openai_responses_counts(usage: Any) -> Counts:
    """OpenAI Responses: ``input_tokens`` includes the cached tokens."""
    total_input = _int(usage, "input_tokens")
    cached = min(
        _int(_get(usage, "input_tokens_details") or {}, "cached_tokens"), total_input
    )
    details = _get(usage, "output_tokens_details") or {}
    return {
        "input_tokens": total_input - cached,
        "output_tokens": _int(usage, "output_tokens"),
        "cache_read_tokens": cached,
        "reasoning_tokens": _int(details, "reasoning_tokens"),
    }


def gemini_counts(usage: Any) -> Counts:
    """Google Gemini: the prompt count includes cached content, thoughts are output."""
    prompt = _int(usage, "prompt_token_count", "promptTokenCount")
    cached = min(
        _int(usage, "cached_content_token_count", "cachedContentTokenCount"), prompt
    )
    candidates = _int(usage, "candidates_token_count", "candidatesTokenCount")
    thoughts = _int(usage, "thoughts_token_count", "thoughtsTokenCount")
    return {
        "input_tokens": prompt - cached,
        "output_tokens": candidates + thoughts,
        "cache_read_tokens": cached,
        "reasoning_tokens": thoughts,
    }


def detect_counts(usage: Any) -> Counts | None:
    """Return token counts for a usage object of a known provider, else None."""
    if _has(usage, "prompt_token_count", "promptTokenCount", "candidates_token_count"):
        return gemini_counts(usage)
    if _has(usage, "prompt_tokens", "completion_tokens"):
        return openai_chat_counts(usage)
    if _has(usage, "input_tokens_details", "output_tokens_details"):
        return openai_responses_counts(usage)
    if _has(
        usage,
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cache_creation",
    ):
        return anthropic_counts(usage)
    if _has(usage, "input_tokens", "output_tokens"):
        # Without provider-specific fields the two conventions agree: nothing cached.
        return anthropic_counts(usage)
    return None


@hookimpl(trylast=True)
def leyline_usage_adapt_usage(usage: object) -> dict[str, int] | None:
    """Recognize Anthropic, OpenAI (Chat Completions and Responses) and Gemini usage."""
    return detect_counts(usage)
