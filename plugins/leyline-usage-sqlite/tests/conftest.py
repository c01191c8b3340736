"""Fixtures and helpers: a private storage directory, config file and plugins."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from leyline_usage.plugins import reset_plugin_manager

from leyline_usage_sqlite import DEFAULT_FILENAME, close_connections

COMMAND = Path(sys.executable).parent / "leyline-usage-sqlite"


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    """Load this plugin alone, with its config file and storage in ``tmp_path``.

    Spawned processes and the command inherit these variables.
    """
    monkeypatch.setenv("LEYLINE_USAGE_PLUGINS", "sqlite")
    monkeypatch.setenv("LEYLINE_USAGE_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("LEYLINE_USAGE_DIR", str(tmp_path))
    monkeypatch.delenv("LEYLINE_SESSION_ID", raising=False)
    reset_plugin_manager()
    yield
    close_connections()
    reset_plugin_manager()


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """The default database of the storage directory ``tmp_path``."""
    return tmp_path / DEFAULT_FILENAME


def read_rows(database: Path, order: str = "timestamp, id") -> list[dict[str, Any]]:
    """Return every row of the entries table, read through a new connection."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    try:
        rows = connection.execute(f"SELECT * FROM entries ORDER BY {order}")
        return [dict(row) for row in rows]
    finally:
        connection.close()


def count_rows(database: Path) -> int:
    """Return the number of rows in the entries table."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        count: int = connection.execute("SELECT count(*) FROM entries").fetchone()[0]
        return count
    finally:
        connection.close()


def log_lines(path: Path) -> list[bytes]:
    """Return the lines of a JSONL log, without line endings."""
    return path.read_bytes().splitlines()


def log_entries(path: Path) -> list[dict[str, Any]]:
    """Return the entries of a JSONL log, in file order."""
    return [orjson.loads(line) for line in log_lines(path)]


def plugin_failures(storage_dir: Path) -> list[dict[str, Any]]:
    """Return the plugin failures leyline-usage recorded in ``storage_dir``."""
    path = storage_dir / ".plugin-failures.jsonl"
    if not path.exists():
        return []
    return log_entries(path)


def run_command(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """Run the installed ``leyline-usage-sqlite`` command in a new process."""
    return subprocess.run(
        [str(COMMAND), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
