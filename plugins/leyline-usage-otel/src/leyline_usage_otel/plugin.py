"""The leyline-usage hooks, registered as the ``otel`` entry point."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from leyline_usage import Config, hookimpl

from leyline_usage_otel import pipeline
from leyline_usage_otel.settings import SETTINGS_NAME, OtelSettings, parse_settings

_log = logging.getLogger("leyline_usage.otel")


@hookimpl
def leyline_usage_configure(config: Config) -> None:
    """Read the ``[plugins.otel]`` settings, or stop the export if they are invalid.

    The error is logged here and raised by every sink call, so the core counts
    it as a plugin failure. It is not raised here, because an exception in
    one plugin's configure hook would keep the plugins after it from reading
    their settings.
    """
    if config.error is not None:
        # The file did not parse, so the endpoint and headers it sets are unknown.
        _disable(config.error)
        return
    try:
        settings = parse_settings(config.plugin_settings(SETTINGS_NAME))
    except ValueError as exc:
        _disable(f"{config.path or 'config file'}: {exc}")
        return
    pipeline.apply_settings(settings)


@hookimpl
def leyline_usage_sink(entries: Sequence[dict[str, Any]], storage_dir: Path) -> None:
    """Record the entries as GenAI metrics and log records for batched export."""
    pipeline.record(entries)


def _disable(error: str) -> None:
    _log.warning("OpenTelemetry export is off: %s", error)
    pipeline.apply_settings(OtelSettings(), error)
