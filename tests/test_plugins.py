"""Plugin hooks: enrichers, sinks and cost models, isolation and loading."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from leyline_usage import UsageLogger, hookimpl
from leyline_usage.plugins import FAILURES_FILE, failure_counts, plugin_manager


class Collector:
    """A sink that keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.directories: list[Path] = []

    @hookimpl
    def leyline_usage_sink(
        self, entries: Sequence[dict[str, Any]], storage_dir: Path
    ) -> None:
        self.received.extend(entries)
        self.directories.append(storage_dir)


class Tagger:
    @hookimpl
    def leyline_usage_enrich(
        self, entry: dict[str, Any], metadata: dict[str, Any]
    ) -> None:
        metadata["host"] = "build-7"
        metadata["operation_seen"] = entry["operation"]


class Broken:
    @hookimpl
    def leyline_usage_enrich(
        self, entry: dict[str, Any], metadata: dict[str, Any]
    ) -> None:
        raise RuntimeError("enricher exploded")

    @hookimpl
    def leyline_usage_sink(self, entries: Sequence[dict[str, Any]]) -> None:
        raise OSError("sink is down")


class FlatRate:
    @hookimpl(tryfirst=True)
    def leyline_usage_cost(self, entry: dict[str, Any]) -> Decimal | None:
        if entry.get("model") == "house-model":
            return Decimal(entry["tokens"]) / 1000
        return None


@pytest.fixture
def registered() -> Iterator[list[object]]:
    """Plugins registered for one test and always unregistered."""
    plugins: list[object] = []
    yield plugins
    for plugin in plugins:
        plugin_manager().unregister(plugin)


def register(registered: list[object], plugin: object, name: str) -> None:
    plugin_manager().register(plugin, name=name)
    registered.append(plugin)


def test_sink_receives_appended_entry(storage: Path, registered: list[object]) -> None:
    collector = Collector()
    register(registered, collector, "collector")

    entry = UsageLogger("svc", storage_dir=storage).log_usage("op", tokens=3)

    assert collector.received == [entry]
    assert collector.directories == [storage]


def test_enricher_adds_metadata_without_touching_caller(
    storage: Path, registered: list[object]
) -> None:
    register(registered, Tagger(), "tagger")
    caller_metadata = {"files": 2}

    UsageLogger("svc", storage_dir=storage).log_usage("op", metadata=caller_metadata)

    written = json.loads((storage / "svc.jsonl").read_text())
    assert written["metadata"] == {
        "files": 2,
        "host": "build-7",
        "operation_seen": "op",
    }
    assert caller_metadata == {"files": 2}


def test_failing_plugins_never_reach_caller(
    storage: Path, registered: list[object]
) -> None:
    collector = Collector()
    register(registered, Broken(), "broken")
    register(registered, Tagger(), "tagger")
    register(registered, collector, "collector")
    logger = UsageLogger("svc", storage_dir=storage, strict=True)

    entry = logger.log_usage("op", tokens=1)
    logger.log_usage("op", tokens=2)
    plugin_manager().flush_failures()

    assert entry is not None
    lines = (storage / "svc.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["metadata"]["host"] == "build-7"
    assert len(collector.received) == 2
    assert failure_counts(storage)["broken"] == 4
    assert plugin_manager().failures["broken"] >= 4
    records = [
        json.loads(line) for line in (storage / FAILURES_FILE).read_text().splitlines()
    ]
    assert {r["hook"] for r in records} == {"enrich", "sink"}
    assert {r["error_type"] for r in records} == {"RuntimeError", "OSError"}
    assert sum(r["count"] for r in records) == 4


def test_repeated_failures_share_records(
    storage: Path, registered: list[object]
) -> None:
    register(registered, Broken(), "broken")
    logger = UsageLogger("svc", storage_dir=storage)

    for _ in range(500):
        logger.log_usage("op")
    plugin_manager().flush_failures()

    lines = (storage / FAILURES_FILE).read_text().splitlines()
    assert len(lines) <= 8
    assert failure_counts(storage)["broken"] == 1000


def test_plugins_command_shows_failure_counts(
    storage: Path, registered: list[object]
) -> None:
    register(registered, Broken(), "broken")
    UsageLogger("svc", storage_dir=storage).log_usage("op")
    plugin_manager().flush_failures()

    result = run_cli("plugins", "--dir", storage, "--json")

    assert result.returncode == 0, result.stderr
    # The CLI process does not load the inline plugin, but reads the recorded count.
    assert failure_counts(storage)["broken"] == 2


def test_cost_plugin_runs_before_builtin(
    storage: Path, registered: list[object]
) -> None:
    register(registered, FlatRate(), "flat-rate")

    house = UsageLogger("svc", storage_dir=storage).log_usage(
        "op", model="house-model", input_tokens=3000
    )
    claude = UsageLogger("svc", storage_dir=storage).log_usage(
        "op", model="claude-opus-4-6", input_tokens=1_000_000
    )

    assert house is not None and claude is not None
    assert house["cost_usd"] == 3.0
    assert claude["cost_usd"] == 5.0


def test_hook_cache_follows_registration(
    storage: Path, registered: list[object]
) -> None:
    logger = UsageLogger("svc", storage_dir=storage)
    logger.log_usage("before")
    collector = Collector()
    register(registered, collector, "late")

    logger.log_usage("after")
    plugin_manager().unregister(collector)
    registered.remove(collector)
    logger.log_usage("gone")

    assert [e["operation"] for e in collector.received] == ["after"]


def test_builtins_listed_and_marked() -> None:
    result = run_cli("plugins", "--json")

    plugins = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert plugins["toml_pricing"]["builtin"] is True
    assert "leyline_usage_cost" in plugins["toml_pricing"]["hooks"]
    assert plugins["redact_secrets"]["builtin"] is True
    assert "leyline_usage_enrich" in plugins["redact_secrets"]["hooks"]
    assert plugins["usage_adapters"]["builtin"] is True


def test_plugins_table_marks_builtins() -> None:
    result = run_cli("plugins")

    assert result.returncode == 0
    assert "toml_pricing (built-in)" in result.stdout


def test_disabled_builtin_is_not_loaded(tmp_path: Path, storage: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[plugins]\ndisabled = ["redact_secrets"]\n')
    env = {"LEYLINE_USAGE_CONFIG": str(config)}

    listing = run_cli("plugins", "--json", env=env)
    run_cli(
        "log",
        "svc",
        "op",
        "--metadata",
        '{"api_key": "sk-1"}',
        "--dir",
        storage,
        env=env,
    )

    data = json.loads(listing.stdout)
    assert "redact_secrets" not in {p["name"] for p in data["plugins"]}
    assert data["skipped"]["redact_secrets"] == "disabled in the config file"
    assert (
        json.loads((storage / "svc.jsonl").read_text())["metadata"]["api_key"] == "sk-1"
    )
