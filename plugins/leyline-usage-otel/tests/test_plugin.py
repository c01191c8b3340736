"""Loading through the entry point, and logging that export problems never break."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from leyline_usage import UsageLogger
from leyline_usage.plugins import (
    FAILURES_FILE,
    failure_counts,
    plugin_manager,
)

from leyline_usage_otel import force_flush, pipeline


def test_loads_through_entry_point() -> None:
    manager = plugin_manager()

    info = manager.info["otel"]
    assert info.distribution == "leyline-usage-otel"
    assert info.builtin is False
    sinks = [impl[0] for impl in manager.impls("leyline_usage_sink")]
    configures = [impl[0] for impl in manager.impls("leyline_usage_configure")]
    assert "otel" in sinks
    assert "otel" in configures


def test_not_loaded_when_plugins_restricted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEYLINE_USAGE_PLUGINS", "none")

    manager = plugin_manager()

    assert "otel" not in manager.info
    assert "otel" in manager.load_report.skipped


def test_unreachable_endpoint_never_raises(
    unused_endpoint: str, config_file: Path, storage: Path
) -> None:
    config_file.write_text(
        f'[plugins.otel]\nendpoint = "{unused_endpoint}"\ntimeout = 1\n'
    )
    logger = UsageLogger("reviewer", storage)

    started = time.monotonic()
    entries = [
        logger.log_usage("chat", model="gpt-5", input_tokens=n, duration=0.1)
        for n in range(1, 51)
    ]
    logging_seconds = time.monotonic() - started

    assert all(entry is not None for entry in entries)
    assert len(logger.get_recent_operations()) == 50
    assert plugin_manager().failures["otel"] == 0
    # The exporters send from their own threads, so logging never waits for
    # the network: 50 entries take far less than one exporter timeout.
    assert logging_seconds < 1.0

    started = time.monotonic()
    force_flush(timeout_seconds=5)
    assert time.monotonic() - started < 10


def test_invalid_settings_fail_the_sink_only(
    config_file: Path, storage: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config_file.write_text('[plugins.otel]\nendpoint = "127.0.0.1:4318"\n')
    logger = UsageLogger("reviewer", storage)

    entry = logger.log_usage("chat", model="gpt-5", input_tokens=1)

    assert entry is not None
    assert len(logger.get_recent_operations()) == 1
    assert plugin_manager().failures["otel"] == 1
    assert failure_counts(storage)["otel"] == 1
    recorded = (storage / FAILURES_FILE).read_text()
    assert "SettingsError" in recorded
    assert "plugins.otel.endpoint" in recorded
    warnings = [
        r.getMessage() for r in caplog.records if r.name == "leyline_usage.otel"
    ]
    assert len(warnings) == 1
    assert "OpenTelemetry export is off" in warnings[0]
    assert str(config_file) in warnings[0]


def test_unparsable_config_file_fails_the_sink(
    config_file: Path, storage: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config_file.write_text('[plugins.otel]\nendpoint = "http://127.0.0.1:4318\n')
    logger = UsageLogger("reviewer", storage)

    entry = logger.log_usage("chat", model="gpt-5", input_tokens=1)

    assert entry is not None
    assert plugin_manager().failures["otel"] == 1
    warnings = [
        r.getMessage() for r in caplog.records if r.name == "leyline_usage.otel"
    ]
    assert len(warnings) == 1
    assert "invalid TOML" in warnings[0]


def test_no_endpoint_exports_nothing(config_file: Path, storage: Path) -> None:
    config_file.write_text("[plugins.otel]\ntimeout = 1\n")
    logger = UsageLogger("reviewer", storage)

    entry = logger.log_usage("chat", model="gpt-5", input_tokens=5, duration=0.1)

    assert entry is not None
    assert pipeline._pipeline.recorder is None
    assert plugin_manager().failures["otel"] == 0
