"""This process's database connections: one per path, shared by its threads.

A connection is opened, and the schema checked, on the first insert into a
database. A child created by ``os.fork`` opens its own connections.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from leyline_usage_sqlite.database import Row, connect, insert_rows

_log = logging.getLogger("leyline_usage.sqlite")


class _Database:
    """An open connection and the lock that keeps its threads' transactions apart."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.lock = threading.Lock()


_databases: dict[Path, _Database] = {}
_databases_guard = threading.Lock()

# SQLite connections must not be used in a child of fork(), and closing one
# there is a use: it can release locks or checkpoint the WAL as if the
# parent's connection had ended. The child keeps inherited connections
# referenced and never touches them.
# NOTE: a child that exits through interpreter shutdown, not os._exit() as
# multiprocessing's children do, may still close them while shutting down.
_inherited: list[_Database] = []

# SQLite's own mutexes are shared by the whole process. A fork while another
# thread is inside SQLite copies them locked, and the child's first insert
# then waits forever. Every use of SQLite here holds this lock, and a fork
# waits for it.
# NOTE: SQLite used by other code of the process is not covered.
_in_sqlite = threading.RLock()


def insert_entries(path: Path, rows: Sequence[Row]) -> int:
    """Insert rows into the database at ``path`` and return how many were new."""
    with _in_sqlite:
        database = _databases.get(path)
        if database is None:
            database = _open(path)
        with database.lock:
            return insert_rows(database.connection, rows)


def close_connections() -> None:
    """Close this process's connections. The next insert opens them again."""
    with _in_sqlite, _databases_guard:
        for database in _databases.values():
            with database.lock:
                database.connection.close()
        _databases.clear()


def _open(path: Path) -> _Database:
    with _databases_guard:
        database = _databases.get(path)
        if database is None:
            database = _Database(connect(path))
            _databases[path] = database
            _log.debug("opened %s in process %d", path, os.getpid())
        return database


def _before_fork() -> None:
    _in_sqlite.acquire()


def _after_fork_in_parent() -> None:
    _in_sqlite.release()


def _forget_after_fork() -> None:
    # A thread of the parent may have held a lock at fork time, so the child
    # starts with fresh ones.
    global _databases_guard, _in_sqlite
    _databases_guard = threading.Lock()
    _in_sqlite = threading.RLock()
    _inherited.extend(_databases.values())
    _databases.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_forget_after_fork,
    )
