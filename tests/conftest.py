"""Shared fixtures: a private storage directory and the bundled sample data."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from leyline_usage.plugins import reset_plugin_manager

# Installed third-party plugins and the developer's own config file must not
# change what these tests log; set before any logger loads its plugins.
os.environ["LEYLINE_USAGE_PLUGINS"] = "none"
os.environ["LEYLINE_USAGE_CONFIG"] = str(Path(__file__).parent / "no-such-config.toml")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
CLAUDE_CODE_SAMPLES = EXAMPLES / "claude-code"
ORIGINAL_FORMAT = EXAMPLES / "original-format"


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    """Keep every test away from the real ~/.claude directory and the caller's session."""
    monkeypatch.setenv("LEYLINE_USAGE_DIR", str(tmp_path / "default-storage"))
    monkeypatch.delenv("LEYLINE_SESSION_ID", raising=False)
    yield


@pytest.fixture
def fresh_plugins() -> Iterator[None]:
    """Reload config and plugins for this test and again after it."""
    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    """An empty storage directory that does not exist yet."""
    return tmp_path / "usage"


def run_cli(
    *args: str | os.PathLike[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI in a separate process and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "leyline_usage.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def run_writers(
    target: Callable[..., None], storage: Path, service: str, processes: int, count: int
) -> list[int | None]:
    """Run ``target(storage, service, worker, count)`` in spawned processes; return exit codes."""
    context = multiprocessing.get_context("spawn")
    started = [
        context.Process(target=target, args=(str(storage), service, worker, count))
        for worker in range(processes)
    ]
    for process in started:
        process.start()
    for process in started:
        process.join(timeout=300)
    return [process.exitcode for process in started]


def sequences_by_worker(entries: list[dict[str, Any]]) -> dict[int, list[int]]:
    """Return the ``seq`` numbers each worker logged, in file order."""
    sequences: dict[int, list[int]] = defaultdict(list)
    for entry in entries:
        sequences[entry["metadata"]["worker"]].append(entry["metadata"]["seq"])
    return sequences
