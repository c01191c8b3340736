"""The ``git`` plugin: the repository, branch and commit in every entry's metadata.

leyline-usage loads this module through the ``leyline_usage`` entry-point
group under the name ``git``. Entries logged inside a git working tree get a
``git`` metadata key::

    {"repository": "leyline", "remote": "https://github.com/org/leyline.git",
     "branch": "main", "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8"}

``branch`` is None on a detached HEAD, and ``commit`` is None on a branch
without commits yet. Entries logged outside a working tree get nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from leyline_usage import Config, hookimpl

from leyline_usage_git._cache import DEFAULT_REFRESH_SECONDS, GitMetadataCache

METADATA_KEY = "git"
SETTINGS_TABLE = "git"

_log = logging.getLogger("leyline_usage.git")
_cache = GitMetadataCache()


@hookimpl
def leyline_usage_configure(config: Config) -> None:
    """Apply ``refresh_seconds`` and ``include_remote`` from ``[plugins.git]``."""
    settings = config.plugin_settings(SETTINGS_TABLE)
    where = f"{config.path}: [plugins.{SETTINGS_TABLE}]"
    _cache.configure(
        refresh_seconds=_refresh_seconds(settings, where),
        include_remote=_include_remote(settings, where),
    )
    unknown = sorted(set(settings) - {"refresh_seconds", "include_remote"})
    if unknown:
        _log.warning(
            "%s: ignoring unknown settings %s. "
            "The known settings are refresh_seconds and include_remote.",
            where,
            ", ".join(unknown),
        )


@hookimpl
def leyline_usage_enrich(entry: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Add the ``git`` key, unless the caller's metadata already has one."""
    if METADATA_KEY in metadata:
        return
    git = _cache.current()
    if git is not None:
        metadata[METADATA_KEY] = dict(git)


def _refresh_seconds(settings: Mapping[str, Any], where: str) -> float:
    value = settings.get("refresh_seconds", DEFAULT_REFRESH_SECONDS)
    # The core parses TOML floats as Decimal.
    if not isinstance(value, bool) and isinstance(value, (int, float, Decimal)):
        seconds = float(value)
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    _log.warning(
        "%s: refresh_seconds must be a non-negative number of seconds, got %r. "
        "Using the default, %s.",
        where,
        value,
        DEFAULT_REFRESH_SECONDS,
    )
    return DEFAULT_REFRESH_SECONDS


def _include_remote(settings: Mapping[str, Any], where: str) -> bool:
    value = settings.get("include_remote", True)
    if isinstance(value, bool):
        return value
    _log.warning(
        "%s: include_remote must be true or false, got %r. Using the default, true.",
        where,
        value,
    )
    return True
