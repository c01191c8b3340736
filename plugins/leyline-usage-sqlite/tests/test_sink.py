"""The sink: entries logged through leyline-usage land in the database."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sqlite3
import stat
import threading
import time
from pathlib import Path

import orjson
import pytest
from conftest import count_rows, log_entries, log_lines, plugin_failures, read_rows
from leyline_usage import UsageLogger
from leyline_usage.plugins import plugin_manager, reset_plugin_manager
from sqlite_workers import log_numbered

import leyline_usage_sqlite.plugin
from leyline_usage_sqlite import SchemaVersionError, connect
from leyline_usage_sqlite.database import ENTRY_COLUMNS


def test_logged_entry_fills_every_column(tmp_path: Path, database: Path) -> None:
    logger = UsageLogger("summarizer", storage_dir=tmp_path)

    entry = logger.log_usage(
        "summarize",
        model="claude-sonnet-4-5",
        input_tokens=1200,
        output_tokens=300,
        cache_read_tokens=5000,
        cache_write_5m_tokens=100,
        cache_write_1h_tokens=50,
        duration=2.5,
        metadata={"files": 3, "paths": ["a.py", "b.py"]},
    )

    assert entry is not None
    [row] = read_rows(database)
    [line] = log_lines(tmp_path / "summarizer.jsonl")
    assert row["id"] == entry["id"]
    assert row["service"] == "summarizer"
    assert row["operation"] == "summarize"
    assert row["model"] == "claude-sonnet-4-5"
    assert row["tokens"] == 1200 + 300 + 5000 + 150
    assert row["success"] == 1
    assert row["duration_seconds"] == 2.5
    assert row["error_type"] is None
    assert row["cache_write_tokens"] == 150
    assert row["cost_usd"] == pytest.approx(entry["cost_usd"])
    assert orjson.loads(row["metadata"]) == {"files": 3, "paths": ["a.py", "b.py"]}
    assert row["raw"] == line.decode()
    logged = orjson.loads(line)
    for column in ENTRY_COLUMNS:
        assert row[column] == logged[column], column


def test_failed_entry_columns(tmp_path: Path, database: Path) -> None:
    logger = UsageLogger("summarizer", storage_dir=tmp_path)

    logger.log_usage(
        "summarize",
        tokens=10,
        success=False,
        error_type="TimeoutError",
        error_message="request timed out after 30s",
    )

    [row] = read_rows(database)
    assert row["success"] == 0
    assert row["error_type"] == "TimeoutError"
    assert row["error_message"] == "request timed out after 30s"
    assert row["tokens"] == 10
    assert row["model"] is None
    assert row["input_tokens"] is None
    assert row["cost_usd"] is None
    assert row["metadata"] == "{}"


def test_metadata_matches_log(tmp_path: Path, database: Path) -> None:
    """Values JSON cannot encode are strings in the database, as in the log."""
    logger = UsageLogger("summarizer", storage_dir=tmp_path)

    logger.log_usage("summarize", metadata={"path": tmp_path, "tags": {"b", "a"}})

    [row] = read_rows(database)
    [logged] = log_entries(tmp_path / "summarizer.jsonl")
    assert orjson.loads(row["metadata"]) == logged["metadata"]
    assert orjson.loads(row["metadata"])["path"] == str(tmp_path)


def test_metadata_queryable_as_json(tmp_path: Path, database: Path) -> None:
    logger = UsageLogger("summarizer", storage_dir=tmp_path)
    logger.log_usage("summarize", metadata={"files": 3})
    logger.log_usage("summarize", metadata={"files": 4})

    connection = sqlite3.connect(database)
    total = connection.execute(
        "SELECT sum(json_extract(metadata, '$.files')) FROM entries"
    ).fetchone()[0]
    connection.close()

    assert total == 7


def test_write_entries_batch(tmp_path: Path, database: Path) -> None:
    source = UsageLogger("source", storage_dir=tmp_path / "elsewhere")
    entries = [source.log_usage("step", tokens=n) for n in range(50)]
    logger = UsageLogger("imported", storage_dir=tmp_path)

    written = logger.write_entries([e for e in entries if e is not None])

    assert written == 50
    assert count_rows(database) == 50


def test_replayed_entries_add_nothing(tmp_path: Path, database: Path) -> None:
    logger = UsageLogger("summarizer", storage_dir=tmp_path)
    for number in range(20):
        logger.log_usage("step", tokens=number)
    before = read_rows(database)
    entries = log_entries(tmp_path / "summarizer.jsonl")

    plugin_manager().hook.leyline_usage_sink(entries=entries, storage_dir=tmp_path)
    logger.write_entries(entries)

    assert len(log_lines(tmp_path / "summarizer.jsonl")) == 40
    assert read_rows(database) == before


def test_entry_without_id_gets_line_hash(tmp_path: Path, database: Path) -> None:
    logger = UsageLogger("old", storage_dir=tmp_path)
    entry = logger.log_usage("step", tokens=1)
    assert entry is not None
    del entry["id"]
    other = UsageLogger("legacy", storage_dir=tmp_path)

    other.write_entries([entry])

    [line] = log_lines(tmp_path / "legacy.jsonl")
    expected = "sha256:" + hashlib.sha256(line).hexdigest()
    ids = [row["id"] for row in read_rows(database)]
    assert expected in ids


def test_plugin_found_through_entry_point() -> None:
    manager = plugin_manager()

    info = manager.info["sqlite"]

    assert info.builtin is False
    assert info.distribution == "leyline-usage-sqlite"
    assert manager.get_plugin("sqlite") is leyline_usage_sqlite.plugin
    for hook in (manager.hook.leyline_usage_sink, manager.hook.leyline_usage_configure):
        assert "sqlite" in [impl.plugin_name for impl in hook.get_hookimpls()]


def test_plugin_not_loaded_when_excluded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database: Path
) -> None:
    monkeypatch.setenv("LEYLINE_USAGE_PLUGINS", "none")
    reset_plugin_manager()

    UsageLogger("summarizer", storage_dir=tmp_path).log_usage("step", tokens=1)

    assert "sqlite" not in plugin_manager().info
    assert "sqlite" in plugin_manager().load_report.skipped
    assert not database.exists()


def test_database_in_wal_mode(tmp_path: Path, database: Path) -> None:
    UsageLogger("summarizer", storage_dir=tmp_path).log_usage("step", tokens=1)

    connection = sqlite3.connect(database)
    mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    connection.close()

    assert mode == "wal"


def test_database_files_owner_only(tmp_path: Path, database: Path) -> None:
    old_umask = os.umask(0)
    try:
        UsageLogger("summarizer", storage_dir=tmp_path).log_usage("step", tokens=1)
    finally:
        os.umask(old_umask)

    # The plugin's connection is still open, so the -wal and -shm files exist.
    for name in (database.name, database.name + "-wal", database.name + "-shm"):
        mode = stat.S_IMODE(os.stat(tmp_path / name).st_mode)
        assert mode == 0o600, f"{name}: {mode:o}"


def test_schema_has_indexes(tmp_path: Path, database: Path) -> None:
    UsageLogger("summarizer", storage_dir=tmp_path).log_usage("step", tokens=1)

    connection = sqlite3.connect(database)
    indexed = {
        row[0]
        for row in connection.execute(
            "SELECT info.name FROM pragma_index_list('entries') AS list,"
            " pragma_index_info(list.name) AS info WHERE list.origin = 'c'"
        )
    }
    primary_key = connection.execute(
        "SELECT name FROM pragma_table_info('entries') WHERE pk = 1"
    ).fetchall()
    connection.close()

    assert indexed == {"timestamp", "service", "session_id", "model"}
    assert primary_key == [("id",)]


def test_threads_share_connection(tmp_path: Path, database: Path) -> None:
    logger = UsageLogger("summarizer", storage_dir=tmp_path)

    def log_many() -> None:
        for number in range(100):
            logger.log_usage("step", tokens=number)

    threads = [threading.Thread(target=log_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert count_rows(database) == 800
    assert plugin_failures(tmp_path) == []


def test_forked_child_opens_own_connection(tmp_path: Path, database: Path) -> None:
    logger = UsageLogger("summarizer", storage_dir=tmp_path)
    logger.log_usage("before fork", tokens=1)
    context = multiprocessing.get_context("fork")

    child = context.Process(
        target=log_numbered, args=(str(tmp_path), "summarizer", 1, 200)
    )
    child.start()
    child.join(timeout=120)
    logger.log_usage("after fork", tokens=1)

    assert child.exitcode == 0
    assert count_rows(database) == 202
    assert len(log_lines(tmp_path / "summarizer.jsonl")) == 202
    assert plugin_failures(tmp_path) == []


def test_fork_while_thread_inserts(tmp_path: Path, database: Path) -> None:
    # Children forked while another thread is inside SQLite must not inherit
    # its mutexes locked: their first insert would then wait forever.
    logger = UsageLogger("summarizer", storage_dir=tmp_path)
    stop = threading.Event()

    def log_until_stopped() -> None:
        while not stop.is_set():
            logger.log_usage("parent", tokens=1)

    thread = threading.Thread(target=log_until_stopped)
    thread.start()
    children = []
    try:
        for _ in range(30):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                code = 1
                try:
                    for _ in range(3):
                        logger.log_usage("child", tokens=1)
                    code = 0
                finally:
                    os._exit(code)
            children.append(pid)
            time.sleep(0.005)
    finally:
        stop.set()
        thread.join()
    deadline = time.monotonic() + 30
    hung = 0
    for pid in children:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                hung += 1
                break
            time.sleep(0.01)

    assert hung == 0
    operations = [row["operation"] for row in read_rows(database)]
    assert operations.count("child") == 90


def test_newer_schema_rejected(tmp_path: Path, database: Path) -> None:
    connect(database).close()
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA user_version = 99")
    connection.close()

    UsageLogger("summarizer", storage_dir=tmp_path).log_usage("step", tokens=1)

    with pytest.raises(SchemaVersionError, match="schema version 99"):
        connect(database)
    [failure] = plugin_failures(tmp_path)
    assert failure["plugin"] == "sqlite"
    assert failure["error_type"] == "SchemaVersionError"
    assert count_rows(database) == 0
    assert len(log_lines(tmp_path / "summarizer.jsonl")) == 1


def test_leftover_wal_without_database_rejected(tmp_path: Path, database: Path) -> None:
    wal = tmp_path / (database.name + "-wal")
    wal.write_bytes(b"")

    UsageLogger("summarizer", storage_dir=tmp_path).log_usage("step", tokens=1)

    [failure] = plugin_failures(tmp_path)
    assert failure["error_type"] == "StorageError"
    assert "usage.sqlite3-wal" in failure["error_message"]
    assert not database.exists()
