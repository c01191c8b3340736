"""Opening the database and turning entries into rows."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import orjson
import pytest
from conftest import read_rows

from leyline_usage_sqlite import connect
from leyline_usage_sqlite.database import entry_row, insert_rows


def hold_read_lock(database: Path) -> sqlite3.Connection:
    """Open a rollback-journal database and keep a read transaction open on it."""
    connection = sqlite3.connect(
        database, isolation_level=None, check_same_thread=False
    )
    connection.execute("CREATE TABLE IF NOT EXISTS other (x)")
    connection.execute("BEGIN")
    connection.execute("SELECT count(*) FROM other").fetchone()
    return connection


def test_connect_waits_for_wal_switch(database: Path) -> None:
    """Switching to WAL waits while another connection reads, as on first use."""
    reader = hold_read_lock(database)
    timer = threading.Timer(0.2, reader.execute, args=("COMMIT",))
    timer.start()

    start = time.monotonic()
    connection = connect(database)
    waited = time.monotonic() - start
    timer.join()

    mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    connection.close()
    reader.close()
    assert mode == "wal"
    assert waited >= 0.15


def test_connect_busy_timeout_expires(database: Path) -> None:
    reader = hold_read_lock(database)

    start = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        connect(database, busy_timeout=0.3)
    waited = time.monotonic() - start

    reader.close()
    assert 0.2 <= waited < 5


def test_values_sqlite_cannot_store(database: Path) -> None:
    """Lists and integers beyond signed 64 bits are stored as text or REAL."""
    line = orjson.dumps(
        {
            "id": ["list", "id"],
            "timestamp": "2026-01-01T00:00:00.000000Z",
            "tokens": (1 << 64) - 1,
            "model": {"name": "m"},
            "metadata": None,
        }
    )
    connection = connect(database)

    written = insert_rows(connection, [entry_row(orjson.loads(line), line)])
    connection.close()

    [row] = read_rows(database)
    assert written == 1
    assert row["id"] == '["list","id"]'
    assert row["tokens"] == float((1 << 64) - 1)
    assert row["model"] == '{"name":"m"}'
    assert row["metadata"] is None
    assert row["raw"] == line.decode()
