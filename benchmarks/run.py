"""Run the leyline-usage benchmark suite and write benchmarks/RESULTS.md.

Usage: python benchmarks/run.py [--quick] [--only FIGURE ...] [--output PATH]

A full run takes three to five minutes on a 2-core machine. ``--quick`` uses small
sizes and takes under a minute, to check that the suite works.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import BENCH_DIR, REPO, bench_env
from figures import FULL, QUICK, Figures
from machine import describe, versions
from report import Report

FIGURES = ("single", "concurrent", "queries", "import", "profile")

_log = logging.getLogger("benchmarks")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description="Run the leyline-usage benchmarks and write a Markdown report."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="use small sizes (under a minute); writes RESULTS-quick.md by default",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=FIGURES,
        help="run only this figure (repeatable); default: all of them",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the report (default: benchmarks/RESULTS.md, or "
        "benchmarks/RESULTS-quick.md with --quick)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        help="also write the raw figures to this JSON file",
    )
    parser.add_argument(
        "--temp-dir",
        type=Path,
        help="directory for the logs the benchmarks write (default: the system "
        "temp dir); the queries need about 1 GiB free there",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the selected figures and write the report; return the exit code."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sizes = QUICK if args.quick else FULL
    selected = args.only or list(FIGURES)
    default_name = "RESULTS-quick.md" if args.quick else "RESULTS.md"
    output = args.output or BENCH_DIR / default_name

    started = time.time()
    scratch = Path(tempfile.mkdtemp(prefix="leyline-bench-", dir=args.temp_dir))
    try:
        results = collect(sizes, selected, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results.update(
        mode="quick" if args.quick else "full",
        command=_command(argv),
        started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        duration_seconds=time.time() - started,
    )

    output.write_text(Report(results).render(), encoding="utf-8")
    _log.info("wrote %s", _relative(output))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        _log.info("wrote %s", _relative(args.json))
    return 0


def collect(sizes: Any, selected: list[str], scratch: Path) -> dict[str, Any]:
    """Run each selected figure and return everything the report needs."""
    env = bench_env(scratch)
    results: dict[str, Any] = {
        "machine": describe(scratch),
        "versions": versions(),
    }
    figures = Figures(sizes, scratch, env)
    results["sizes"] = figures.sizes_dict()
    results["batch_available"] = figures.batch_available
    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "single": figures.single_process,
        "concurrent": figures.concurrent,
        "queries": figures.queries,
        "import": figures.claude_import,
        "profile": figures.profile,
    }
    for name in FIGURES:
        if name not in selected:
            continue
        _log.info("running %s", name)
        began = time.monotonic()
        results[name] = steps[name]()
        _log.info("finished %s in %.0f s", name, time.monotonic() - began)
    return results


def _command(argv: list[str]) -> str:
    return shlex.join(["python", "benchmarks/run.py", *argv])


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
