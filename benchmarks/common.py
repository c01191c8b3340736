"""Helpers shared by the benchmark modules: child processes, statistics, memory.

Every figure runs in child processes started by :func:`run_child` or
:func:`child_command`, so the parent's imports and memory never show up in a
measurement. A child is ``python benchmarks/MODULE.py TASK PARAMS_JSON`` and
prints one JSON object as its last line of output.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent

# A child that runs longer than this has hung (a lost lock, a stuck barrier).
CHILD_TIMEOUT_SECONDS = 600

Task = Callable[[dict[str, Any]], dict[str, Any]]


def bench_env(scratch: Path) -> dict[str, str]:
    """Return the environment of every child: default plugins, no user config.

    ``LEYLINE_USAGE_PLUGINS=none`` keeps installed third-party plugins out,
    while the built-in ones (cost model, secret redaction, usage adapters) stay
    on as in a default install. The config path points at a file that does not
    exist, so the developer's own config cannot change prices or plugins.
    """
    env = dict(os.environ)
    env["LEYLINE_USAGE_PLUGINS"] = "none"
    env["LEYLINE_USAGE_CONFIG"] = str(scratch / "no-such-config.toml")
    env["LEYLINE_USAGE_DIR"] = str(scratch / "default-storage")
    env.pop("LEYLINE_SESSION_ID", None)
    return env


def child_command(module: str, task: str, params: Mapping[str, Any]) -> list[str]:
    """Return the command line that runs ``task`` of ``benchmarks/{module}.py``."""
    return [sys.executable, str(BENCH_DIR / f"{module}.py"), task, json.dumps(params)]


def run_child(
    module: str, task: str, params: Mapping[str, Any], env: Mapping[str, str]
) -> dict[str, Any]:
    """Run ``task`` of ``benchmarks/MODULE.py`` in a new process; return its result."""
    completed = subprocess.run(
        child_command(module, task, params),
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=CHILD_TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"benchmark task {module}.{task} failed with exit code "
            f"{completed.returncode}:\n{completed.stderr.strip()}"
        )
    return parse_result(completed.stdout, f"{module}.{task}")


def parse_result(stdout: str, task_name: str) -> dict[str, Any]:
    """Return the JSON object on the last line a child printed."""
    lines = stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"benchmark task {task_name} printed no result")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def child_main(tasks: Mapping[str, Task]) -> None:
    """Run the task named on the command line and print its result as JSON."""
    if len(sys.argv) != 3 or sys.argv[1] not in tasks:
        names = ", ".join(sorted(tasks))
        sys.exit(f"usage: {sys.argv[0]} TASK PARAMS_JSON (TASK is one of: {names})")
    result = tasks[sys.argv[1]](json.loads(sys.argv[2]))
    print(json.dumps(result), flush=True)


def spread(samples: Sequence[float]) -> dict[str, float]:
    """Return the median, min and max of repeated measurements."""
    if not samples:
        raise ValueError("no samples to summarize")
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "rounds": len(samples),
    }


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of already sorted values."""
    if not sorted_values:
        raise ValueError("no values for a percentile")
    rank = math.ceil(fraction * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def peak_rss_bytes() -> int | None:
    """Return this process's peak resident set size (VmHWM), or None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS; return False where the kernel does not allow it.

    Writing 5 to ``/proc/self/clear_refs`` resets the peak (Linux 4.0 and later).
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True
