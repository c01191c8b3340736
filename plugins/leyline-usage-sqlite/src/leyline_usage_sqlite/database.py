"""The SQLite database: schema, connections, and rows built from log entries.

One table, ``entries``, has a column per entry key, ``metadata`` as JSON text
and ``raw``, the entry's JSON line as it is in the log. The entry ``id`` is the
primary key and rows are inserted with ``INSERT OR IGNORE``, so writing an
entry a second time changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from leyline_usage import StorageError
from leyline_usage.paths import DIR_MODE, open_private

DEFAULT_FILENAME = "usage.sqlite3"
SCHEMA_VERSION = 1

# Seconds a connection waits for another process's write transaction before
# SQLite raises "database is locked". Inserts hold the lock for well under a
# millisecond, but a rebuild holds it for its whole run.
BUSY_TIMEOUT = 10.0

# Columns filled from the entry key of the same name, in log order. The id,
# metadata and raw columns are filled separately.
ENTRY_COLUMNS = (
    "timestamp",
    "session_id",
    "service",
    "operation",
    "tokens",
    "success",
    "duration_seconds",
    "error_type",
    "error_message",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cost_usd",
)

# Only id and raw are NOT NULL, because INSERT OR IGNORE skips a row that
# breaks a NOT NULL constraint without an error.
_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS entries (
        id TEXT PRIMARY KEY NOT NULL,
        timestamp TEXT,
        session_id TEXT,
        service TEXT,
        operation TEXT,
        tokens INTEGER,
        success INTEGER,
        duration_seconds REAL,
        error_type TEXT,
        error_message TEXT,
        metadata TEXT,
        model TEXT,
        input_tokens INTEGER,
        output_tokens INTEGER,
        cache_read_tokens INTEGER,
        cache_write_tokens INTEGER,
        cache_write_5m_tokens INTEGER,
        cache_write_1h_tokens INTEGER,
        cost_usd REAL,
        raw TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS entries_timestamp ON entries (timestamp)",
    "CREATE INDEX IF NOT EXISTS entries_service ON entries (service)",
    "CREATE INDEX IF NOT EXISTS entries_session_id ON entries (session_id)",
    "CREATE INDEX IF NOT EXISTS entries_model ON entries (model)",
)

INSERT_SQL = (
    f"INSERT OR IGNORE INTO entries (id, {', '.join(ENTRY_COLUMNS)}, metadata, raw) "
    f"VALUES ({', '.join('?' * (len(ENTRY_COLUMNS) + 3))})"
)

_SQLITE_BUSY = 5  # the primary result code behind "database is locked"
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

# A child of the core's logger, so a handler set on "leyline_usage" also
# receives these records.
_log = logging.getLogger("leyline_usage.sqlite")

Row = tuple[object, ...]


class SchemaVersionError(sqlite3.DatabaseError):
    """The database was created by a newer version of this plugin."""

    def __init__(self, path: Path, version: int) -> None:
        super().__init__(
            f"{path}: schema version {version} is newer than version "
            f"{SCHEMA_VERSION}, the newest this plugin reads: upgrade "
            "leyline-usage-sqlite or use another database path"
        )
        self.path = path
        self.version = version


def connect(path: Path, busy_timeout: float = BUSY_TIMEOUT) -> sqlite3.Connection:
    """Open the database at ``path``, creating it owner-only with the schema.

    The connection is in autocommit mode: callers write inside
    :func:`write_transaction`. ``busy_timeout`` is in seconds.
    """
    _create_file(path)
    connection = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        _set_pragmas(connection, path, busy_timeout)
        _create_schema(connection, path)
    except BaseException:
        connection.close()
        raise
    return connection


@contextmanager
def write_transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """Run the block in a transaction that holds the write lock from its start.

    ``BEGIN IMMEDIATE`` takes the lock before the first read. A deferred
    transaction that reads first and then writes can fail at once with
    "database is locked" when another process wrote in between, without
    waiting for the busy timeout.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def insert_rows(connection: sqlite3.Connection, rows: Iterable[Row]) -> int:
    """Insert rows in one transaction and return how many were new."""
    with write_transaction(connection):
        before = connection.total_changes
        connection.executemany(INSERT_SQL, rows)
        return connection.total_changes - before


def entry_row(entry: Mapping[str, Any], line: bytes) -> Row:
    """Return the INSERT parameters of an entry and its JSON line.

    ``line`` is the entry as it is written in the log, without the newline.
    An entry without an ``id`` gets :func:`derived_id` of its line.
    """
    entry_id = entry.get("id")
    if entry_id is None:
        entry_id = derived_id(line)
    metadata = entry.get("metadata")
    return (
        _column_value(entry_id),
        *[_column_value(entry.get(key)) for key in ENTRY_COLUMNS],
        None if metadata is None else orjson.dumps(metadata).decode(),
        line.decode(),
    )


def derived_id(line: bytes) -> str:
    """Return the id of an entry that has none: the SHA-256 of its log line.

    NOTE: two byte-identical lines get the same id, so the database keeps only
    one of them.
    """
    return "sha256:" + hashlib.sha256(line).hexdigest()


def _column_value(value: object) -> object:
    """Return ``value`` in a form sqlite3 can bind.

    Lists and dicts become JSON text. Integers beyond 64 bits become text,
    which the column's type affinity turns into REAL in a numeric column.
    """
    if value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        # bool is an int, stored as 1 or 0. SQLite integers are signed 64-bit,
        # and orjson reads integers up to 2**64 - 1 as int.
        return value if _INT64_MIN <= value <= _INT64_MAX else str(value)
    return orjson.dumps(value).decode()


def _create_file(path: Path) -> None:
    """Create the database file owner-only, unless it exists.

    SQLite would create it with mode 0644 less the umask. It gives the ``-wal``
    and ``-shm`` files the mode of the database file, so they are owner-only too.
    """
    wal = path.with_name(path.name + "-wal")
    if not path.exists() and wal.exists():
        # SQLite would replay the old log into the new, empty database.
        shm = path.with_name(path.name + "-shm")
        raise StorageError(
            path,
            f"database is missing but its write-ahead log {wal.name} is still "
            "there: stop the processes that log, remove "
            f"{wal.name} and {shm.name}, then retry",
        )
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.close(open_private(path, os.O_RDWR | os.O_CREAT))


def _set_pragmas(
    connection: sqlite3.Connection, path: Path, busy_timeout: float
) -> None:
    # WAL lets readers work while one process writes, and commits append to
    # the -wal file instead of rewriting pages in place.
    mode = _enable_wal(connection, busy_timeout)
    if mode != "wal":
        # NOTE: no test covers this branch. SQLite keeps the old mode where
        # the filesystem lacks the shared memory WAL needs (some network
        # filesystems).
        _log.warning(
            "%s: WAL journal mode is not available, using %r: writers and "
            "readers block each other",
            path,
            mode,
        )
    # With WAL, NORMAL skips the fsync per commit. A power loss can lose the
    # last commits but never corrupts the database, and `rebuild` restores
    # them from the JSONL logs.
    connection.execute("PRAGMA synchronous = NORMAL")


def _enable_wal(connection: sqlite3.Connection, busy_timeout: float) -> str:
    """Switch the database to WAL and return the journal mode now in effect.

    Switching takes an exclusive lock. When another connection holds a lock,
    as when several processes open a new database together, SQLite 3.40
    raised "database is locked" within a millisecond instead of waiting for
    the busy timeout, so this retries until ``busy_timeout`` seconds passed.
    """
    deadline = time.monotonic() + busy_timeout
    delay = 0.001
    while True:
        try:
            (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
            return str(mode)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    # sqlite_errorcode exists from Python 3.11 on; it is an extended code.
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return str(exc) == "database is locked"
    return code & 0xFF == _SQLITE_BUSY


def _create_schema(connection: sqlite3.Connection, path: Path) -> None:
    if _schema_version(connection, path) == SCHEMA_VERSION:
        return
    with write_transaction(connection):
        # Another process may have created the schema since the check above.
        if _schema_version(connection, path) == 0:
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            _log.debug("%s: created schema version %d", path, SCHEMA_VERSION)


def _schema_version(connection: sqlite3.Connection, path: Path) -> int:
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(path, version)
    return int(version)
