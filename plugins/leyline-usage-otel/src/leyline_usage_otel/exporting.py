"""Build SDK providers that export over OTLP/HTTP in background threads.

Importing the SDK and the exporters costs more than the rest of the plugin
together, so the plugin imports this module only when the first entry arrives,
and processes that load plugins but log nothing never pay for it.
"""

from __future__ import annotations

import uuid

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource

from leyline_usage_otel.settings import DEFAULT_SERVICE_NAME, OtelSettings

METRICS_PATH = "/v1/metrics"
LOGS_PATH = "/v1/logs"


def build_providers(settings: OtelSettings) -> tuple[MeterProvider, LoggerProvider]:
    """Create a meter and a logger provider that send to the configured endpoint.

    Settings left unset fall back to the standard ``OTEL_EXPORTER_OTLP_*``,
    ``OTEL_METRIC_EXPORT_INTERVAL`` and ``OTEL_BLRP_*`` environment variables.
    Both providers flush and shut down at interpreter exit: the SDK registers
    that with ``atexit`` (``shutdown_on_exit``).
    """
    resource = _resource(settings.service_name)
    metric_exporter = OTLPMetricExporter(
        endpoint=_signal_url(settings.endpoint, METRICS_PATH),
        headers=settings.headers,
        timeout=settings.timeout,
    )
    interval = settings.export_interval
    reader = PeriodicExportingMetricReader(
        metric_exporter,
        export_interval_millis=None if interval is None else interval * 1000,
    )
    meter_provider = MeterProvider(metric_readers=[reader], resource=resource)

    log_exporter = OTLPLogExporter(
        endpoint=_signal_url(settings.endpoint, LOGS_PATH),
        headers=settings.headers,
        timeout=settings.timeout,
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    return meter_provider, logger_provider


def _signal_url(endpoint: str | None, path: str) -> str | None:
    # An exporter given no endpoint reads the environment variables itself.
    return None if endpoint is None else endpoint + path


def _resource(service_name: str | None) -> Resource:
    """Return the resource: ``OTEL_RESOURCE_ATTRIBUTES``, service name and instance.

    The configured service name wins over ``OTEL_SERVICE_NAME``, and without
    either the service is ``leyline-usage``. Every process gets its own
    ``service.instance.id``, because processes of one service would otherwise
    send cumulative metric streams that a backend cannot tell apart.
    """
    resource = Resource.create(
        {} if service_name is None else {SERVICE_NAME: service_name}
    )
    added: dict[str, str] = {}
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        added[SERVICE_NAME] = DEFAULT_SERVICE_NAME
    # SDK 1.45 sets an instance id itself, but 1.39 does not.
    if SERVICE_INSTANCE_ID not in resource.attributes:
        added[SERVICE_INSTANCE_ID] = str(uuid.uuid4())
    return resource.merge(Resource(added)) if added else resource
