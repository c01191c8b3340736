"""The query methods of UsageLogger, answered from the incremental index."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

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


class ServiceQueries:
    """Queries over one service's log; mixed into UsageLogger."""

    log_file: Path
    skipped_lines: int
    _fallback_rate: Decimal | float | str
    _pricer: Pricer | None

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

    def get_recent_operations(self, hours: float = 24) -> list[Entry]:
        """Return the entries of the last ``hours`` hours, oldest first."""
        cutoff = cutoff_timestamp(_non_negative("hours", hours) * 3600)
        stats = ReadStats()
        operations = []
        for path in self.files():
            start = first_offset_since(load_index(path, self.pricer), cutoff)
            operations += [
                entry
                for entry in iter_entries([path], stats, start=start)
                if entry["timestamp"] >= cutoff
            ]
        self.skipped_lines = stats.skipped_lines
        return operations

    def get_usage_summary(self, days: float = 7) -> dict[str, Any]:
        """Return totals over the last ``days`` days: operations, tokens and cost."""
        cutoff = cutoff_timestamp(_non_negative("days", days) * 86400)
        totals, self.skipped_lines = summary_of(self.files(), cutoff, self.pricer)
        summary = totals.as_dict()
        summary["skipped_lines"] = self.skipped_lines
        return summary

    def get_recent_errors(self, count: int = 10) -> list[Entry]:
        """Return the last ``count`` failed entries, newest first."""
        count = check_token_count("count", count)
        return last_failures(self.files(), count, self.pricer)

    def get_session_operations(self, session_id: str | None = None) -> list[Entry]:
        """Return the entries of ``session_id`` (default: the current session)."""
        target = session_id or self._active_session()
        return [e for e in self.iter_entries() if e.get("session_id") == target]

    def get_session_stats(self, session_id: str | None = None) -> dict[str, Any]:
        """Return the statistics of ``session_id`` (default: the current session)."""
        target = str(session_id or self._active_session())
        found = sessions_of(self.files(), self.pricer).get(target)
        if found is None:
            return session_stats_dict(target, Totals(), ())
        return session_stats_dict(target, found.totals, found.services)

    def list_sessions(self) -> list[dict[str, Any]]:
        """Return statistics for every session in this service's log, oldest first."""
        return [
            session_stats_dict(session_id, found.totals, found.services)
            for session_id, found in sessions_of(self.files(), self.pricer).items()
        ]


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)
