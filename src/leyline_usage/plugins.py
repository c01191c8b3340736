"""The plugin manager: built-in and third-party plugins, loaded once per process.

Plugins come from the ``leyline_usage`` entry-point group. Those shipped with
leyline-usage itself (the TOML cost model, secret redaction and the SDK usage
adapters) load through the same group and are marked built-in.

``LEYLINE_USAGE_PLUGINS`` restricts which third-party plugins load: a
comma-separated list of entry-point names, or ``none`` (or an empty value) for
no third-party plugin at all. Without it, the config file's
``[plugins] enabled`` list applies, and without that, every installed plugin
loads. ``[plugins] disabled`` turns off any plugin by name, built-in ones too.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import orjson
import pluggy

from leyline_usage import hookspecs, pricing_plugin, redaction
from leyline_usage.config import Config, load_config
from leyline_usage.hookspecs import PROJECT
from leyline_usage.paths import FILE_MODE

PLUGINS_ENV = "LEYLINE_USAGE_PLUGINS"
BUILTIN_DISTRIBUTION = "leyline-usage"
_RECORD_INTERVAL = 1.0
FAILURES_FILE = ".plugin-failures.jsonl"

_log = logging.getLogger("leyline_usage")

HookImpl = tuple[str, Callable[..., Any], tuple[str, ...]]


@dataclass
class PluginInfo:
    """The package a registered plugin came from."""

    name: str
    distribution: str
    version: str
    builtin: bool


@dataclass
class LoadReport:
    """Plugins that did not load, and why."""

    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that counts registrations, so callers can cache hook lists."""

    def __init__(self) -> None:
        super().__init__(PROJECT)
        self.add_hookspecs(hookspecs)
        self.generation = 0
        self.info: dict[str, PluginInfo] = {}
        self.load_report = LoadReport()
        self.config = Config()
        self.failures: Counter[str] = Counter()
        self._unrecorded: dict[tuple[str, str, Path], int] = {}
        self._recorded_at: dict[tuple[str, str, Path], float] = {}
        self._last_errors: dict[tuple[str, str, Path], BaseException] = {}
        atexit.register(self.flush_failures)

    def register(self, plugin: object, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        self.generation += 1
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        removed = super().unregister(plugin, name)
        self.generation += 1
        return removed

    def impls(self, hook_name: str) -> list[HookImpl]:
        """Return ``(plugin name, function, argument names)`` of a hook, in call order.

        A plugin may declare only some of a hook's arguments, as pluggy allows,
        so callers pass each function just the arguments it names.
        """
        caller = getattr(self.hook, hook_name)
        return [
            (impl.plugin_name, impl.function, tuple(impl.argnames))
            for impl in reversed(caller.get_hookimpls())
        ]

    def record_failure(
        self, plugin: str, hook: str, exc: BaseException, storage_dir: Path | None
    ) -> None:
        """Count a plugin's exception and record it in the storage directory."""
        self.failures[plugin] += 1
        if self.failures[plugin] == 1 or self.failures[plugin] % 1000 == 0:
            _log.warning(
                "plugin %r failed in %s (%d failures so far): %s: %s",
                plugin, hook, self.failures[plugin], type(exc).__name__, exc,
            )  # fmt: skip
        if storage_dir is None:
            return
        # A plugin that fails on every entry would add a record per entry, so
        # failures are written at most once a second per plugin, hook and
        # directory, each record carrying how many it stands for.
        key = (plugin, hook, storage_dir)
        self._unrecorded[key] = self._unrecorded.get(key, 0) + 1
        now = time.monotonic()
        if now - self._recorded_at.get(key, -_RECORD_INTERVAL) >= _RECORD_INTERVAL:
            self._recorded_at[key] = now
            _append_failure(storage_dir, plugin, hook, exc, self._unrecorded.pop(key))
        else:
            self._last_errors[key] = exc

    def flush_failures(self) -> None:
        """Record failures still waiting for their once-a-second write."""
        for key, count in list(self._unrecorded.items()):
            plugin, hook, storage_dir = key
            exc = self._last_errors.get(key) or RuntimeError("unknown")
            _append_failure(storage_dir, plugin, hook, exc, count)
        self._unrecorded.clear()


class HookSet:
    """The hook functions a logger calls, looked up once per plugin change."""

    def __init__(self, manager: PluginManager) -> None:
        self.generation = manager.generation
        self.cost: Callable[..., Any] = manager.hook.leyline_usage_cost
        cost_models = manager.impls("leyline_usage_cost")
        if len(cost_models) == 1 and cost_models[0][2] == ("entry",):
            # With one cost model (the usual case) pluggy's dispatch is pure
            # overhead on the hot path, so the function is called directly.
            self.cost = cost_models[0][1]
        # The built-in tables alone: the logger prices from them directly.
        self.tables_only = self.cost is pricing_plugin.leyline_usage_cost
        self.adapt_usage = manager.hook.leyline_usage_adapt_usage
        self.enrichers = manager.impls("leyline_usage_enrich")
        # Secret redaction alone: metadata it would leave as is skips the
        # copy that enrichers work on.
        self.redaction_only = [e[1] for e in self.enrichers] == [
            redaction.leyline_usage_enrich
        ]
        self.sinks = manager.impls("leyline_usage_sink")


_manager: PluginManager | None = None
_manager_lock = threading.Lock()


def plugin_manager() -> PluginManager:
    """Return the process-wide plugin manager, loading plugins on first use."""
    global _manager
    if _manager is None:
        with _manager_lock:
            if _manager is None:
                _manager = _create_manager(load_config())
    return _manager


def reset_plugin_manager() -> None:
    """Forget the process-wide manager, so the next use reloads config and plugins."""
    global _manager
    with _manager_lock:
        _manager = None


def _create_manager(config: Config) -> PluginManager:
    manager = PluginManager()
    manager.config = config
    selected = _selected_third_party(config)
    for entry_point in entry_points(group=PROJECT):
        _load_entry_point(manager, entry_point, selected, config.disabled_plugins)
    # Each plugin reads its settings on its own, so that one plugin's bad
    # settings neither stop logging nor keep the others unconfigured.
    for name, configure, _ in manager.impls("leyline_usage_configure"):
        try:
            configure(config=config)
        except Exception as exc:
            manager.failures[name] += 1
            _log.warning("plugin %r failed to read its configuration: %s", name, exc)
    _log.debug("loaded plugins: %s", sorted(manager.info))
    return manager


def _selected_third_party(config: Config) -> set[str] | None:
    """Return the third-party plugin names to load, or None for all of them."""
    selection = os.environ.get(PLUGINS_ENV)
    if selection is None:
        return None if config.enabled_plugins is None else set(config.enabled_plugins)
    names = {name.strip() for name in selection.split(",") if name.strip()}
    return set() if names <= {"none"} else names


def _load_entry_point(
    manager: PluginManager,
    entry_point: EntryPoint,
    selected: set[str] | None,
    disabled: Iterable[str],
) -> None:
    name = entry_point.name
    distribution = entry_point.dist.name if entry_point.dist else "unknown"
    builtin = _normalize(distribution) == BUILTIN_DISTRIBUTION
    if name in manager.info:
        return
    if name in disabled:
        manager.load_report.skipped[name] = "disabled in the config file"
        return
    if not builtin and selected is not None and name not in selected:
        manager.load_report.skipped[name] = (
            f"not listed in {PLUGINS_ENV} or [plugins] enabled"
        )
        return
    try:
        plugin = entry_point.load()
        manager.register(plugin, name=name)
    except Exception as exc:
        # A plugin that cannot load must not take the host tool down with it.
        manager.load_report.failed[name] = f"{type(exc).__name__}: {exc}"
        _log.warning("plugin %r from %s failed to load: %s", name, distribution, exc)
        return
    version = entry_point.dist.version if entry_point.dist else ""
    manager.info[name] = PluginInfo(name, distribution, version, builtin)


def _normalize(distribution: str) -> str:
    return distribution.lower().replace("_", "-").replace(".", "-")


def _append_failure(
    storage_dir: Path, plugin: str, hook: str, exc: BaseException, count: int
) -> None:
    record = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "plugin": plugin,
        "hook": hook,
        "count": count,
        "error_type": type(exc).__name__,
        "error_message": str(exc)[:500],
    }
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(storage_dir / FAILURES_FILE, flags, FILE_MODE)
        try:
            os.write(fd, orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        finally:
            os.close(fd)
    except OSError as error:
        _log.debug("cannot record plugin failure in %s: %s", storage_dir, error)


def failure_counts(storage_dir: Path) -> Counter[str]:
    """Return how often each plugin failed, as recorded in ``storage_dir``."""
    counts: Counter[str] = Counter()
    try:
        with open(storage_dir / FAILURES_FILE, "rb") as file:
            for line in file:
                try:
                    record = orjson.loads(line)
                    counts[str(record["plugin"])] += int(record.get("count", 1))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue
    except OSError:
        pass
    return counts
