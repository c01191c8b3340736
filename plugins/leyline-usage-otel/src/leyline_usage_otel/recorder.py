"""Record entries as GenAI metrics and log records on given OpenTelemetry providers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry._logs import Logger, LoggerProvider, SeverityNumber
from opentelemetry.metrics import Histogram, MeterProvider

from leyline_usage_otel import attributes
from leyline_usage_otel.version import __version__

INSTRUMENTATION_SCOPE = "leyline_usage_otel"
TOKEN_USAGE = "gen_ai.client.token.usage"
OPERATION_DURATION = "gen_ai.client.operation.duration"
# Not a GenAI convention name: the record carries the convention's usage
# attributes, but describes a logged entry, not a model request's content.
EVENT_NAME = "leyline.usage.entry"

# Histogram bucket boundaries that the GenAI metric conventions specify.
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
    16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
    40.96, 81.92,
)  # fmt: skip


class Recorder:
    """Histograms and a logger created from one meter and one logger provider.

    Either provider may be None, and that signal is then not recorded.
    """

    def __init__(
        self,
        meter_provider: MeterProvider | None,
        logger_provider: LoggerProvider | None,
    ) -> None:
        self._token_usage: Histogram | None = None
        self._duration: Histogram | None = None
        self._logger: Logger | None = None
        if meter_provider is not None:
            meter = meter_provider.get_meter(INSTRUMENTATION_SCOPE, __version__)
            self._token_usage = meter.create_histogram(
                TOKEN_USAGE,
                unit="{token}",
                description="Input and output tokens of an operation.",
                explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
            )
            self._duration = meter.create_histogram(
                OPERATION_DURATION,
                unit="s",
                description="Duration of an operation.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )
        if logger_provider is not None:
            self._logger = logger_provider.get_logger(
                INSTRUMENTATION_SCOPE, __version__
            )

    def record(
        self, entries: Iterable[Mapping[str, Any]], providers: Mapping[str, str]
    ) -> None:
        """Record each entry's metrics and log record.

        ``providers`` maps model id prefixes to ``gen_ai.provider.name`` values.
        """
        for entry in entries:
            common = attributes.common_attributes(entry, providers)
            self._record_metrics(entry, common)
            self._emit_log_record(entry, common)

    def _record_metrics(
        self, entry: Mapping[str, Any], common: Mapping[str, str]
    ) -> None:
        if self._token_usage is not None:
            for token_type, count in (
                ("input", attributes.input_tokens(entry)),
                ("output", attributes.output_tokens(entry)),
            ):
                if count is not None:
                    self._token_usage.record(
                        count, {**common, attributes.TOKEN_TYPE: token_type}
                    )
        seconds = attributes.duration_seconds(entry)
        if self._duration is not None and seconds is not None:
            failure = attributes.error_type(entry)
            if failure is None:
                self._duration.record(seconds, common)
            else:
                self._duration.record(
                    seconds, {**common, attributes.ERROR_TYPE: failure}
                )

    def _emit_log_record(
        self, entry: Mapping[str, Any], common: Mapping[str, str]
    ) -> None:
        if self._logger is None:
            return
        failed = entry.get("success") is False
        self._logger.emit(
            timestamp=attributes.timestamp_nanos(entry),
            severity_number=SeverityNumber.ERROR if failed else SeverityNumber.INFO,
            severity_text="ERROR" if failed else "INFO",
            attributes=attributes.log_attributes(entry, common),
            event_name=EVENT_NAME,
        )
