"""A leyline-usage plugin that copies every logged entry into a SQLite database.

Installed, it registers through the ``leyline_usage`` entry-point group as
``sqlite``. Each entry that leyline-usage appends to ``{service}.jsonl`` is
also inserted into ``{storage_dir}/usage.sqlite3``, or into the database named
by ``path`` in the config file's ``[plugins.sqlite]`` table.
"""

from __future__ import annotations

from leyline_usage_sqlite.connections import close_connections
from leyline_usage_sqlite.database import (
    DEFAULT_FILENAME,
    SchemaVersionError,
    connect,
)
from leyline_usage_sqlite.rebuild import RebuildResult, rebuild

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_FILENAME",
    "RebuildResult",
    "SchemaVersionError",
    "__version__",
    "close_connections",
    "connect",
    "rebuild",
]
