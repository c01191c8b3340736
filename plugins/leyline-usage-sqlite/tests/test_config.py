"""The [plugins.sqlite] table of the config file."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import count_rows, log_lines, plugin_failures
from leyline_usage import UsageLogger


def write_config(tmp_path: Path, text: str) -> None:
    (tmp_path / "config.toml").write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("setting", "location"),
    [
        ("mirror.sqlite3", "config/mirror.sqlite3"),
        ("nested/dir/mirror.sqlite3", "config/nested/dir/mirror.sqlite3"),
        ("~/mirror.sqlite3", "home/mirror.sqlite3"),
        ("{tmp}/absolute/mirror.sqlite3", "absolute/mirror.sqlite3"),
    ],
    ids=["relative", "new directory", "home", "absolute"],
)
def test_path_setting_honoured(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    database: Path,
    setting: str,
    location: str,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = tmp_path / "config" / "config.toml"
    config.parent.mkdir()
    config.write_text(
        f'[plugins.sqlite]\npath = "{setting.format(tmp=tmp_path)}"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("LEYLINE_USAGE_CONFIG", str(config))

    UsageLogger("summarizer", storage_dir=tmp_path).log_usage("step", tokens=1)

    assert count_rows(tmp_path / location) == 1
    assert not database.exists()
    assert plugin_failures(tmp_path) == []


def test_path_setting_shared_by_storage_dirs(tmp_path: Path) -> None:
    write_config(tmp_path, '[plugins.sqlite]\npath = "all.sqlite3"\n')

    UsageLogger("a", storage_dir=tmp_path / "one").log_usage("step", tokens=1)
    UsageLogger("b", storage_dir=tmp_path / "two").log_usage("step", tokens=1)

    assert count_rows(tmp_path / "all.sqlite3") == 2


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("path = 5", "plugins.sqlite.path: must be a non-empty string"),
        ('path = ""', "plugins.sqlite.path: must be a non-empty string"),
        ('pth = "mirror.sqlite3"', "unknown setting 'pth'"),
    ],
    ids=["number", "empty", "misspelled key"],
)
def test_invalid_setting_stops_copying(
    tmp_path: Path, database: Path, table: str, message: str
) -> None:
    write_config(tmp_path, f"[plugins.sqlite]\n{table}\n")

    UsageLogger("summarizer", storage_dir=tmp_path).log_usage("step", tokens=1)

    assert len(log_lines(tmp_path / "summarizer.jsonl")) == 1
    assert not database.exists()
    [failure] = plugin_failures(tmp_path)
    assert failure["plugin"] == "sqlite"
    assert failure["error_type"] == "ConfigError"
    assert message in failure["error_message"]
    assert str(tmp_path / "config.toml") in failure["error_message"]


def test_malformed_config_stops_copying(tmp_path: Path, database: Path) -> None:
    write_config(tmp_path, "[plugins.sqlite\n")

    UsageLogger("summarizer", storage_dir=tmp_path).log_usage("step", tokens=1)

    assert len(log_lines(tmp_path / "summarizer.jsonl")) == 1
    assert not database.exists()
    [failure] = plugin_failures(tmp_path)
    assert "invalid TOML" in failure["error_message"]
