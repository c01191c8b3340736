"""Aggregations over log entries: summaries, errors and per-session statistics."""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from leyline_usage.entry import TOKEN_KEYS, Entry, format_timestamp
from leyline_usage.errors import PricingError
from leyline_usage.plugins import HookSet, plugin_manager
from leyline_usage.pricing import PriceTable
from leyline_usage.pricing_plugin import (
    bundled_tables_stamp,
    leyline_usage_cost,
    price_table,
)

# The original leyline logger's flat estimate, USD per million tokens.
DEFAULT_FALLBACK_RATE = Decimal("0.50")


def cutoff_timestamp(seconds_ago: float) -> str:
    """Return the timestamp ``seconds_ago`` before now, in the log's format."""
    return format_timestamp(time.time() - seconds_ago)


class Pricer:
    """Prices entries: stored cost, else a cost model plugin, else the fallback rate."""

    def __init__(
        self, fallback_rate: Decimal | float | str = DEFAULT_FALLBACK_RATE
    ) -> None:
        try:
            rate = Decimal(str(fallback_rate))
        except ArithmeticError:
            rate = Decimal("NaN")
        if not rate.is_finite() or rate < 0:
            raise ValueError(
                f"fallback rate {fallback_rate!r} is invalid: use a non-negative "
                "number of USD per million tokens, e.g. 0.50"
            )
        self.fallback_per_token = float(rate) / 1_000_000
        # With one cost model this is that function itself, without pluggy's
        # dispatch: a cold index build prices every entry that has no cost.
        self._hook = HookSet(plugin_manager()).cost
        # The built-in cost model prices a model on a given day either always
        # or never, whatever the counts.
        self._tables_only = self._hook is leyline_usage_cost
        self._never_priced: dict[tuple[str, str], bool] = {}
        # The price table whose results _never_priced holds.
        self._never_priced_table: PriceTable | None = None

    def fingerprint(self) -> str:
        """Return a digest of everything that decides prices, for cached costs."""
        manager = plugin_manager()
        config = manager.config
        parts = [repr(self.fallback_per_token), str(config.error)]
        parts += sorted(name for name, _, _ in manager.impls("leyline_usage_cost"))
        # The prices as this process read them, not the files as they are now:
        # a table edited since must not label an index of old prices as new.
        parts.append(repr(config.pricing_models))
        parts += bundled_tables_stamp()
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def never_priced(self, model: str, day: str) -> bool:
        """Return True if no entry of ``model`` on ``day`` (``YYYY-MM-DD``) has a price.

        Only the built-in cost model allows this check. With other cost models
        it returns False, and each entry goes through :meth:`price`.
        """
        if not self._tables_only:
            return False
        try:
            table = price_table()
        except PricingError:
            return False
        if table is not self._never_priced_table:
            self._never_priced.clear()
            self._never_priced_table = table
        key = (model, day)
        never = self._never_priced.get(key)
        if never is None:
            never = self._never_priced[key] = table.fast_cost(model, day, {}) is None
        return never

    def price(self, entry: Entry) -> tuple[float, bool]:
        """Return ``(cost in USD, priced)``; priced is False for a fallback estimate."""
        stored = entry.get("cost_usd")
        if type(stored) is float or type(stored) is int:
            return float(stored), True
        if type(entry.get("model")) is str and _counts_are_ints(entry):
            cost = self._hook(entry=entry)
            if cost is not None:
                return float(cost), True
        tokens = entry.get("tokens")
        return (tokens if type(tokens) is int else 0) * self.fallback_per_token, False


_COUNTED = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def _counts_are_ints(entry: Entry) -> bool:
    """Return True if every token count present is an int, as cost models expect.

    Lines written by other tools may hold null or text there; such an entry
    is priced at the fallback rate instead of failing the query.
    """
    get = entry.get
    for key in TOKEN_KEYS:
        value = get(key, 0)
        if type(value) is not int:
            return False
    return True


class Totals:
    """Running totals over a set of entries."""

    def __init__(self) -> None:
        self.operations = 0
        self.successes = 0
        self.tokens = 0
        self.duration = 0.0
        self.cost = 0.0
        self.unpriced = 0
        self.by_kind = dict.fromkeys(_COUNTED, 0)
        self.cost_by_model: dict[str, float] = {}
        self.first: str | None = None
        self.last: str | None = None

    def add(self, entry: Entry, pricer: Pricer) -> None:
        """Count one entry."""
        cost, priced = pricer.price(entry)
        self.add_priced(entry, cost, priced)

    def add_priced(self, entry: Entry, cost: float, priced: bool) -> None:
        """Count one entry whose cost is already known."""
        self.operations += 1
        if entry.get("success") is True:
            self.successes += 1
        tokens = entry.get("tokens")
        if type(tokens) is int:
            self.tokens += tokens
        duration = entry.get("duration_seconds")
        if type(duration) is float or type(duration) is int:
            self.duration += duration
        # Unrolled: this runs once per entry when an index is built.
        by_kind = self.by_kind
        value = entry.get("input_tokens")
        if type(value) is int:
            by_kind["input_tokens"] += value
        value = entry.get("output_tokens")
        if type(value) is int:
            by_kind["output_tokens"] += value
        value = entry.get("cache_read_tokens")
        if type(value) is int:
            by_kind["cache_read_tokens"] += value
        value = entry.get("cache_write_tokens")
        if type(value) is int:
            by_kind["cache_write_tokens"] += value
        self.cost += cost
        if not priced:
            self.unpriced += 1
        model = entry.get("model")
        label = model if type(model) is str and model else "(unknown)"
        by_model = self.cost_by_model
        by_model[label] = by_model.get(label, 0.0) + cost
        timestamp = entry["timestamp"]
        first = self.first
        if first is None:
            self.first = self.last = timestamp
        elif timestamp < first:
            self.first = timestamp
        elif timestamp > self.last:
            self.last = timestamp

    def copy(self) -> Totals:
        """Return an independent copy of these totals."""
        copied = Totals()
        copied.merge(self)
        return copied

    def merge(self, other: Totals) -> None:
        """Add ``other``'s counts to these."""
        self.operations += other.operations
        self.successes += other.successes
        self.tokens += other.tokens
        self.duration += other.duration
        self.cost += other.cost
        self.unpriced += other.unpriced
        for key, value in other.by_kind.items():
            self.by_kind[key] += value
        for model, cost in other.cost_by_model.items():
            self.cost_by_model[model] = self.cost_by_model.get(model, 0.0) + cost
        if other.first is not None and (self.first is None or other.first < self.first):
            self.first = other.first
        if other.last is not None and (self.last is None or other.last > self.last):
            self.last = other.last

    def to_state(self) -> list[Any]:
        """Return the totals as JSON-ready values, for the index file."""
        cost_by_model = {m: _float_state(c) for m, c in self.cost_by_model.items()}
        return [
            self.operations, self.successes, self.tokens, _float_state(self.duration),
            _float_state(self.cost), self.unpriced, self.by_kind, cost_by_model,
            self.first, self.last,
        ]  # fmt: skip

    @classmethod
    def from_state(cls, state: list[Any]) -> Totals:
        """Rebuild totals saved by :meth:`to_state`."""
        totals = cls()
        (
            totals.operations, totals.successes, totals.tokens, totals.duration,
            totals.cost, totals.unpriced, by_kind, cost_by_model, totals.first,
            totals.last,
        ) = state  # fmt: skip
        totals.duration = float(totals.duration)
        totals.cost = float(totals.cost)
        totals.by_kind = {key: int(by_kind.get(key, 0)) for key in _COUNTED}
        totals.cost_by_model = {str(k): float(v) for k, v in cost_by_model.items()}
        return totals

    def as_dict(self) -> dict[str, Any]:
        """Return the totals under the keys of the usage summary."""
        return {
            "total_operations": self.operations,
            "total_tokens": self.tokens,
            "success_rate": self.successes / self.operations
            if self.operations
            else 0.0,
            # Rounded like the cost, so that sums taken in another order agree.
            "total_duration": round(self.duration, 6),
            "estimated_cost": round(self.cost, 6),
            "failed_operations": self.operations - self.successes,
            **self.by_kind,
            "cost_by_model": {
                model: round(cost, 6)
                for model, cost in sorted(self.cost_by_model.items())
            },
            "unpriced_operations": self.unpriced,
            "first_timestamp": self.first,
            "last_timestamp": self.last,
        }


def _float_state(value: float) -> float | str:
    """Return ``value`` as JSON keeps it: infinities and NaN as their text.

    JSON has no infinity, and orjson writes it as null. Durations or costs
    that other tools wrote as huge numbers can add up to one.
    """
    return value if math.isfinite(value) else repr(value)


def since(entries: Iterable[Entry], cutoff: str) -> Iterable[Entry]:
    """Yield the entries logged at or after ``cutoff``."""
    return (entry for entry in entries if entry["timestamp"] >= cutoff)


def summarize(entries: Iterable[Entry], pricer: Pricer) -> dict[str, Any]:
    """Return the usage summary of ``entries``."""
    totals = Totals()
    for entry in entries:
        totals.add(entry, pricer)
    return totals.as_dict()


def recent_errors(entries: Iterable[Entry], count: int) -> list[Entry]:
    """Return the last ``count`` failed entries, newest first."""
    errors: deque[Entry] = deque(maxlen=max(count, 0))
    for entry in entries:
        if entry.get("success") is False:
            errors.append(entry)
    return list(reversed(errors))


def session_totals(
    entries: Iterable[Entry], pricer: Pricer
) -> dict[str, dict[str, Any]]:
    """Return per-session statistics, keyed by session id in order of first activity."""
    sessions: dict[str, Totals] = {}
    services: dict[str, set[str]] = {}
    for entry in entries:
        session_id = str(entry.get("session_id"))
        totals = sessions.get(session_id)
        if totals is None:
            totals = sessions[session_id] = Totals()
            services[session_id] = set()
        totals.add(entry, pricer)
        services[session_id].add(str(entry.get("service")))
    ordered = sorted(sessions.items(), key=lambda item: item[1].first or "")
    return {
        session_id: session_stats_dict(session_id, totals, services[session_id])
        for session_id, totals in ordered
    }


def session_stats_dict(
    session_id: str, totals: Totals, services: Iterable[str]
) -> dict[str, Any]:
    """Return one session's statistics."""
    stats: dict[str, Any] = {"session_id": session_id, "services": sorted(services)}
    stats.update(totals.as_dict())
    stats["wall_seconds"] = _seconds_between(totals.first, totals.last)
    return stats


def _seconds_between(first: str | None, last: str | None) -> float:
    start = _parse_time(first)
    end = _parse_time(last)
    if start is None or end is None:
        return 0.0
    return (end - start).total_seconds()


def _parse_time(text: str | None) -> datetime | None:
    """Parse an entry timestamp, reading one without a zone as UTC."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    # The original format wrote no zone. Summaries compare it as text with
    # UTC timestamps, so it is taken as UTC here too.
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed
