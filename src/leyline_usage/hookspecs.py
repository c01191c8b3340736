"""The hooks through which plugins extend leyline-usage.

Plugins are modules or objects whose functions carry the :data:`hookimpl`
marker. Third-party packages expose them through the ``leyline_usage``
entry-point group; the built-in cost model registers the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from leyline_usage.config import Config

PROJECT = "leyline_usage"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def leyline_usage_cost(entry: dict[str, Any]) -> Decimal | float | None:
    """Return the USD cost of an entry, or None if the plugin cannot price its model."""


@hookspec
def leyline_usage_enrich(entry: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Add or replace keys in an entry's metadata before the entry is written."""


@hookspec
def leyline_usage_sink(entries: Sequence[dict[str, Any]], storage_dir: Path) -> None:
    """Receive entries after they were appended to the JSONL log in ``storage_dir``."""


@hookspec(firstresult=True)
def leyline_usage_adapt_usage(usage: object) -> dict[str, int] | None:
    """Turn an SDK usage object or dict into token counts keyed as in a log entry."""


@hookspec
def leyline_usage_configure(config: Config) -> None:
    """Read this plugin's settings (``config.plugin_settings(NAME)``) once, at load."""
