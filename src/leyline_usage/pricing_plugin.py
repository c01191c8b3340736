"""The built-in cost model: prices entries from the TOML tables in ``pricing/``.

It registers through the ``leyline_usage`` entry-point group like any
third-party cost model. Tables named in the config file add models or replace
bundled ones.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from leyline_usage.config import Config
from leyline_usage.errors import PricingError
from leyline_usage.hookspecs import hookimpl
from leyline_usage.pricing import ModelPrices, PriceTable, bundled_table_paths

_table: PriceTable | None = None
_user_models: list[ModelPrices] = []
_config_error: str | None = None
_bundled_stamp: tuple[str, ...] = ()


def price_table() -> PriceTable:
    """Return the process-wide table: bundled tables, then the user's."""
    global _table
    if _config_error is not None:
        # Bundled prices could contradict the user's overrides, so a broken
        # config prices nothing rather than something wrong.
        raise PricingError(_config_error, "-", "fix the config file to price entries")
    if _table is None:
        table = PriceTable.load(bundled_table_paths())
        for model in _user_models:
            table.add(model)
        _table = table
    return _table


def set_price_table(table: PriceTable | None) -> None:
    """Replace the process-wide table; None reloads the tables on next use."""
    global _table
    _table = table


@hookimpl
def leyline_usage_configure(config: Config) -> None:
    """Take the user's pricing tables from the config file."""
    global _user_models, _config_error, _table, _bundled_stamp
    _user_models = list(config.pricing_models)
    _config_error = config.error
    _table = None
    _bundled_stamp = _stamp(bundled_table_paths())


def bundled_tables_stamp() -> tuple[str, ...]:
    """Return the size and time of the bundled tables when the config was read.

    The table loaded after that reads them as they were then, unless a
    package file changes in between.
    """
    return _bundled_stamp


def _stamp(paths: list[Path]) -> tuple[str, ...]:
    stamps = []
    for path in paths:
        try:
            status = path.stat()
            stamps.append(f"{path}:{status.st_mtime_ns}:{status.st_size}")
        except OSError:
            stamps.append(f"{path}:missing")
    return tuple(stamps)


@hookimpl(trylast=True)
def leyline_usage_cost(entry: dict[str, Any]) -> float | None:
    """Price an entry from the TOML tables, or return None for an unknown model."""
    model = entry.get("model")
    if type(model) is not str or not model:
        return None
    timestamp = entry.get("timestamp")
    day = timestamp[:10] if type(timestamp) is str else date.today().isoformat()
    # The entry itself maps token kinds to counts, as the table expects.
    table = _table if _table is not None and _config_error is None else price_table()
    return table.fast_cost(model, day, entry)
