"""Rebuilding a database from the JSONL service logs."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from leyline_usage.reader import ReadStats

from leyline_usage_sqlite.database import (
    INSERT_SQL,
    Row,
    connect,
    entry_row,
    write_transaction,
)

_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


@dataclass
class RebuildResult:
    """Counts of what a rebuild read and wrote."""

    database: Path
    logs: int
    lines: int = 0
    skipped_lines: int = 0
    entries: int = 0

    @property
    def duplicates(self) -> int:
        """Entries left out because an earlier line had the same id."""
        return self.lines - self.skipped_lines - self.entries


def rebuild(database: Path, logs: Sequence[Path]) -> RebuildResult:
    """Replace the entries in ``database`` with those read from ``logs``.

    Deleting the old rows and inserting the new ones is one write transaction,
    so readers see the old contents until it commits. Loggers wait for it, up
    to the busy timeout, and then insert their entries. An entry reaches its
    log before the database, so none is lost or doubled. A logger that waits
    longer records a sink failure, and its entry is missing until the next
    rebuild. Lines that are not an entry are skipped and counted.
    """
    result = RebuildResult(database, len(logs))
    stats = ReadStats()
    connection = connect(database)
    try:
        with write_transaction(connection):
            connection.execute("DELETE FROM entries")
            connection.executemany(INSERT_SQL, _rows(logs, stats))
            result.entries = connection.execute(
                "SELECT count(*) FROM entries"
            ).fetchone()[0]
        # The transaction's pages all went to the -wal file, which SQLite does
        # not shrink by itself: copy them into the database and truncate it.
        # This waits up to the busy timeout for readers of older snapshots. If
        # they are still reading then, the checkpoint reports busy and the
        # file stays large.
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    result.lines = stats.lines
    result.skipped_lines = stats.skipped_lines
    return result


def _rows(logs: Iterable[Path], stats: ReadStats) -> Iterator[Row]:
    for line, entry in iter_lines(logs, stats):
        yield entry_row(entry, line)


def iter_lines(
    logs: Iterable[Path], stats: ReadStats
) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Yield each entry of ``logs`` with its line, without the line ending.

    A line is skipped and counted in ``stats`` under the same rule as
    ``leyline_usage.reader.iter_entries``: it must be a JSON object with a
    string ``timestamp``. A missing log reads as empty.
    """
    for path in logs:
        try:
            fd = os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            continue
        with os.fdopen(fd, "rb", buffering=1 << 20) as file:
            for line in file:
                stats.lines += 1
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    stats.skipped_lines += 1
                    continue
                if type(entry) is not dict or type(entry.get("timestamp")) is not str:
                    stats.skipped_lines += 1
                    continue
                yield line.strip(), entry
