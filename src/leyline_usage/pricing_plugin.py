"""The built-in cost model: prices entries from the TOML tables in ``pricing/``.

It registers through the ``leyline_usage`` entry-point group like any
third-party cost model.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from leyline_usage.entry import TOKEN_KEYS
from leyline_usage.hookspecs import hookimpl
from leyline_usage.pricing import PriceTable, bundled_table_paths

_table: PriceTable | None = None


def price_table() -> PriceTable:
    """Return the process-wide table, reading the bundled tables on first use."""
    global _table
    if _table is None:
        _table = PriceTable.load(bundled_table_paths())
    return _table


def set_price_table(table: PriceTable | None) -> None:
    """Replace the process-wide table; None reloads the bundled tables on next use."""
    global _table
    _table = table


@hookimpl(trylast=True)
def leyline_usage_cost(entry: dict[str, Any]) -> Decimal | None:
    """Price an entry from the TOML tables, or return None for an unknown model."""
    model = entry.get("model")
    if not isinstance(model, str) or not model:
        return None
    counts = {key: entry[key] for key in TOKEN_KEYS if key in entry}
    if not counts:
        return None
    timestamp = entry.get("timestamp", "")
    try:
        when = date.fromisoformat(timestamp[:10])
    except (TypeError, ValueError):
        when = date.today()
    quote = price_table().quote(model, when, counts)
    return None if quote is None else quote.cost
