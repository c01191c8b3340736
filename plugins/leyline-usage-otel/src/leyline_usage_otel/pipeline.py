"""The process-wide pipeline: current settings, providers and recorder.

By default the pipeline builds its own OTLP/HTTP providers from the settings,
when the first entry arrives. :func:`configure_providers` replaces them with
providers the caller owns, such as the application's global ones or the SDK's
in-memory readers and exporters in tests.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from leyline_usage_otel.recorder import Recorder
from leyline_usage_otel.settings import OtelSettings

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.sdk._logs import LoggerProvider as SdkLoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider

_log = logging.getLogger("leyline_usage.otel")


class SettingsError(ValueError):
    """The ``[plugins.otel]`` table is invalid, so nothing is exported."""


class _Pipeline:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.settings = OtelSettings()
        self.settings_error: str | None = None
        # Providers built from the settings, which this module shuts down.
        self.owned: tuple[SdkMeterProvider, SdkLoggerProvider] | None = None
        # Providers given to configure_providers, which their caller shuts down.
        self.injected: tuple[MeterProvider | None, LoggerProvider | None] | None = None
        self.recorder: Recorder | None = None


_pipeline = _Pipeline()


def apply_settings(settings: OtelSettings, error: str | None = None) -> None:
    """Use new settings, or remember why they are invalid.

    OTLP providers built from different settings are flushed and shut down,
    and the next entry builds new ones. Providers given to
    :func:`configure_providers` stay.
    """
    with _pipeline.lock:
        if settings == _pipeline.settings and error == _pipeline.settings_error:
            return
        _pipeline.settings = settings
        _pipeline.settings_error = error
        owned = _detach_owned()
    _shut_down(owned)


def record(entries: Sequence[Mapping[str, Any]]) -> None:
    """Record entries as metrics and log records, building providers on first use.

    Raises SettingsError while the ``[plugins.otel]`` table is invalid.
    """
    with _pipeline.lock:
        if _pipeline.settings_error is not None:
            raise SettingsError(_pipeline.settings_error)
        if _pipeline.recorder is None:
            if not _endpoint_configured(_pipeline.settings):
                # Installed but not pointed anywhere: exporting to the OTLP
                # default (localhost:4318) would make every short-lived
                # process wait for a collector that is not there.
                return
            _pipeline.recorder = _build_owned_recorder(_pipeline.settings)
        recorder = _pipeline.recorder
        providers = _pipeline.settings.providers
    recorder.record(entries, providers)


_ENDPOINT_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
)


def _endpoint_configured(settings: OtelSettings) -> bool:
    if settings.endpoint is not None:
        return True
    return any(os.environ.get(name) for name in _ENDPOINT_VARIABLES)


def configure_providers(
    *,
    meter_provider: MeterProvider | None = None,
    logger_provider: LoggerProvider | None = None,
) -> None:
    """Send entries to these providers in place of the plugin's OTLP exporters.

    A signal whose provider is None is not recorded. The caller keeps
    ownership: the plugin neither flushes nor shuts these providers down,
    except through :func:`force_flush`. OTLP providers the plugin had built
    are flushed and shut down. :func:`reset_providers` undoes this.
    """
    with _pipeline.lock:
        owned = _detach_owned()
        _pipeline.injected = (meter_provider, logger_provider)
        _pipeline.recorder = Recorder(meter_provider, logger_provider)
    _shut_down(owned)


def reset_providers() -> None:
    """Forget providers given to :func:`configure_providers` and shut down OTLP ones.

    The next entry builds new OTLP providers from the current settings.
    """
    with _pipeline.lock:
        owned = _detach_owned()
        _pipeline.injected = None
        _pipeline.recorder = None
    _shut_down(owned)


def force_flush(timeout_seconds: float = 10.0) -> bool:
    """Export what the providers in use hold now, blocking until the exports end.

    Applies to the plugin's OTLP providers and to SDK providers given to
    :func:`configure_providers`. Returns False if a provider was shut down or
    did not finish within ``timeout_seconds``. An export that failed still
    returns True, because the SDK reports those through its own logging. The
    SDK's batch log processor ignores the timeout, so the exporter's request
    timeout bounds that wait.
    """
    with _pipeline.lock:
        providers: Sequence[object] = _pipeline.owned or _pipeline.injected or ()
    flushed = True
    for provider in providers:
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flushed = bool(flush(timeout_millis=timeout_seconds * 1000)) and flushed
    return flushed


def _build_owned_recorder(settings: OtelSettings) -> Recorder:
    # Imported here: the SDK and exporters load only once an entry needs them.
    from leyline_usage_otel.exporting import build_providers

    meter_provider, logger_provider = build_providers(settings)
    _pipeline.owned = (meter_provider, logger_provider)
    _log.debug(
        "exporting to %s over OTLP/HTTP",
        settings.endpoint or "the OTEL_EXPORTER_OTLP_* endpoint",
    )
    return Recorder(meter_provider, logger_provider)


def _detach_owned() -> tuple[SdkMeterProvider, SdkLoggerProvider] | None:
    """Take the OTLP providers out of the pipeline. The caller holds the lock."""
    owned = _pipeline.owned
    if owned is not None:
        _pipeline.owned = None
        if _pipeline.injected is None:
            _pipeline.recorder = None
    return owned


def _shut_down(owned: tuple[SdkMeterProvider, SdkLoggerProvider] | None) -> None:
    # Outside the lock: with the collector unreachable, the final export waits
    # up to the exporter timeout.
    if owned is None:
        return
    meter_provider, logger_provider = owned
    meter_provider.shutdown()
    logger_provider.shutdown()
    _log.debug("shut down the OTLP meter and logger providers")
