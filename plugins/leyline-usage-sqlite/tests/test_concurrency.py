"""Several processes logging at once: every entry reaches the database once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from conftest import count_rows, log_lines, plugin_failures
from sqlite_workers import log_numbered

WORKERS = 4
ENTRIES_PER_WORKER = 500


@pytest.mark.parametrize("shared_service", [True, False], ids=["one log", "four logs"])
def test_processes_log_at_once(
    tmp_path: Path, database: Path, shared_service: bool
) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    processes = [
        context.Process(
            target=log_numbered,
            args=(
                str(tmp_path),
                "shared" if shared_service else f"worker-{worker}",
                worker,
                ENTRIES_PER_WORKER,
                barrier,
            ),
        )
        for worker in range(WORKERS)
    ]

    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)

    assert [process.exitcode for process in processes] == [0] * WORKERS
    logged = sum(len(log_lines(log)) for log in tmp_path.glob("*.jsonl"))
    assert logged == WORKERS * ENTRIES_PER_WORKER
    assert count_rows(database) == logged
    assert plugin_failures(tmp_path) == []
    connection = sqlite3.connect(database)
    numbered = set(
        connection.execute(
            "SELECT json_extract(metadata, '$.worker'), json_extract(metadata, '$.seq')"
            " FROM entries"
        )
    )
    connection.close()
    expected = {(w, n) for w in range(WORKERS) for n in range(ENTRIES_PER_WORKER)}
    assert numbered == expected
