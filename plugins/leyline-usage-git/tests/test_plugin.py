"""Loading through the entry point, and the ``[plugins.git]`` settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import log_metadata
from leyline_usage.plugins import plugin_manager

from leyline_usage_git import plugin


def test_plugin_found_through_entry_point() -> None:
    info = plugin_manager().info["git"]

    assert info.distribution == "leyline-usage-git"
    assert info.builtin is False
    assert plugin_manager().get_plugin("git") is plugin


def test_plugin_skipped_when_not_listed(
    repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEYLINE_USAGE_PLUGINS", "none")

    metadata = log_metadata()

    assert "git" not in plugin_manager().info
    assert "git" not in metadata


def test_plugin_skipped_when_disabled(
    repository: Path, write_config: Callable[[str], None]
) -> None:
    write_config('[plugins]\ndisabled = ["git"]\n')

    metadata = log_metadata()

    assert "git" not in plugin_manager().info
    assert "git" not in metadata


def test_default_settings() -> None:
    plugin_manager()

    assert plugin._cache.refresh_seconds == 1.0
    assert plugin._cache.include_remote is True


def test_settings_applied(write_config: Callable[[str], None]) -> None:
    write_config("[plugins.git]\nrefresh_seconds = 2.5\ninclude_remote = false\n")

    plugin_manager()

    assert plugin._cache.refresh_seconds == 2.5
    assert plugin._cache.include_remote is False


@pytest.mark.parametrize("value", ["-1", "nan", "inf", '"5"', "true"])
def test_invalid_refresh_seconds_warns(
    write_config: Callable[[str], None],
    caplog: pytest.LogCaptureFixture,
    value: str,
) -> None:
    write_config(f"[plugins.git]\nrefresh_seconds = {value}\n")

    with caplog.at_level(logging.WARNING, logger="leyline_usage.git"):
        plugin_manager()

    assert plugin._cache.refresh_seconds == 1.0
    assert "refresh_seconds must be a non-negative number" in caplog.text
    assert "config.toml: [plugins.git]" in caplog.text


def test_invalid_include_remote_warns(
    write_config: Callable[[str], None], caplog: pytest.LogCaptureFixture
) -> None:
    write_config('[plugins.git]\ninclude_remote = "no"\n')

    with caplog.at_level(logging.WARNING, logger="leyline_usage.git"):
        plugin_manager()

    assert plugin._cache.include_remote is True
    assert "include_remote must be true or false, got 'no'" in caplog.text


def test_unknown_setting_warns(
    write_config: Callable[[str], None], caplog: pytest.LogCaptureFixture
) -> None:
    write_config("[plugins.git]\nrefresh_second = 5\n")

    with caplog.at_level(logging.WARNING, logger="leyline_usage.git"):
        plugin_manager()

    assert "ignoring unknown settings refresh_second." in caplog.text
