"""The query methods of UsageLogger, answered from the incremental index."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from leyline_usage.entry import Entry, check_token_count
from leyline_usage.index import (
    first_offset_since,
    load_index,
    recent_failures,
    session_stats,
    summary_since,
)
from leyline_usage.query import Pricer, Totals, cutoff_timestamp, session_stats_dict
from leyline_usage.reader import ReadStats, iter_entries


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

    def iter_entries(self, start: int = 0) -> Iterator[Entry]:
        """Yield every readable entry of this service, in file order.

        ``start`` is a byte offset at a line boundary to begin at. Unreadable
        lines are skipped; their count is in :attr:`skipped_lines` once the
        iteration finishes.
        """
        stats = ReadStats()
        yield from iter_entries([self.log_file], stats, start=start)
        self.skipped_lines = stats.skipped_lines

    def get_recent_operations(self, hours: float = 24) -> list[Entry]:
        """Return the entries of the last ``hours`` hours, oldest first."""
        cutoff = cutoff_timestamp(_non_negative("hours", hours) * 3600)
        index = load_index(self.log_file, self.pricer)
        start = first_offset_since(index, cutoff)
        return [e for e in self.iter_entries(start) if e["timestamp"] >= cutoff]

    def get_usage_summary(self, days: float = 7) -> dict[str, Any]:
        """Return totals over the last ``days`` days: operations, tokens and cost."""
        cutoff = cutoff_timestamp(_non_negative("days", days) * 86400)
        index = load_index(self.log_file, self.pricer)
        summary = summary_since(self.log_file, index, cutoff, self.pricer).as_dict()
        self.skipped_lines = index.all_skipped()
        summary["skipped_lines"] = self.skipped_lines
        return summary

    def get_recent_errors(self, count: int = 10) -> list[Entry]:
        """Return the last ``count`` failed entries, newest first."""
        count = check_token_count("count", count)
        index = load_index(self.log_file, self.pricer)
        return recent_failures(self.log_file, index, count)

    def get_session_operations(self, session_id: str | None = None) -> list[Entry]:
        """Return the entries of ``session_id`` (default: the current session)."""
        target = session_id or self._active_session()
        return [e for e in self.iter_entries() if e.get("session_id") == target]

    def get_session_stats(self, session_id: str | None = None) -> dict[str, Any]:
        """Return the statistics of ``session_id`` (default: the current session)."""
        target = str(session_id or self._active_session())
        sessions = session_stats(load_index(self.log_file, self.pricer), self.pricer)
        found = sessions.get(target)
        if found is None:
            return session_stats_dict(target, Totals(), ())
        return session_stats_dict(target, found.totals, found.services)

    def list_sessions(self) -> list[dict[str, Any]]:
        """Return statistics for every session in this service's log, oldest first."""
        sessions = session_stats(load_index(self.log_file, self.pricer), self.pricer)
        ordered = sorted(sessions.items(), key=lambda item: item[1].totals.first or "")
        return [
            session_stats_dict(session_id, found.totals, found.services)
            for session_id, found in ordered
        ]


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)
