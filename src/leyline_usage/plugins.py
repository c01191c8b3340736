"""The plugin manager: built-in and third-party plugins, loaded once per process."""

from __future__ import annotations

import logging
import os
import threading

import pluggy

from leyline_usage import hookspecs
from leyline_usage.hookspecs import PROJECT

PLUGINS_ENV = "LEYLINE_USAGE_PLUGINS"

_log = logging.getLogger("leyline_usage")
_manager: pluggy.PluginManager | None = None
_manager_lock = threading.Lock()


def plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager, loading entry points on first use."""
    global _manager
    if _manager is None:
        with _manager_lock:
            if _manager is None:
                _manager = _create_manager()
    return _manager


def _create_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    selection = os.environ.get(PLUGINS_ENV)
    if selection is None:
        manager.load_setuptools_entrypoints(PROJECT)
    else:
        for name in _selected(selection):
            manager.load_setuptools_entrypoints(PROJECT, name=name)
    _log.debug("loaded plugins: %s", [name for name, _ in manager.list_name_plugin()])
    return manager


def _selected(selection: str) -> list[str]:
    # "none" or an empty value disables entry-point loading altogether.
    names = [name.strip() for name in selection.split(",") if name.strip()]
    return [] if names == ["none"] else names
