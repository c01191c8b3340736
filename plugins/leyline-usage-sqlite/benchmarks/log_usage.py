"""Measure what the plugin adds to ``UsageLogger.log_usage``.

Logs the same entries with third-party plugins off and with this plugin on,
each run in a fresh process and storage directory, and prints the median
time per call in microseconds. Run it with the interpreter of an environment
where leyline-usage and this plugin are installed::

    python benchmarks/log_usage.py [--entries N] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(storage_dir: Path, entries: int) -> float:
    """Log ``entries`` entries and return the mean microseconds per call."""
    from leyline_usage import UsageLogger

    logger = UsageLogger("benchmark", storage_dir=storage_dir)
    logger.log_usage("warm-up", tokens=1)
    start = time.perf_counter()
    for number in range(entries):
        logger.log_usage(
            "summarize",
            model="claude-sonnet-4-5",
            input_tokens=1200,
            output_tokens=300,
            metadata={"number": number},
        )
    return (time.perf_counter() - start) / entries * 1e6


def run(plugins: str, entries: int) -> float:
    """Measure in a new process that loads the third-party plugins ``plugins``."""
    with tempfile.TemporaryDirectory() as directory:
        env = {
            **os.environ,
            "LEYLINE_USAGE_PLUGINS": plugins,
            "LEYLINE_USAGE_CONFIG": str(Path(directory) / "missing.toml"),
        }
        output = subprocess.run(
            [sys.executable, __file__, "--child", directory, "--entries", str(entries)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return float(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5000, help="calls per run")
    parser.add_argument("--runs", type=int, default=5, help="runs per setting")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(measure(args.child, args.entries))
        return
    for plugins in ("none", "sqlite"):
        times = [run(plugins, args.entries) for _ in range(args.runs)]
        median = statistics.median(times)
        print(f"LEYLINE_USAGE_PLUGINS={plugins}: {median:.1f} µs per call")


if __name__ == "__main__":
    main()
