"""Child tasks that run ``log_usage`` and the usage summary under cProfile.

Each returns the functions with the largest cumulative time. cProfile adds
its own overhead to every Python call, so the shares between functions guide
optimization, while the absolute times are larger than without the profiler.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from pathlib import Path
from typing import Any

from common import REPO, child_main
from queries import SERVICE, SUMMARY_DAYS
from writes import LogUsage

from leyline_usage import UsageLogger

SITE_MARKERS = ("/site-packages/", "/src/", "/lib/python3")


def _short_location(filename: str, line: int, function: str) -> str:
    """Return ``package/module.py:line(function)`` without the install prefix."""
    if filename == "~":
        return function  # a built-in function, e.g. <built-in method posix.write>
    if filename.startswith(f"{REPO}/benchmarks/"):
        filename = filename[len(f"{REPO}/") :]
    else:
        for marker in SITE_MARKERS:
            if marker in filename:
                filename = filename.rsplit(marker, 1)[1]
                break
    return f"{filename}:{line}({function})"


def top_functions(profile: cProfile.Profile, limit: int) -> list[dict[str, Any]]:
    """Return the ``limit`` functions with the largest cumulative time."""
    stats = pstats.Stats(profile)
    stats.sort_stats(pstats.SortKey.CUMULATIVE)
    rows = []
    for key in stats.fcn_list[:limit]:  # type: ignore[attr-defined]
        primitive_calls, calls, own_time, cumulative_time, _ = stats.stats[key]  # type: ignore[attr-defined]
        rows.append(
            {
                "function": _short_location(*key),
                "calls": calls,
                "own_seconds": own_time,
                "cumulative_seconds": cumulative_time,
            }
        )
    return rows


def log_usage_task(params: dict[str, Any]) -> dict[str, Any]:
    """Profile ``calls`` calls of the benchmark's ``log_usage`` call."""
    contender = LogUsage(Path(params["directory"]))
    contender.run(1_000)
    calls = int(params["calls"])
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    contender.run(calls)
    profile.disable()
    elapsed = time.perf_counter() - started
    return {
        "calls": calls,
        "profiled_seconds": elapsed,
        "top": top_functions(profile, int(params["limit"])),
    }


def summary_task(params: dict[str, Any]) -> dict[str, Any]:
    """Profile one ``get_usage_summary`` over the log in ``directory``."""
    logger = UsageLogger(SERVICE, storage_dir=Path(params["directory"]))
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    summary = logger.get_usage_summary(days=SUMMARY_DAYS)
    profile.disable()
    elapsed = time.perf_counter() - started
    return {
        "entries": summary["total_operations"],
        "profiled_seconds": elapsed,
        "top": top_functions(profile, int(params["limit"])),
    }


if __name__ == "__main__":
    child_main({"log_usage": log_usage_task, "summary": summary_task})
