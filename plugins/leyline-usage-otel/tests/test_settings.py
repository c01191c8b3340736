"""The [plugins.otel] table, provider names from model ids, and entry timestamps."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from leyline_usage_otel.attributes import provider_name, timestamp_nanos
from leyline_usage_otel.settings import OtelSettings, parse_settings


def test_empty_table_gives_defaults() -> None:
    assert parse_settings({}) == OtelSettings()


def test_full_table_parses() -> None:
    settings = parse_settings(
        {
            "endpoint": "https://collector.internal:4318/",
            "headers": {"authorization": "Bearer abc"},
            "timeout": Decimal("2.5"),
            "export_interval": 30,
            "service_name": "review-bot",
            "providers": {"llama-": "aws.bedrock"},
        }
    )

    assert settings == OtelSettings(
        endpoint="https://collector.internal:4318",
        headers={"authorization": "Bearer abc"},
        timeout=2.5,
        export_interval=30.0,
        service_name="review-bot",
        providers={"llama-": "aws.bedrock"},
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"endpiont": "http://x"}, "unknown key 'endpiont'"),
        ({"endpoint": "127.0.0.1:4318"}, "endpoint: must be an http:// or https://"),
        ({"endpoint": 4318}, "endpoint: must be an http:// or https://"),
        ({"timeout": 0}, "timeout: must be a positive, finite number"),
        ({"timeout": Decimal("-1")}, "timeout: must be a positive, finite number"),
        ({"timeout": Decimal("inf")}, "timeout: must be a positive, finite number"),
        ({"timeout": Decimal("nan")}, "timeout: must be a positive, finite number"),
        ({"timeout": True}, "timeout: must be a number of seconds"),
        ({"export_interval": "60"}, "export_interval: must be a number of seconds"),
        ({"service_name": ""}, "service_name: must be a non-empty string"),
        ({"headers": "authorization=x"}, "headers: must be a table of strings"),
        ({"headers": {"x-retries": 3}}, "headers.x-retries: must be a string"),
        ({"providers": ["claude-"]}, "providers: must be a table of strings"),
    ],
)
def test_invalid_table_raises(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^plugins.otel") as raised:
        parse_settings(table)

    assert message in str(raised.value)


def test_header_values_stay_out_of_errors() -> None:
    with pytest.raises(ValueError) as raised:
        parse_settings({"headers": {"authorization": "Bearer secret", "x-n": 1}})

    assert "secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("claude-sonnet-4-5", "anthropic"),
        ("claude-3-haiku-20240307", "anthropic"),
        ("gpt-5", "openai"),
        ("gpt-4o-mini", "openai"),
        ("o1", "openai"),
        ("o3", "openai"),
        ("o4-mini", "openai"),
        ("gemini-2.5-pro", "gcp.gen_ai"),
        ("gemini-3.1-flash-lite-preview", "gcp.gen_ai"),
        ("omni-moderation-latest", None),
        ("o3x", None),
        ("llama-4-maverick", None),
        ("my-claude-finetune", None),
    ],
)
def test_provider_from_model_id(model: str, provider: str | None) -> None:
    assert provider_name(model, {}) == provider


def test_longest_override_prefix_wins() -> None:
    overrides = {"claude-": "aws.bedrock", "claude-opus-": "gcp.vertex_ai"}

    assert provider_name("claude-opus-4-5", overrides) == "gcp.vertex_ai"
    assert provider_name("claude-haiku-4-5", overrides) == "aws.bedrock"
    assert provider_name("gpt-5", overrides) == "openai"


@pytest.mark.parametrize(
    ("timestamp", "nanos"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2026-02-10T21:11:59.186000Z", 1_770_757_919_186_000_000),
        ("2026-02-10T21:11:59.186Z", 1_770_757_919_186_000_000),
        ("2025-12-05T10:30:00.412907Z", 1_764_930_600_412_907_000),
        ("2025-12-05T11:30:00.412907+01:00", 1_764_930_600_412_907_000),
        ("2025-12-05T10:30:00", 1_764_930_600_000_000_000),
        ("yesterday", None),
        (None, None),
    ],
)
def test_timestamp_nanos(timestamp: str | None, nanos: int | None) -> None:
    assert timestamp_nanos({"timestamp": timestamp}) == nanos
