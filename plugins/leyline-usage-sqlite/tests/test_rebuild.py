"""The ``leyline-usage-sqlite rebuild`` command, run as a separate process."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import count_rows, log_lines, plugin_failures, read_rows, run_command
from leyline_usage import UsageLogger
from sqlite_workers import log_until

from leyline_usage_sqlite import close_connections

OLD_FORMAT = [
    {
        "timestamp": "2025-12-05T10:30:00.412907Z",
        "session_id": "session_1733394600",
        "service": "legacy",
        "operation": "analyze_files",
        "tokens": 5000,
        "success": True,
        "duration_seconds": 2.5,
        "error_type": None,
        "error_message": None,
        "metadata": {"files": 10},
    },
    {
        "timestamp": "2025-12-05T10:41:13.100254Z",
        "session_id": "session_1733394600",
        "service": "legacy",
        "operation": "summarize",
        "tokens": 1200,
        "success": False,
        "duration_seconds": 30.0,
        "error_type": "TimeoutError",
        "error_message": "request timed out after 30s",
        "metadata": {},
    },
]
NOT_ENTRIES = [
    "{not json",
    "[1, 2, 3]",
    '{"operation": "no timestamp"}',
    '{"timestamp": 1733394600}',
    "",
    '{"timestamp": "2025-12-05T12:0',
]


def log_sample(storage_dir: Path) -> int:
    """Log entries of two services, some failed, and return how many."""
    first = UsageLogger("summarizer", storage_dir=storage_dir)
    second = UsageLogger("reviewer", storage_dir=storage_dir)
    for number in range(10):
        first.log_usage(
            "summarize",
            model="claude-sonnet-4-5",
            input_tokens=100 + number,
            output_tokens=20,
            metadata={"number": number},
        )
        second.log_usage(
            "review", tokens=number, success=number % 3 != 0, error_type="E"
        )
    return 20


def write_old_log(storage_dir: Path) -> list[bytes]:
    """Write a log in the original format, with unusable lines between entries."""
    lines = [json.dumps(OLD_FORMAT[0]), *NOT_ENTRIES, json.dumps(OLD_FORMAT[1])]
    (storage_dir / "legacy.jsonl").write_text("\n".join(lines) + "\n")
    return [line.encode() for line in (lines[0], lines[-1])]


def delete_database(database: Path) -> None:
    """Delete the database with its -wal and -shm files, as the README advises."""
    close_connections()
    for suffix in ("", "-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)


def assert_one_error_line(result: Any, status: int, message: str) -> None:
    assert result.returncode == status, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("leyline-usage-sqlite: error: ")
    assert message in result.stderr


def test_rebuild_reproduces_deleted_database(tmp_path: Path, database: Path) -> None:
    count = log_sample(tmp_path)
    before = read_rows(database)
    delete_database(database)

    result = run_command("rebuild")

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"wrote {count} entries to {database} from 2 logs\n"
    assert result.stderr == ""
    assert read_rows(database) == before


def test_rebuild_removes_rows_not_in_logs(tmp_path: Path, database: Path) -> None:
    count = log_sample(tmp_path)
    connection = sqlite3.connect(database)
    connection.execute("INSERT INTO entries (id, raw) VALUES ('stray', '{}')")
    connection.commit()
    connection.close()

    result = run_command("rebuild", "--dir", tmp_path)

    assert result.returncode == 0, result.stderr
    ids = [row["id"] for row in read_rows(database)]
    assert "stray" not in ids
    assert len(ids) == count


def test_rebuild_old_format_and_unusable_lines(tmp_path: Path, database: Path) -> None:
    entry_lines = write_old_log(tmp_path)

    result = run_command("rebuild")

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"wrote 2 entries to {database} from 1 log; "
        f"skipped {len(NOT_ENTRIES)} lines that are not an entry\n"
    )
    rows = read_rows(database)
    assert [row["id"] for row in rows] == [
        "sha256:" + hashlib.sha256(line).hexdigest() for line in entry_lines
    ]
    assert [row["raw"].encode() for row in rows] == entry_lines
    assert [row["operation"] for row in rows] == ["analyze_files", "summarize"]
    assert [row["success"] for row in rows] == [1, 0]
    assert [row["model"] for row in rows] == [None, None]
    assert json.loads(rows[0]["metadata"]) == {"files": 10}


def test_rebuild_ids_stable(tmp_path: Path, database: Path) -> None:
    write_old_log(tmp_path)
    log_sample(tmp_path)
    assert run_command("rebuild").returncode == 0
    first = read_rows(database)

    delete_database(database)
    result = run_command("rebuild")

    assert result.returncode == 0, result.stderr
    assert read_rows(database) == first


def test_rebuild_counts_duplicate_ids(tmp_path: Path, database: Path) -> None:
    logger = UsageLogger("summarizer", storage_dir=tmp_path)
    entry = logger.log_usage("step", tokens=1)
    assert entry is not None
    logger.write_entries([entry, entry])

    result = run_command("rebuild")

    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"wrote 1 entry to {database} from 1 log; "
        "left out 2 entries whose id an earlier line already had\n"
    )
    assert count_rows(database) == 1


def test_rebuild_dir_and_db_options(tmp_path: Path) -> None:
    storage_dir = tmp_path / "logs"
    count = log_sample(storage_dir)
    target = tmp_path / "out" / "copy.sqlite3"

    result = run_command("rebuild", "--dir", storage_dir, "--db", target)

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"wrote {count} entries to {target} from 2 logs\n"
    assert read_rows(target) == read_rows(storage_dir / "usage.sqlite3")


def test_rebuild_uses_config_path(tmp_path: Path, database: Path) -> None:
    (tmp_path / "config.toml").write_text('[plugins.sqlite]\npath = "m.sqlite3"\n')
    count = log_sample(tmp_path)
    mirror = tmp_path / "m.sqlite3"
    before = read_rows(mirror)
    delete_database(mirror)

    result = run_command("rebuild")

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"wrote {count} entries to {mirror} from 2 logs\n"
    assert read_rows(mirror) == before
    assert not database.exists()


def test_rebuild_while_processes_log(tmp_path: Path, database: Path) -> None:
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    processes = [
        context.Process(
            target=log_until, args=(str(tmp_path), f"worker-{w}", stop), daemon=True
        )
        for w in range(2)
    ]
    logs = [tmp_path / "worker-0.jsonl", tmp_path / "worker-1.jsonl"]
    for process in processes:
        process.start()
    try:
        wait_for_lines(logs, 100)
        logged_before = sum(len(log_lines(log)) for log in logs)
        result = run_command("rebuild")
        logged_after = sum(len(log_lines(log)) for log in logs)
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=60)

    assert result.returncode == 0, result.stderr
    assert [process.exitcode for process in processes] == [0, 0]
    assert logged_after > logged_before, "the workers stopped during the rebuild"
    logged = sum(len(log_lines(log)) for log in logs)
    assert count_rows(database) == logged
    assert plugin_failures(tmp_path) == []


def wait_for_lines(logs: list[Path], count: int) -> None:
    """Wait until each of ``logs`` has ``count`` lines, for at most a minute."""
    deadline = time.monotonic() + 60
    for log in logs:
        while not log.exists() or len(log_lines(log)) < count:
            assert time.monotonic() < deadline, f"{log}: fewer than {count} lines"
            time.sleep(0.01)


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        ([], 2, "the following arguments are required: COMMAND"),
        (["rebuild", "--bogus"], 2, "unrecognized arguments: --bogus"),
        (["rebuild", "--dir", "{tmp}/missing"], 2, "missing: not found"),
        (["rebuild", "--dir", "{tmp}/file"], 2, "file: not a directory"),
        (["rebuild", "--dir", "{tmp}/empty"], 1, "no service logs (*.jsonl)"),
        (["rebuild", "--db", "{tmp}/empty"], 1, "empty: cannot open: Is a directory"),
        (["rebuild", "--db", "{tmp}/file"], 1, "file: file is not a database"),
    ],
    ids=[
        "no command",
        "unknown option",
        "missing directory",
        "directory is a file",
        "no logs",
        "database is a directory",
        "database is not SQLite",
    ],
)
def test_rebuild_errors(
    tmp_path: Path, args: list[str], status: int, message: str
) -> None:
    log_sample(tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_bytes(b"not a database, but long enough " * 4)

    result = run_command(*[arg.format(tmp=tmp_path) for arg in args])

    assert_one_error_line(result, status, message)


def test_rebuild_rejects_invalid_config(tmp_path: Path) -> None:
    log_sample(tmp_path)
    (tmp_path / "config.toml").write_text("[plugins.sqlite]\npath = 5\n")

    result = run_command("rebuild")

    assert_one_error_line(result, 1, "plugins.sqlite.path: must be a non-empty")
