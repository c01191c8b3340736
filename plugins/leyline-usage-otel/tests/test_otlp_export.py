"""Export over OTLP/HTTP to a receiver on 127.0.0.1 that decodes the protobuf bodies."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from leyline_usage import UsageLogger
from leyline_usage.plugins import plugin_manager
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from conftest import OtlpReceiver
from leyline_usage_otel import force_flush

TOKEN_USAGE = "gen_ai.client.token.usage"
DURATION = "gen_ai.client.operation.duration"


@dataclass
class Point:
    """A histogram data point as decoded from an OTLP request."""

    metric: str
    unit: str
    attributes: dict[str, Any]
    count: int
    sum: float
    bounds: tuple[float, ...]


@dataclass
class Record:
    """A log record as decoded from an OTLP request."""

    event_name: str
    time_unix_nano: int
    severity_text: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


def plain(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


def attribute_dict(pairs: Any) -> dict[str, Any]:
    items: list[KeyValue] = list(pairs)
    return {pair.key: plain(pair.value) for pair in items}


def decode_points(receiver: OtlpReceiver) -> list[Point]:
    """Return every histogram point of the last metrics request.

    The exporter sends cumulative totals, so the last request contains them all.
    """
    bodies = receiver.bodies("/v1/metrics")
    assert bodies, "the receiver got no metrics request"
    request = ExportMetricsServiceRequest.FromString(bodies[-1])
    points = []
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                assert metric.WhichOneof("data") == "histogram", metric.name
                for point in metric.histogram.data_points:
                    points.append(
                        Point(
                            metric.name,
                            metric.unit,
                            attribute_dict(point.attributes),
                            point.count,
                            point.sum,
                            tuple(point.explicit_bounds),
                        )
                    )
    return points


def decode_records(receiver: OtlpReceiver) -> list[Record]:
    """Return every log record of every logs request, in arrival order."""
    records = []
    for body in receiver.bodies("/v1/logs"):
        request = ExportLogsServiceRequest.FromString(body)
        for resource_logs in request.resource_logs:
            resource = attribute_dict(resource_logs.resource.attributes)
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    records.append(
                        Record(
                            record.event_name,
                            record.time_unix_nano,
                            record.severity_text,
                            attribute_dict(record.attributes),
                            resource,
                        )
                    )
    return records


def test_export_reaches_receiver(
    otlp_receiver: OtlpReceiver, config_file: Path, storage: Path
) -> None:
    config_file.write_text(f'[plugins.otel]\nendpoint = "{otlp_receiver.endpoint}"\n')
    logger = UsageLogger("reviewer", storage, session_id="pr-review")

    logger.log_usage(
        "chat",
        model="claude-sonnet-4-5",
        input_tokens=40,
        output_tokens=900,
        cache_read_tokens=2000,
        cache_write_tokens=60,
        duration=2.5,
    )
    logger.log_usage(
        "chat",
        success=False,
        duration=0.5,
        error_type="APITimeoutError",
        model="claude-sonnet-4-5",
        input_tokens=100,
    )
    assert force_flush()

    assert plugin_manager().failures["otel"] == 0
    paths = {request.path for request in otlp_receiver.requests}
    assert paths == {"/v1/metrics", "/v1/logs"}
    for request in otlp_receiver.requests:
        assert request.headers["content-type"] == "application/x-protobuf"

    points = decode_points(otlp_receiver)
    tokens = {
        p.attributes["gen_ai.token.type"]: p for p in points if p.metric == TOKEN_USAGE
    }
    assert set(tokens) == {"input", "output"}
    assert (tokens["input"].count, tokens["input"].sum) == (2, 2200)
    assert (tokens["output"].count, tokens["output"].sum) == (1, 900)
    assert tokens["input"].unit == "{token}"
    assert tokens["input"].bounds[:3] == (1, 4, 16)
    for point in tokens.values():
        assert point.attributes == {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.token.type": point.attributes["gen_ai.token.type"],
            "leyline.service": "reviewer",
        }

    durations = {
        p.attributes.get("error.type"): p for p in points if p.metric == DURATION
    }
    assert set(durations) == {None, "APITimeoutError"}
    assert durations[None].sum == pytest.approx(2.5)
    assert durations["APITimeoutError"].sum == pytest.approx(0.5)
    assert durations[None].unit == "s"

    records = decode_records(otlp_receiver)
    assert len(records) == 2
    success, failure = records
    assert success.event_name == "leyline.usage.entry"
    assert success.severity_text == "INFO"
    assert success.resource["service.name"] == "leyline-usage"
    assert success.resource["service.instance.id"]
    assert success.attributes["gen_ai.conversation.id"] == "pr-review"
    assert success.attributes["gen_ai.usage.input_tokens"] == 2100
    assert success.attributes["gen_ai.usage.output_tokens"] == 900
    assert success.attributes["gen_ai.usage.cache_read.input_tokens"] == 2000
    assert success.attributes["gen_ai.usage.cache_creation.input_tokens"] == 60
    assert success.attributes["leyline.cost_usd"] > 0
    assert success.time_unix_nano > 0
    assert "error.type" not in success.attributes
    assert failure.severity_text == "ERROR"
    assert failure.attributes["error.type"] == "APITimeoutError"
    assert failure.attributes["gen_ai.usage.input_tokens"] == 100


def test_config_sets_headers_and_service_name(
    otlp_receiver: OtlpReceiver, config_file: Path, storage: Path
) -> None:
    config_file.write_text(
        "[plugins.otel]\n"
        f'endpoint = "{otlp_receiver.endpoint}/"\n'
        'service_name = "review-bot"\n'
        'headers = { "x-collector-tenant" = "team-a" }\n'
    )
    logger = UsageLogger("reviewer", storage)

    logger.log_usage("chat", model="gpt-5", input_tokens=1, output_tokens=1)
    assert force_flush()

    assert len(otlp_receiver.requests) == 2
    for request in otlp_receiver.requests:
        assert request.headers["x-collector-tenant"] == "team-a"
    (record,) = decode_records(otlp_receiver)
    assert record.resource["service.name"] == "review-bot"


def test_environment_endpoint_without_config(
    otlp_receiver: OtlpReceiver, storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-environment")
    logger = UsageLogger("reviewer", storage)

    logger.log_usage("chat", model="o3", input_tokens=8, output_tokens=2)
    assert force_flush()

    points = decode_points(otlp_receiver)
    assert {p.attributes["gen_ai.provider.name"] for p in points} == {"openai"}
    (record,) = decode_records(otlp_receiver)
    assert record.resource["service.name"] == "from-environment"


def test_config_endpoint_wins_over_environment(
    otlp_receiver: OtlpReceiver,
    unused_endpoint: str,
    config_file: Path,
    storage: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", unused_endpoint)
    config_file.write_text(f'[plugins.otel]\nendpoint = "{otlp_receiver.endpoint}"\n')
    logger = UsageLogger("reviewer", storage)

    logger.log_usage("chat", model="gpt-5", input_tokens=1)
    assert force_flush()

    assert len(decode_records(otlp_receiver)) == 1


def test_sdk_disabled_sends_nothing(
    otlp_receiver: OtlpReceiver,
    config_file: Path,
    storage: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    config_file.write_text(f'[plugins.otel]\nendpoint = "{otlp_receiver.endpoint}"\n')
    logger = UsageLogger("reviewer", storage)

    entry = logger.log_usage("chat", model="gpt-5", input_tokens=1, duration=1.0)
    force_flush()

    assert entry is not None
    assert plugin_manager().failures["otel"] == 0
    assert otlp_receiver.requests == []


def test_exit_flushes_queued_entries(
    otlp_receiver: OtlpReceiver, config_file: Path, storage: Path
) -> None:
    config_file.write_text(f'[plugins.otel]\nendpoint = "{otlp_receiver.endpoint}"\n')
    script = (
        "from leyline_usage import UsageLogger\n"
        f"logger = UsageLogger('reviewer', {str(storage)!r})\n"
        "logger.log_usage('chat', model='gpt-5', input_tokens=3, output_tokens=4)\n"
    )

    # A new interpreter that logs one entry and exits without flushing.
    subprocess.run(
        [sys.executable, "-c", script], env=dict(os.environ), check=True, timeout=60
    )

    (record,) = decode_records(otlp_receiver)
    assert record.attributes["gen_ai.usage.output_tokens"] == 4
    points = decode_points(otlp_receiver)
    assert sorted(p.sum for p in points) == [3, 4]
