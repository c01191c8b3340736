"""Measure what the git enricher adds to each logged entry.

Run it with the plugin installed and git on PATH; it makes its own repository
and storage directory in a temporary directory::

    python benchmarks/enrich_cost.py

It prints the median time per call in microseconds. The first cases time the
enricher hook alone, inside and outside a repository. The others time a whole
``UsageLogger.log_usage`` call without the plugin, with it, and without it
but with the same ``git`` key passed by the caller. The last case shows what
the core itself spends on the extra metadata (redaction and encoding).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from leyline_usage import Config, UsageLogger
from leyline_usage.plugins import reset_plugin_manager

from leyline_usage_git import plugin

ROUNDS = 7


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure the git enricher's cost.")
    parser.add_argument(
        "--calls",
        type=int,
        default=20_000,
        help="calls per timed round (default: 20000). Each case runs 7 rounds.",
    )
    calls = parser.parse_args().calls

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        repository = make_repository(root / "project")
        outside = root / "outside"
        outside.mkdir()
        os.environ["LEYLINE_USAGE_CONFIG"] = str(root / "no-config.toml")
        os.environ["LEYLINE_USAGE_DIR"] = str(root / "usage")

        print(f"Python {platform.python_version()} on {platform.platform()}")
        print(f"{os.cpu_count()} CPUs, {platform.machine()}")
        print(f"{'case':<56} {'µs/call':>8}")
        for refresh_seconds in (1.0, 0.0):
            configure(refresh_seconds)
            for where, directory in (("repository", repository), ("outside", outside)):
                os.chdir(directory)
                name = f"enricher, {where}, refresh_seconds={refresh_seconds:g}"
                report(name, time_per_call(enrich, calls))

        os.chdir(repository)
        configure(1.0)
        git_metadata: dict[str, Any] = {}
        plugin.leyline_usage_enrich(entry={}, metadata=git_metadata)
        for plugins, metadata, label in (
            ("none", None, "plugins=none"),
            ("git", None, "plugins=git"),
            ("none", git_metadata, "plugins=none, caller passes the same git key"),
        ):
            call = log_call(root, plugins, metadata)
            report(f"log_usage, {label}", time_per_call(call, calls))


def make_repository(path: Path) -> Path:
    """Create a repository with an origin remote and one commit."""
    path.mkdir()
    environment = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Benchmark",
        "GIT_AUTHOR_EMAIL": "benchmark@example.com",
        "GIT_COMMITTER_NAME": "Benchmark",
        "GIT_COMMITTER_EMAIL": "benchmark@example.com",
    }
    for command in (
        ["git", "init", "--quiet", "--initial-branch=main"],
        ["git", "remote", "add", "origin", "https://git.example.com/org/project.git"],
        ["git", "commit", "--quiet", "--allow-empty", "-m", "benchmark"],
    ):
        subprocess.run(command, cwd=path, env=environment, check=True)
    return path


def configure(refresh_seconds: float) -> None:
    settings = {"plugins": {"git": {"refresh_seconds": refresh_seconds}}}
    plugin.leyline_usage_configure(config=Config(data=settings))


def enrich() -> None:
    entry: dict[str, Any] = {}
    plugin.leyline_usage_enrich(entry=entry, metadata={})


def log_call(
    root: Path, plugins: str, metadata: dict[str, Any] | None
) -> Callable[[], object]:
    """Return a ``log_usage`` call of a logger that loaded only ``plugins``.

    The built-in plugins, such as secret redaction, load in every case.
    """
    os.environ["LEYLINE_USAGE_PLUGINS"] = plugins
    reset_plugin_manager()
    logger = UsageLogger(f"bench-{plugins}", storage_dir=root / "usage")

    def call() -> object:
        return logger.log_usage(
            "op", model="m", input_tokens=10, output_tokens=5, metadata=metadata
        )

    return call


def time_per_call(call: Callable[[], object], calls: int) -> float:
    """Return the median over ROUNDS rounds of the time per call, in µs."""
    call()  # the first call locates the repository and fills the cache
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter_ns()
        for _ in range(calls):
            call()
        rounds.append((time.perf_counter_ns() - started) / calls / 1000)
    return statistics.median(rounds)


def report(name: str, microseconds: float) -> None:
    print(f"{name:<56} {microseconds:>8.2f}")


if __name__ == "__main__":
    main()
