"""The figures of the suite: each function runs child processes and returns numbers.

The parent process never imports leyline-usage, so nothing it does shows up
in a measurement.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import (
    CHILD_TIMEOUT_SECONDS,
    child_command,
    parse_result,
    percentile,
    run_child,
    spread,
)

# Contenders of the single-process figure, in the order of the results table.
SINGLE_CONTENDERS = (
    "log_usage",
    "batch",
    "naive",
    "file_handler",
    "concurrent_handler",
    "write",
    "flock_write",
)
# Only process-safe contenders run in the multi-process figure: the naive
# design and logging.FileHandler take no lock.
CONCURRENT_CONTENDERS = ("log_usage", "batch", "concurrent_handler", "flock_write")
QUERIES = ("summary", "errors", "sessions")


@dataclass(frozen=True)
class Sizes:
    """How much work each figure does; ``--quick`` uses smaller ones."""

    write_entries: int
    naive_write_entries: int
    write_rounds: int
    write_warmup: int
    processes: int
    concurrent_entries: int
    concurrent_rounds: int
    concurrent_warmup: int
    query_entries: int
    query_rounds: int
    append_entries: int
    import_rounds: int
    profile_calls: int
    profile_rows: int


FULL = Sizes(
    write_entries=10_000,
    naive_write_entries=1_000,
    write_rounds=21,
    write_warmup=2_000,
    processes=4,
    concurrent_entries=25_000,
    concurrent_rounds=7,
    concurrent_warmup=500,
    query_entries=1_000_000,
    query_rounds=5,
    append_entries=1_000,
    import_rounds=7,
    profile_calls=100_000,
    profile_rows=20,
)
QUICK = Sizes(
    write_entries=2_000,
    naive_write_entries=200,
    write_rounds=3,
    write_warmup=200,
    processes=4,
    concurrent_entries=2_000,
    concurrent_rounds=2,
    concurrent_warmup=100,
    query_entries=50_000,
    query_rounds=1,
    append_entries=1_000,
    import_rounds=2,
    profile_calls=10_000,
    profile_rows=20,
)


class Figures:
    """Runs the figures in child processes under ``scratch`` with ``env``."""

    def __init__(self, sizes: Sizes, scratch: Path, env: dict[str, str]) -> None:
        self.sizes = sizes
        self.scratch = scratch
        self.env = env
        probe = run_child("writes", "probe", {"directory": str(scratch / "probe")}, env)
        self.batch_available: bool = probe["batch"]
        self.sample_line: str = probe["line"]
        self._base = scratch / "queries" / "base.jsonl"
        self._generated: dict[str, Any] | None = None

    def sizes_dict(self) -> dict[str, int]:
        """Return the sizes as a plain dict."""
        return asdict(self.sizes)

    # -- writes ------------------------------------------------------------------

    def single_process(self) -> dict[str, Any]:
        """Time per entry of log_usage and each reference, all in one process."""
        sizes = self.sizes
        contenders = [
            name
            for name in SINGLE_CONTENDERS
            if name != "batch" or self.batch_available
        ]
        directory = self.scratch / "single"
        result = run_child(
            "writes",
            "single",
            {
                "directory": str(directory),
                "entries": {
                    name: sizes.naive_write_entries
                    if name == "naive"
                    else sizes.write_entries
                    for name in contenders
                },
                "warmup": sizes.write_warmup,
                "rounds": sizes.write_rounds,
                "contenders": contenders,
            },
            self.env,
        )
        shutil.rmtree(directory, ignore_errors=True)
        for name, problem in result["lost"].items():
            raise RuntimeError(f"{name} lost entries: its log has {problem}")

        samples = result["us_per_entry"]
        # Writers took turns within each round, so the ratio of two writers in
        # one round is measured under the same load.
        ratios = {
            name: spread(
                [
                    writer_time / log_usage_time
                    for writer_time, log_usage_time in zip(
                        times, samples["log_usage"], strict=True
                    )
                ]
            )
            for name, times in samples.items()
        }
        return {
            "line_bytes": result["line_bytes"],
            "us_per_entry": {name: spread(times) for name, times in samples.items()},
            "ratio_to_log_usage": ratios,
        }

    def concurrent(self) -> dict[str, Any]:
        """Aggregate entries per second of several processes logging to one service."""
        contenders = [
            name
            for name in CONCURRENT_CONTENDERS
            if name != "batch" or self.batch_available
        ]
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        latencies: dict[str, list[int]] = {name: [] for name in contenders}
        for round_number in range(self.sizes.concurrent_rounds):
            for name in contenders:
                directory = self.scratch / f"concurrent-{name}-{round_number}"
                rate, round_latencies = self._concurrent_round(name, directory)
                rates[name].append(rate)
                latencies[name].extend(round_latencies)
                shutil.rmtree(directory, ignore_errors=True)

        figures = {}
        for name in contenders:
            ordered = sorted(latencies[name])
            figures[name] = {
                "entries_per_second": spread(rates[name]),
                "p50_seconds": percentile(ordered, 0.50) / 1e9,
                "p99_seconds": percentile(ordered, 0.99) / 1e9,
                "max_seconds": ordered[-1] / 1e9,
            }
        return figures

    def _concurrent_round(self, name: str, directory: Path) -> tuple[float, list[int]]:
        sizes = self.sizes
        params = {
            "contender": name,
            "directory": str(directory),
            "entries": sizes.concurrent_entries,
            "warmup": sizes.concurrent_warmup,
            "line": self.sample_line,
        }
        command = child_command("writes", "writer", params)
        writers = [
            subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=self.env,
            )
            for _ in range(sizes.processes)
        ]
        try:
            for writer in writers:
                assert writer.stdout is not None
                if writer.stdout.readline().strip() != "ready":
                    _, errors = writer.communicate(timeout=CHILD_TIMEOUT_SECONDS)
                    raise RuntimeError(f"writer for {name} did not start:\n{errors}")
            for writer in writers:
                assert writer.stdin is not None
                writer.stdin.write("go\n")
                writer.stdin.flush()
            results = []
            for writer in writers:
                output, errors = writer.communicate(timeout=CHILD_TIMEOUT_SECONDS)
                if writer.returncode != 0:
                    raise RuntimeError(f"writer for {name} failed:\n{errors}")
                results.append(parse_result(output, f"writes.writer {name}"))
        finally:
            for writer in writers:
                if writer.poll() is None:
                    writer.kill()
                    writer.wait()

        expected = sizes.processes * (
            sizes.concurrent_warmup + sizes.concurrent_entries
        )
        _check_complete_lines(directory / "bench.jsonl", expected, name)
        started = min(result["started_ns"] for result in results)
        ended = max(result["ended_ns"] for result in results)
        entries = sum(result["entries"] for result in results)
        round_latencies = [ns for result in results for ns in result["latencies_ns"]]
        return entries / ((ended - started) / 1e9), round_latencies

    # -- queries -----------------------------------------------------------------

    def queries(self) -> dict[str, Any]:
        """Time the three queries through leyline-usage, json.loads and DuckDB."""
        sizes = self.sizes
        base, generated = self._query_log()
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            way: {query: [] for query in QUERIES}
            for way in ("leyline", "json", "duckdb")
        }
        for round_number in range(sizes.query_rounds):
            for query in QUERIES:
                runs["leyline"][query].append(
                    self._leyline_query(base, query, round_number)
                )
                for way in ("json", "duckdb"):
                    params = {"path": str(base), "query": query}
                    runs[way][query].append(run_child("queries", way, params, self.env))
        _check_agreement(runs, sizes.append_entries)
        return {"file": generated, "runs": _summarize_query_runs(runs)}

    def _query_log(self) -> tuple[Path, dict[str, Any]]:
        """Return the generated log of the query figures, writing it on first use."""
        if self._generated is None:
            self._base.parent.mkdir(parents=True, exist_ok=True)
            self._generated = run_child(
                "queries",
                "generate",
                {
                    "path": str(self._base),
                    "entries": self.sizes.query_entries,
                    "seed": 20251205,
                    "scratch": str(self._base.parent / "templates"),
                },
                self.env,
            )
        return self._base, self._generated

    def _leyline_query(
        self, base: Path, query: str, round_number: int
    ) -> dict[str, Any]:
        # Appends change the log, so every run starts from its own copy.
        directory = self.scratch / "queries" / f"leyline-{query}-{round_number}"
        directory.mkdir(mode=0o700)
        shutil.copyfile(base, directory / "bench.jsonl")
        params = {
            "directory": str(directory),
            "query": query,
            "append_entries": self.sizes.append_entries,
        }
        try:
            result = run_child("queries", "leyline", params, self.env)
            # A second process finds the log as the first left it, as the next
            # command-line query would.
            again = run_child("queries", "leyline_once", params, self.env)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        result["new_process_seconds"] = again["seconds"]
        result["new_process_added_rss"] = again["peak_rss"] - again["baseline_rss"]
        result["new_process_digest"] = again["digest"]
        return result

    # -- import and profile ----------------------------------------------------

    def claude_import(self) -> dict[str, Any]:
        """Time importing the bundled Claude Code transcripts, one process per run."""
        runs = []
        for round_number in range(self.sizes.import_rounds):
            directory = self.scratch / f"import-{round_number}"
            runs.append(
                run_child(
                    "claude_import", "import", {"directory": str(directory)}, self.env
                )
            )
            shutil.rmtree(directory, ignore_errors=True)
        first = runs[0]
        if any(run["added_again"] != 0 for run in runs):
            raise RuntimeError("re-importing the transcripts added entries again")
        return {
            "import_seconds": spread([run["import_seconds"] for run in runs]),
            "reimport_seconds": spread([run["reimport_seconds"] for run in runs]),
            "files": first["files"],
            "records": first["records"],
            "added": first["added"],
        }

    def profile(self) -> dict[str, Any]:
        """Profile log_usage, and one summary over the log of the query figures."""
        sizes = self.sizes
        directory = self.scratch / "profile-log-usage"
        log_usage = run_child(
            "profiling",
            "log_usage",
            {
                "directory": str(directory),
                "calls": sizes.profile_calls,
                "limit": sizes.profile_rows,
            },
            self.env,
        )
        shutil.rmtree(directory, ignore_errors=True)
        profiles = {"log_usage": log_usage}

        base, _ = self._query_log()
        directory = self.scratch / "profile-summary"
        directory.mkdir(mode=0o700)
        # A hard link suffices because the summary only reads the log.
        _link_or_copy(base, directory / "bench.jsonl")
        profiles["summary"] = run_child(
            "profiling",
            "summary",
            {"directory": str(directory), "limit": sizes.profile_rows},
            self.env,
        )
        shutil.rmtree(directory, ignore_errors=True)
        return profiles


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        target.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, target)


def _check_complete_lines(path: Path, expected: int, name: str) -> None:
    """Raise unless ``path`` contains ``expected`` lines that each parse as JSON."""
    # NOTE: only the live log is counted. Rotation is off without a config
    # file, and with it on, entries in rotated segments would count as lost.
    count = 0
    with open(path, "rb") as log:
        for line in log:
            count += 1
            try:
                json.loads(line)
            except ValueError as exc:
                raise RuntimeError(
                    f"{name}: line {count} of {path} is not valid JSON ({exc}): "
                    "concurrent writes interleaved"
                ) from exc
    if count != expected:
        raise RuntimeError(f"{name}: {path} has {count} lines, expected {expected}")


def _check_agreement(
    runs: dict[str, dict[str, list[dict[str, Any]]]], appended: int
) -> None:
    """Raise unless every way of running a query returned the same result."""
    for query in QUERIES:
        reference = runs["leyline"][query][0]["cold_digest"]
        for way, by_query in runs.items():
            for run in by_query[query]:
                _compare(query, "leyline", reference, way, run["cold_digest"])
        for run in runs["leyline"][query]:
            _compare(
                query,
                "the first process after appends",
                run["after_append_digest"],
                "a new process",
                run["new_process_digest"],
            )
            after = run["after_append_digest"]
            if "operations" in reference and (
                after["operations"] != reference["operations"] + appended
            ):
                raise RuntimeError(
                    f"{query} after appending {appended} entries counts "
                    f"{after['operations']} operations, expected "
                    f"{reference['operations'] + appended}"
                )


def _compare(
    query: str, name: str, expected: dict[str, Any], other: str, got: dict[str, Any]
) -> None:
    for key, value in expected.items():
        if key == "cost":
            same = math.isclose(value, got[key], rel_tol=1e-9, abs_tol=1e-5)
        else:
            same = value == got[key]
        if not same:
            raise RuntimeError(
                f"{query}: {name} and {other} disagree on {key}: "
                f"{value!r} != {got[key]!r}"
            )


def _summarize_query_runs(
    runs: dict[str, dict[str, list[dict[str, Any]]]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Reduce the runs of each query to medians and ranges of time and memory."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for way, by_query in runs.items():
        summary[way] = {}
        for query, query_runs in by_query.items():
            figures: dict[str, Any] = {
                "cold_seconds": spread([run["cold_seconds"] for run in query_runs]),
                "baseline_rss": max(run["baseline_rss"] for run in query_runs),
                "cold_peak_rss": max(run["cold_peak_rss"] for run in query_runs),
                "cold_added_rss": max(
                    run["cold_peak_rss"]
                    - run["baseline_rss"]
                    + run.get("cold_helper_added_rss", 0)
                    for run in query_runs
                ),
            }
            if way == "leyline":
                figures["after_append_seconds"] = spread(
                    [run["after_append_seconds"] for run in query_runs]
                )
                figures["new_process_seconds"] = spread(
                    [run["new_process_seconds"] for run in query_runs]
                )
                figures["new_process_added_rss"] = max(
                    run["new_process_added_rss"] for run in query_runs
                )
                figures.update(_after_append_memory(query_runs))
            summary[way][query] = figures
    return summary


def _after_append_memory(query_runs: list[dict[str, Any]]) -> dict[str, Any]:
    peaks = [run["after_append_peak_rss"] for run in query_runs]
    if any(peak is None for peak in peaks):
        return {"after_append_peak_rss": None, "after_append_added_rss": None}
    return {
        "after_append_peak_rss": max(peaks),
        "after_append_added_rss": max(
            run["after_append_peak_rss"] - run["after_append_baseline_rss"]
            for run in query_runs
        ),
    }
