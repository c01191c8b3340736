"""Entries logged through UsageLogger, read from in-memory SDK readers and exporters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from leyline_usage import UsageLogger
from leyline_usage.plugins import plugin_manager
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from conftest import MemoryTelemetry
from leyline_usage_otel import configure_providers
from leyline_usage_otel.attributes import timestamp_nanos
from leyline_usage_otel.recorder import DURATION_BUCKETS, EVENT_NAME, TOKEN_BUCKETS

TOKEN_USAGE = "gen_ai.client.token.usage"
DURATION = "gen_ai.client.operation.duration"


def histogram_points(
    reader: InMemoryMetricReader, name: str
) -> list[HistogramDataPoint]:
    """Return the data points of the named histogram, or [] if it has none yet."""
    data = reader.get_metrics_data()
    if data is None:
        return []
    points: list[HistogramDataPoint] = []
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    points.extend(
                        point
                        for point in metric.data.data_points
                        if isinstance(point, HistogramDataPoint)
                    )
    return points


def point_with(points: list[HistogramDataPoint], **expected: str) -> HistogramDataPoint:
    """Return the one point whose attributes include ``expected`` (dots as __)."""
    required = {key.replace("__", "."): value for key, value in expected.items()}
    matching = [
        point
        for point in points
        if all(attributes_of(point).get(k) == v for k, v in required.items())
    ]
    assert len(matching) == 1, f"{len(matching)} points match {required}: {points}"
    return matching[0]


def attributes_of(point: HistogramDataPoint) -> dict[str, Any]:
    assert point.attributes is not None
    return dict(point.attributes)


def log_attributes(record: ReadableLogRecord) -> dict[str, Any]:
    attributes = record.log_record.attributes
    assert attributes is not None
    return dict(attributes)


def test_token_usage_splits_input_and_output(
    memory: MemoryTelemetry, storage: Path
) -> None:
    logger = UsageLogger("summarizer", storage)

    logger.log_usage(
        "chat",
        model="claude-sonnet-4-5",
        input_tokens=10,
        output_tokens=5,
        cache_read_tokens=100,
        cache_write_tokens=20,
        duration=1.5,
    )

    points = histogram_points(memory.reader, TOKEN_USAGE)
    assert len(points) == 2
    input_point = point_with(points, gen_ai__token__type="input")
    output_point = point_with(points, gen_ai__token__type="output")
    assert input_point.sum == 130  # uncached input + cache reads + cache writes
    assert input_point.count == 1
    assert output_point.sum == 5
    assert output_point.count == 1
    for point in points:
        assert attributes_of(point)["gen_ai.operation.name"] == "chat"
        assert attributes_of(point)["gen_ai.request.model"] == "claude-sonnet-4-5"
        assert attributes_of(point)["gen_ai.provider.name"] == "anthropic"
        assert attributes_of(point)["leyline.service"] == "summarizer"
        assert "error.type" not in attributes_of(point)
        assert tuple(point.explicit_bounds) == TOKEN_BUCKETS


def test_token_usage_aggregates_entries(memory: MemoryTelemetry, storage: Path) -> None:
    logger = UsageLogger("summarizer", storage)

    logger.log_usage("chat", model="gpt-5", input_tokens=300, output_tokens=40)
    logger.log_usage("chat", model="gpt-5", input_tokens=700, output_tokens=60)
    logger.log_usage("embed", model="gpt-5", input_tokens=50)

    points = histogram_points(memory.reader, TOKEN_USAGE)
    chat_input = point_with(
        points, gen_ai__operation__name="chat", gen_ai__token__type="input"
    )
    chat_output = point_with(
        points, gen_ai__operation__name="chat", gen_ai__token__type="output"
    )
    embed_input = point_with(
        points, gen_ai__operation__name="embed", gen_ai__token__type="input"
    )
    assert (chat_input.count, chat_input.sum) == (2, 1000)
    assert (chat_input.min, chat_input.max) == (300, 700)
    assert (chat_output.count, chat_output.sum) == (2, 100)
    assert (embed_input.count, embed_input.sum) == (1, 50)
    assert attributes_of(chat_input)["gen_ai.provider.name"] == "openai"
    assert not [
        point
        for point in points
        if attributes_of(point)["gen_ai.operation.name"] == "embed"
        and attributes_of(point)["gen_ai.token.type"] == "output"
    ]


def test_total_only_entry_records_no_token_usage(
    memory: MemoryTelemetry, storage: Path
) -> None:
    logger = UsageLogger("summarizer", storage)

    logger.log_usage("legacy", tokens=500, duration=2.0)

    assert histogram_points(memory.reader, TOKEN_USAGE) == []
    (record,) = memory.exporter.get_finished_logs()
    attributes = log_attributes(record)
    assert attributes["leyline.tokens"] == 500
    assert "gen_ai.usage.input_tokens" not in attributes
    assert "gen_ai.usage.output_tokens" not in attributes


def test_duration_histogram_records_seconds(
    memory: MemoryTelemetry, storage: Path
) -> None:
    logger = UsageLogger("summarizer", storage)

    logger.log_usage("chat", model="gemini-2.5-pro", input_tokens=1, duration=0.25)
    logger.log_usage("chat", model="gemini-2.5-pro", input_tokens=1, duration=3.75)

    (point,) = histogram_points(memory.reader, DURATION)
    assert point.count == 2
    assert point.sum == pytest.approx(4.0)
    assert point.min == pytest.approx(0.25)
    assert point.max == pytest.approx(3.75)
    assert tuple(point.explicit_bounds) == DURATION_BUCKETS
    assert attributes_of(point)["gen_ai.provider.name"] == "gcp.gen_ai"
    assert attributes_of(point)["gen_ai.request.model"] == "gemini-2.5-pro"
    assert "gen_ai.token.type" not in attributes_of(point)
    assert "error.type" not in attributes_of(point)


def test_zero_duration_is_not_recorded(memory: MemoryTelemetry, storage: Path) -> None:
    logger = UsageLogger("summarizer", storage)

    logger.log_usage("chat", model="gpt-5", input_tokens=10)

    assert histogram_points(memory.reader, DURATION) == []
    assert len(histogram_points(memory.reader, TOKEN_USAGE)) == 1


def test_failure_carries_error_type(memory: MemoryTelemetry, storage: Path) -> None:
    logger = UsageLogger("summarizer", storage)

    logger.log_usage("chat", model="gpt-5", input_tokens=5, duration=1.0)
    logger.log_usage(
        "chat",
        success=False,
        duration=2.0,
        error_type="RateLimitError",
        error_message="429: slow down",
        model="gpt-5",
        input_tokens=5,
    )
    logger.log_usage("chat", success=False, duration=4.0, model="gpt-5")

    points = histogram_points(memory.reader, DURATION)
    assert len(points) == 3
    rate_limited = point_with(points, error__type="RateLimitError")
    untyped = point_with(points, error__type="_OTHER")
    successes = [point for point in points if "error.type" not in attributes_of(point)]
    assert rate_limited.sum == pytest.approx(2.0)
    assert untyped.sum == pytest.approx(4.0)
    assert len(successes) == 1
    assert successes[0].sum == pytest.approx(1.0)

    records = memory.exporter.get_finished_logs()
    assert [log_attributes(r).get("error.type") for r in records] == [
        None,
        "RateLimitError",
        "_OTHER",
    ]
    assert log_attributes(records[1])["leyline.error_message"] == "429: slow down"
    assert "leyline.error_message" not in log_attributes(records[2])
    assert [r.log_record.severity_number for r in records] == [
        SeverityNumber.INFO,
        SeverityNumber.ERROR,
        SeverityNumber.ERROR,
    ]


def test_log_record_carries_usage_attributes(
    memory: MemoryTelemetry, storage: Path
) -> None:
    logger = UsageLogger("summarizer", storage, session_id="review-42")

    entry = logger.log_usage(
        "chat",
        model="claude-opus-4-5",
        input_tokens=12,
        output_tokens=340,
        cache_read_tokens=1000,
        cache_write_5m_tokens=200,
        cache_write_1h_tokens=50,
        duration=3.5,
        cost_usd=0.0125,
        metadata={"ticket": "private"},
    )

    assert entry is not None
    (record,) = memory.exporter.get_finished_logs()
    assert record.log_record.event_name == EVENT_NAME
    assert record.log_record.timestamp == timestamp_nanos(entry)
    assert log_attributes(record) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "claude-opus-4-5",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.conversation.id": "review-42",
        "gen_ai.usage.input_tokens": 1262,
        "gen_ai.usage.output_tokens": 340,
        "gen_ai.usage.cache_read.input_tokens": 1000,
        "gen_ai.usage.cache_creation.input_tokens": 250,
        "leyline.cache_write_5m_tokens": 200,
        "leyline.cache_write_1h_tokens": 50,
        "leyline.service": "summarizer",
        "leyline.tokens": 1602,
        "leyline.duration_seconds": 3.5,
        "leyline.cost_usd": 0.0125,
        "leyline.entry.id": entry["id"],
    }


def test_log_record_without_model(memory: MemoryTelemetry, storage: Path) -> None:
    logger = UsageLogger("summarizer", storage)

    logger.log_usage("index", input_tokens=7)

    (record,) = memory.exporter.get_finished_logs()
    attributes = log_attributes(record)
    assert "gen_ai.request.model" not in attributes
    assert "gen_ai.provider.name" not in attributes
    assert attributes["gen_ai.usage.input_tokens"] == 7
    (point,) = histogram_points(memory.reader, TOKEN_USAGE)
    assert "gen_ai.request.model" not in attributes_of(point)
    assert "gen_ai.provider.name" not in attributes_of(point)


def test_written_entries_keep_their_timestamps(
    memory: MemoryTelemetry, storage: Path
) -> None:
    logger = UsageLogger("importer", storage)
    entry = {
        "timestamp": "2026-02-10T21:11:59.186000Z",
        "session_id": "imported-session",
        "service": "importer",
        "operation": "claude_code",
        "tokens": 30,
        "success": True,
        "duration_seconds": 0.0,
        "error_type": None,
        "error_message": None,
        "metadata": {},
        "model": "claude-opus-4-5",
        "input_tokens": 10,
        "output_tokens": 20,
        "id": "imported-1",
    }

    assert logger.write_entries([entry]) == 1

    (record,) = memory.exporter.get_finished_logs()
    assert record.log_record.timestamp == 1_770_757_919_186_000_000
    assert log_attributes(record)["gen_ai.conversation.id"] == "imported-session"
    assert log_attributes(record)["leyline.entry.id"] == "imported-1"


def test_provider_overrides_from_config(
    memory: MemoryTelemetry, storage: Path, config_file: Path
) -> None:
    config_file.write_text(
        "[plugins.otel.providers]\n"
        '"gemini-" = "gcp.vertex_ai"\n'
        '"llama-" = "aws.bedrock"\n'
    )
    logger = UsageLogger("summarizer", storage)

    logger.log_usage("chat", model="gemini-2.5-flash", output_tokens=1)
    logger.log_usage("chat", model="llama-4-maverick", output_tokens=1)
    logger.log_usage("chat", model="claude-haiku-4-5", output_tokens=1)

    points = histogram_points(memory.reader, TOKEN_USAGE)
    providers = {
        attributes_of(point)["gen_ai.request.model"]: attributes_of(point).get(
            "gen_ai.provider.name"
        )
        for point in points
    }
    assert providers == {
        "gemini-2.5-flash": "gcp.vertex_ai",
        "llama-4-maverick": "aws.bedrock",
        "claude-haiku-4-5": "anthropic",
    }


def test_missing_provider_skips_signal(storage: Path) -> None:
    # The SDK leaves InMemoryLogRecordExporter.__init__ unannotated.
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    configure_providers(logger_provider=logger_provider)
    logger = UsageLogger("summarizer", storage)

    entry = logger.log_usage("chat", model="gpt-5", input_tokens=3, duration=1.0)

    assert entry is not None
    assert len(exporter.get_finished_logs()) == 1
    assert plugin_manager().failures["otel"] == 0
    logger_provider.shutdown()
