"""The query methods of UsageLogger, computed from the incremental index."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from leyline_usage.entry import Entry, check_token_count
from leyline_usage.index import (
    first_offset_since,
    last_failures,
    load_index,
    sessions_of,
    summary_of,
)
from leyline_usage.query import Pricer, Totals, cutoff_timestamp, session_stats_dict
from leyline_usage.reader import ReadStats, iter_entries
from leyline_usage.segments import log_files
from leyline_usage.store import Appender, WriteOptions

T = TypeVar("T")
# Runs of a query without the lock before one run under it.
_ATTEMPTS = 3


class ServiceQueries:
    """Queries over one service's log; mixed into UsageLogger."""

    log_file: Path
    skipped_lines: int
    _fallback_rate: Decimal | float | str
    _pricer: Pricer | None
    _appender: Appender
    _write_options: WriteOptions

    def _active_session(self) -> str | None:
        raise NotImplementedError

    @property
    def pricer(self) -> Pricer:
        """The pricer of summaries: stored cost, cost models, then the fallback rate."""
        if self._pricer is None:
            self._pricer = Pricer(self._fallback_rate)
        return self._pricer

    def files(self) -> list[Path]:
        """Return the files holding this service's entries: segments, then the log."""
        return log_files(self.log_file)

    def iter_entries(self) -> Iterator[Entry]:
        """Yield every readable entry of this service, oldest file first.

        Unreadable lines are skipped; their count is in :attr:`skipped_lines`
        once the iteration finishes.
        """
        stats = ReadStats()
        yield from iter_entries(self.files(), stats)
        self.skipped_lines = stats.skipped_lines

    def _consistent(self, compute: Callable[[list[Path]], T]) -> T:
        """Run ``compute`` over the service's files, again if a rotation moved them.

        A rotation renames the log and then compresses the segment, so a query
        that listed the files before it could miss or misread entries. The
        file list changes with every rotation, so an unchanged list after the
        query means its result is complete.
        """
        for _ in range(_ATTEMPTS):
            files = self.files()
            result = compute(files)
            if self.files() == files:
                return result
        # Rotations keep overtaking the query: hold the service lock, under
        # which rotations and segment swaps happen, for one last run.
        with self._appender.locked(self._write_options):
            return compute(self.files())

    def get_recent_operations(self, hours: float = 24) -> list[Entry]:
        """Return the entries of the last ``hours`` hours, oldest first."""
        cutoff = cutoff_timestamp(_non_negative("hours", hours) * 3600)

        def recent(files: list[Path]) -> list[Entry]:
            stats = ReadStats()
            operations = []
            for path in files:
                start = first_offset_since(load_index(path, self.pricer), cutoff)
                operations += [
                    entry
                    for entry in iter_entries([path], stats, start=start)
                    if entry["timestamp"] >= cutoff
                ]
            self.skipped_lines = stats.skipped_lines
            return operations

        return self._consistent(recent)

    def get_usage_summary(self, days: float = 7) -> dict[str, Any]:
        """Return totals over the last ``days`` days: operations, tokens and cost."""
        cutoff = cutoff_timestamp(_non_negative("days", days) * 86400)
        totals, self.skipped_lines = self._consistent(
            lambda files: summary_of(files, cutoff, self.pricer)
        )
        summary = totals.as_dict()
        summary["skipped_lines"] = self.skipped_lines
        return summary

    def get_recent_errors(self, count: int = 10) -> list[Entry]:
        """Return the last ``count`` failed entries, newest first."""
        count = check_token_count("count", count)
        return self._consistent(lambda files: last_failures(files, count, self.pricer))

    def get_session_operations(self, session_id: str | None = None) -> list[Entry]:
        """Return the entries of ``session_id`` (default: the current session)."""
        target = session_id or self._active_session()

        def operations(files: list[Path]) -> list[Entry]:
            stats = ReadStats()
            found = [
                e for e in iter_entries(files, stats) if e.get("session_id") == target
            ]
            self.skipped_lines = stats.skipped_lines
            return found

        return self._consistent(operations)

    def get_session_stats(self, session_id: str | None = None) -> dict[str, Any]:
        """Return the statistics of ``session_id`` (default: the current session)."""
        target = str(session_id or self._active_session())
        sessions = self._consistent(lambda files: sessions_of(files, self.pricer))
        found = sessions.get(target)
        if found is None:
            return session_stats_dict(target, Totals(), ())
        return session_stats_dict(target, found.totals, found.services)

    def list_sessions(self) -> list[dict[str, Any]]:
        """Return statistics for every session in this service's log, oldest first."""
        sessions = self._consistent(lambda files: sessions_of(files, self.pricer))
        return [
            session_stats_dict(session_id, found.totals, found.services)
            for session_id, found in sessions.items()
        ]


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)
