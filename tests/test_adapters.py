"""Usage adapters: SDK usage objects and dicts in the providers' documented shapes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from leyline_usage import UsageLogger
from leyline_usage.adapters import detect_counts


def as_object(value: Any) -> Any:
    """Turn nested dicts into attribute objects, as SDK response models are."""
    if isinstance(value, dict):
        return SimpleNamespace(**{k: as_object(v) for k, v in value.items()})
    return value


ANTHROPIC = {
    "input_tokens": 20,
    "output_tokens": 300,
    "cache_read_input_tokens": 5000,
    "cache_creation_input_tokens": 1200,
    "cache_creation": {
        "ephemeral_5m_input_tokens": 200,
        "ephemeral_1h_input_tokens": 1000,
    },
    "service_tier": "standard",
}
OPENAI_CHAT = {
    "prompt_tokens": 2000,
    "completion_tokens": 500,
    "total_tokens": 2500,
    "prompt_tokens_details": {"cached_tokens": 1536, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 320, "audio_tokens": 0},
}
OPENAI_RESPONSES = {
    "input_tokens": 3000,
    "input_tokens_details": {"cached_tokens": 1024},
    "output_tokens": 800,
    "output_tokens_details": {"reasoning_tokens": 600},
    "total_tokens": 3800,
}
GEMINI = {
    "prompt_token_count": 4000,
    "cached_content_token_count": 3000,
    "candidates_token_count": 150,
    "thoughts_token_count": 450,
    "total_token_count": 4600,
}
GEMINI_REST = {
    "promptTokenCount": 4000,
    "cachedContentTokenCount": 3000,
    "candidatesTokenCount": 150,
    "thoughtsTokenCount": 450,
    "totalTokenCount": 4600,
}

EXPECTED = {
    "anthropic": (ANTHROPIC, {"input_tokens": 20, "output_tokens": 300, "cache_read_tokens": 5000,
                              "cache_write_tokens": 1200, "cache_write_5m_tokens": 200,
                              "cache_write_1h_tokens": 1000}),
    "openai-chat": (OPENAI_CHAT, {"input_tokens": 464, "output_tokens": 500,
                                  "cache_read_tokens": 1536, "reasoning_tokens": 320}),
    "openai-responses": (OPENAI_RESPONSES, {"input_tokens": 1976, "output_tokens": 800,
                                            "cache_read_tokens": 1024, "reasoning_tokens": 600}),
    "gemini": (GEMINI, {"input_tokens": 1000, "output_tokens": 600, "cache_read_tokens": 3000,
                        "reasoning_tokens": 450}),
    "gemini-rest": (GEMINI_REST, {"input_tokens": 1000, "output_tokens": 600,
                                  "cache_read_tokens": 3000, "reasoning_tokens": 450}),
}  # fmt: skip


@pytest.mark.parametrize("shape", ["dict", "object"])
@pytest.mark.parametrize("provider", sorted(EXPECTED))
def test_adapter_counts(provider: str, shape: str) -> None:
    usage, expected = EXPECTED[provider]

    counts = detect_counts(usage if shape == "dict" else as_object(usage))

    assert counts == expected


@pytest.mark.parametrize("provider", sorted(EXPECTED))
def test_no_token_counted_twice(provider: str) -> None:
    usage, _ = EXPECTED[provider]
    counts = detect_counts(usage)
    assert counts is not None

    billed = (
        counts["input_tokens"] + counts["output_tokens"]
        + counts["cache_read_tokens"] + counts.get("cache_write_tokens", 0)
    )  # fmt: skip

    reported_total = (
        usage.get("total_tokens")
        or usage.get("total_token_count")
        or usage.get("totalTokenCount")
    )
    if reported_total is not None:
        assert billed == reported_total


def test_log_usage_accepts_sdk_object(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    entry = logger.log_usage("chat", usage=as_object(OPENAI_CHAT), model="gpt-4o")

    assert entry is not None
    assert entry["input_tokens"] == 464
    assert entry["cache_read_tokens"] == 1536
    assert entry["tokens"] == 2500
    assert entry["metadata"]["reasoning_tokens"] == 320
    expected = (464 * 2.5 + 1536 * 1.25 + 500 * 10) / 1e6
    assert entry["cost_usd"] == pytest.approx(expected)


def test_explicit_counts_override_usage(storage: Path) -> None:
    entry = UsageLogger("svc", storage_dir=storage).log_usage(
        "op", usage=ANTHROPIC, output_tokens=1
    )

    assert entry is not None
    assert entry["output_tokens"] == 1
    assert entry["cache_write_1h_tokens"] == 1000


def test_unknown_usage_object_raises(storage: Path) -> None:
    with pytest.raises(ValueError, match="not recognized"):
        UsageLogger("svc", storage_dir=storage).log_usage("op", usage=object())
