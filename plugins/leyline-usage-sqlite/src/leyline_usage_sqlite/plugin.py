"""The plugin's hooks: read ``[plugins.sqlite]`` and mirror logged entries.

leyline-usage loads this module through the ``sqlite`` entry point of the
``leyline_usage`` group and calls the functions marked with ``hookimpl``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from leyline_usage import Config, ConfigError, hookimpl
from leyline_usage.entry import encode_entry

from leyline_usage_sqlite.connections import insert_entries
from leyline_usage_sqlite.database import DEFAULT_FILENAME, Row, entry_row

NAME = "sqlite"
_KNOWN_SETTINGS = frozenset({"path"})


@dataclass(frozen=True)
class Settings:
    """The ``[plugins.sqlite]`` table of the config file, validated."""

    # The database of every storage directory; None means one database per
    # storage directory, at {storage_dir}/usage.sqlite3.
    path: Path | None = None
    # The reason the settings are unusable, or None. The sink raises it
    # instead of writing entries to a database the user did not choose.
    error: str | None = None

    def database(self, storage_dir: Path) -> Path:
        """Return the database that mirrors the logs in ``storage_dir``."""
        return self.path or storage_dir / DEFAULT_FILENAME


def read_settings(config: Config) -> Settings:
    """Return this plugin's table of ``config``, validated.

    A problem goes in ``error`` instead of raising, because an exception in a
    configure hook would also stop the configure hooks of other plugins. A
    relative ``path`` is relative to the config file's directory.
    """
    if config.error is not None:
        return Settings(error=config.error)
    source = config.path or "config file"
    table = config.plugin_settings(NAME)
    unknown = sorted(set(table) - _KNOWN_SETTINGS)
    if unknown:
        return Settings(
            error=f"{source}: plugins.{NAME}: unknown setting {unknown[0]!r}: "
            "the only setting is 'path'"
        )
    value = table.get("path")
    if value is None:
        return Settings()
    if not isinstance(value, str) or not value.strip():
        return Settings(
            error=f"{source}: plugins.{NAME}.path: must be a non-empty string "
            f"naming the database file, got {value!r}"
        )
    path = Path(value).expanduser()
    if not path.is_absolute() and config.path is not None:
        path = config.path.parent / path
    return Settings(path=path)


_settings = Settings()


@hookimpl
def leyline_usage_configure(config: Config) -> None:
    """Take the database path from ``[plugins.sqlite]``."""
    global _settings
    _settings = read_settings(config)


@hookimpl
def leyline_usage_sink(entries: Sequence[dict[str, Any]], storage_dir: Path) -> None:
    """Insert the entries into the database, leaving out ids it already has."""
    settings = _settings
    if settings.error is not None:
        raise ConfigError(
            f"{settings.error}. Entries are not copied to SQLite until the "
            "config file is fixed."
        )
    if not entries:
        return
    rows = [row_from_entry(entry) for entry in entries]
    insert_entries(settings.database(storage_dir), rows)


def row_from_entry(entry: dict[str, Any]) -> Row:
    """Return the database row of an entry the core has just written.

    The entry is encoded as the core encoded its log line, and decoded again,
    so the row matches the line: metadata values JSON cannot encode are
    strings in both.
    """
    line = encode_entry(entry).rstrip(b"\n")
    return entry_row(orjson.loads(line), line)
