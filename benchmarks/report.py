"""Renders the results of a run as the Markdown page ``RESULTS.md``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

LABELS = {
    "log_usage": "`UsageLogger.log_usage`",
    "batch": "`log_usage` inside `with logger.batch():`",
    "naive": "naive logger of the original design",
    "file_handler": "`logging.FileHandler` + JSON formatter",
    "concurrent_handler": "concurrent-log-handler `ConcurrentRotatingFileHandler`",
    "write": "floor: `os.write` on a kept-open `O_APPEND` descriptor",
    "flock_write": "floor: `flock` + `os.write` + unlock",
}
QUERY_LABELS = {
    "summary": "`get_usage_summary(days=7)`",
    "errors": "`get_recent_errors(count=10)`",
    "sessions": "`list_sessions()`",
}
WAY_LABELS = {
    "leyline": "leyline-usage",
    "json": "`json.loads` per line",
    "duckdb": "DuckDB `read_json`",
}

# Goals of the Targets table. A missed goal is reported as a fail, never raised.
MAX_FLOOR_RATIO = 5.0
MIN_NAIVE_RATIO = 30.0
MIN_CONCURRENT_RATE = 100_000
MAX_WAIT_SECONDS = 0.050
MIN_BATCH_RATE = 500_000
MAX_DUCKDB_RATIO = 1.5
MAX_AFTER_APPEND_SECONDS = 0.050
MAX_QUERY_MEMORY = 64 * 2**20
# A row of the Targets table: what, measured value, goal, and whether it passed
# (None when the run did not measure it).
TargetRow = tuple[str, str, str, bool | None]

# Memory figures of a leyline-usage query that the memory target applies to.
MEMORY_KEYS = ("cold_added_rss", "after_append_added_rss", "new_process_added_rss")


def seconds_text(seconds: float) -> str:
    """Format a duration with a unit that keeps three significant digits."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def spread_text(figure: dict[str, float], scale: float = 1.0) -> tuple[str, str]:
    """Return the median and the ``min–max`` range of a spread, in seconds."""
    median = seconds_text(figure["median"] * scale)
    span = (
        f"{seconds_text(figure['min'] * scale)}–{seconds_text(figure['max'] * scale)}"
    )
    return median, span


def rate_text(rate: float) -> str:
    """Format entries per second."""
    return f"{rate:,.0f}"


def megabytes(size: float | None) -> str:
    """Format bytes as MiB with one decimal."""
    return "n/a" if size is None else f"{size / 2**20:.1f}"


def ratio_text(ratio: float) -> str:
    """Format a ratio such as ``3.2x``."""
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.1f}x"


def ratio_spread_text(figure: dict[str, float]) -> str:
    """Format the median ratio with its ``min–max`` range in parentheses."""
    return (
        f"{ratio_text(figure['median'])} "
        f"({ratio_text(figure['min'])}–{ratio_text(figure['max'])})"
    )


def table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    """Return the lines of a Markdown table."""
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return lines


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return "not measured"
    return "pass" if passed else "**fail**"


class Report:
    """Builds ``RESULTS.md`` from the dict that ``run.py`` collects."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results
        self.lines: list[str] = []

    def render(self) -> str:
        """Return the whole page."""
        self._header()
        self._targets()
        if "single" in self.results:
            self._single()
        if "concurrent" in self.results:
            self._concurrent()
        self._batch()
        if "queries" in self.results:
            self._queries()
        if "import" in self.results:
            self._import()
        self._changes()
        if "profile" in self.results:
            self._profile()
        return "\n".join(self.lines) + "\n"

    def _changes(self) -> None:
        # The history of optimizations is written by hand beside this module,
        # so that it survives each regeneration of the page.
        notes = Path(__file__).with_name("optimizations.md")
        if notes.exists():
            self.add(notes.read_text(encoding="utf-8").rstrip(), "")

    def add(self, *lines: str) -> None:
        """Append lines to the page."""
        self.lines.extend(lines)

    # -- sections ----------------------------------------------------------------

    def _header(self) -> None:
        results = self.results
        self.add("# Benchmark results", "")
        self.add(
            f"Written by `{results['command']}` on {results['started']}, in "
            f"{results['duration_seconds'] / 60:.1f} minutes. "
            "[README.md](README.md) says what each figure measures and how.",
            "",
        )
        if results["mode"] == "quick":
            self.add(
                "**Quick run**: the sizes are reduced, so the figures only show that "
                "the suite works. The targets refer to the sizes of a full run.",
                "",
            )
        self.add(
            "Every figure is the median over rounds, with the min–max range. "
            "Every ratio compares figures of this run: in the one-process tables "
            "it is the median of the ratios within each round, elsewhere the ratio "
            "of the medians. The machine is shared, so compare ratios rather than "
            "absolute times across runs.",
            "",
        )
        self.add("## Machine and versions", "")
        facts = [*results["machine"].items(), *results["versions"].items()]
        self.add(*table(["", "value"], facts), "")

    def _targets(self) -> None:
        rows = [
            (description, measured, limit, _verdict(passed))
            for description, measured, limit, passed in self._target_rows()
        ]
        self.add("## Targets", "")
        self.add(
            "Goals for the library, checked against this run. A failing target "
            "does not fail the run.",
            "",
        )
        self.add(*table(["target", "measured", "goal", "result"], rows), "")

    def _target_rows(self) -> list[TargetRow]:
        return [
            *self._write_target_rows(),
            *self._concurrent_target_rows(),
            self._batch_target_row(),
            *self._query_target_rows(),
        ]

    def _write_target_rows(self) -> list[TargetRow]:
        ratios = self.results.get("single", {}).get("ratio_to_log_usage", {})
        if "flock_write" not in ratios or "naive" not in ratios:
            return [("`log_usage` vs the floor and the naive design", "-", "", None)]

        floor_ratio = 1 / ratios["flock_write"]["median"]
        naive_ratio = ratios["naive"]["median"]
        return [
            (
                "`log_usage` time per entry ÷ the `flock` + append floor",
                ratio_text(floor_ratio),
                f"≤ {MAX_FLOOR_RATIO:g}x",
                floor_ratio <= MAX_FLOOR_RATIO,
            ),
            (
                "naive design's time per entry ÷ `log_usage`",
                ratio_text(naive_ratio),
                f"≥ {MIN_NAIVE_RATIO:g}x",
                naive_ratio >= MIN_NAIVE_RATIO,
            ),
        ]

    def _concurrent_target_rows(self) -> list[TargetRow]:
        concurrent = self.results.get("concurrent", {}).get("log_usage")
        processes = self.results["sizes"]["processes"]
        if not concurrent:
            return [(f"{processes} processes, `log_usage`", "-", "", None)]

        rate = concurrent["entries_per_second"]["median"]
        longest = concurrent["max_seconds"]
        return [
            (
                f"{processes} processes, `log_usage`, entries/s together",
                rate_text(rate),
                f"≥ {rate_text(MIN_CONCURRENT_RATE)}",
                rate >= MIN_CONCURRENT_RATE,
            ),
            (
                f"{processes} processes, longest `log_usage` call (lock wait "
                "included), all rounds",
                seconds_text(longest),
                f"≤ {seconds_text(MAX_WAIT_SECONDS)}",
                longest <= MAX_WAIT_SECONDS,
            ),
        ]

    def _batch_target_row(self) -> TargetRow:
        description = "batch, entries/s in one process"
        goal = f"≥ {rate_text(MIN_BATCH_RATE)}"
        single = self.results.get("single", {}).get("us_per_entry", {})
        batch = single.get("batch", {}).get("median")
        if not batch:
            measured = "not available" if self._batch_missing() else "-"
            return (description, measured, goal, None)

        rate = 1e6 / batch
        return (description, rate_text(rate), goal, rate >= MIN_BATCH_RATE)

    def _query_target_rows(self) -> list[TargetRow]:
        queries = self.results.get("queries")
        if not queries:
            return [("queries over the large log", "-", "", None)]

        runs = queries["runs"]
        entries = f"{queries['file']['entries']:,}"
        appended = f"{self.results['sizes']['append_entries']:,}"
        leyline = runs["leyline"]["summary"]
        duckdb = runs["duckdb"]["summary"]
        duckdb_ratio = (
            leyline["cold_seconds"]["median"] / duckdb["cold_seconds"]["median"]
        )
        after = leyline["after_append_seconds"]["median"]
        new_process = leyline["new_process_seconds"]["median"]
        added_memory = max(
            figure
            for figures in runs["leyline"].values()
            for key in MEMORY_KEYS
            if (figure := figures.get(key)) is not None
        )
        total_memory = max(
            figures["cold_peak_rss"] for figures in runs["leyline"].values()
        )
        after_goal = f"≤ {seconds_text(MAX_AFTER_APPEND_SECONDS)}"

        return [
            (
                f"summary over {entries} entries, cold, ÷ DuckDB",
                ratio_text(duckdb_ratio),
                f"≤ {MAX_DUCKDB_RATIO:g}x",
                duckdb_ratio <= MAX_DUCKDB_RATIO,
            ),
            (
                f"summary again in the same process after {appended} more entries",
                seconds_text(after),
                after_goal,
                after <= MAX_AFTER_APPEND_SECONDS,
            ),
            (
                f"summary in a new process after {appended} more entries",
                seconds_text(new_process),
                after_goal,
                new_process <= MAX_AFTER_APPEND_SECONDS,
            ),
            (
                "peak memory of any leyline-usage query, above the process's baseline",
                f"{megabytes(added_memory)} MiB "
                f"({megabytes(total_memory)} MiB whole process)",
                f"≤ {megabytes(MAX_QUERY_MEMORY)} MiB",
                added_memory <= MAX_QUERY_MEMORY,
            ),
        ]

    def _batch_missing(self) -> bool:
        return not self.results.get("batch_available", False)

    def _single(self) -> None:
        single = self.results["single"]
        sizes = self.results["sizes"]
        figures = single["us_per_entry"]
        ratios = single["ratio_to_log_usage"]
        self.add("## Writing in one process", "")
        self.add(
            f"Each round writes {sizes['write_entries']:,} entries with each writer in "
            f"turn ({sizes['naive_write_entries']:,} with the slow naive logger), in "
            f"one process, after {sizes['write_warmup']:,} warm-up entries; rounds: "
            f"{sizes['write_rounds']}. The call logs an operation, a model, input, "
            "output, cache read and cache write tokens, a duration and a two-key "
            f"metadata dict. `log_usage` writes it as a {single['line_bytes']}-byte "
            "line, and the floors write a line of that length. The ratio column is "
            "the median of the ratios within each round, with their range.",
            "",
        )
        rows = []
        for name in figures:
            if name == "batch":
                continue
            figure = figures[name]
            median, span = spread_text(figure, 1e-6)
            rows.append(
                (
                    LABELS[name],
                    median,
                    span,
                    rate_text(1e6 / figure["median"]),
                    "1" if name == "log_usage" else ratio_spread_text(ratios[name]),
                )
            )
        header = ["writer", "time per entry", "min–max", "entries/s", "÷ log_usage"]
        self.add(*table(header, rows), "")

    def _concurrent(self) -> None:
        concurrent = self.results["concurrent"]
        sizes = self.results["sizes"]
        self.add(f"## {sizes['processes']} processes on one service", "")
        self.add(
            f"{sizes['processes']} processes each write "
            f"{sizes['concurrent_entries']:,} entries to the same file after "
            f"{sizes['concurrent_warmup']:,} warm-up entries; rounds: "
            f"{sizes['concurrent_rounds']}. Entries/s is all entries divided "
            "by the time from the first writer's start to the last one's end. The "
            "latencies are of single calls, over all calls of all rounds, and "
            "include waiting for the lock and being descheduled: 4 processes "
            "share 2 cores. Every line is checked to be complete JSON afterwards. "
            "The naive design and `logging.FileHandler` take no lock, so they are "
            "left out.",
            "",
        )
        log_usage = concurrent["log_usage"]["entries_per_second"]["median"]
        rows = []
        for name, figure in concurrent.items():
            rate = figure["entries_per_second"]
            rows.append(
                (
                    LABELS[name],
                    rate_text(rate["median"]),
                    f"{rate_text(rate['min'])}–{rate_text(rate['max'])}",
                    seconds_text(figure["p50_seconds"]),
                    seconds_text(figure["p99_seconds"]),
                    seconds_text(figure["max_seconds"]),
                    ratio_text(rate["median"] / log_usage),
                )
            )
        header = [
            "writer",
            "entries/s",
            "min–max",
            "p50 call",
            "p99 call",
            "max call",
            "rate ÷ log_usage",
        ]
        self.add(*table(header, rows), "")
        if "flock_write" in concurrent:
            floor = seconds_text(concurrent["flock_write"]["max_seconds"])
            self.add(
                f"The floor's longest call ({floor}) shows the delay that lock waits "
                "and scheduling on this machine cause with almost no work inside "
                "the lock.",
                "",
            )

    def _batch(self) -> None:
        self.add("## Batch writes", "")
        if self._batch_missing():
            self.add(
                "Not available: `UsageLogger` has no `batch` method in this "
                "version, so there is nothing to measure.",
                "",
            )
            return
        where = (
            " The multi-process row is in the table above."
            if "concurrent" in self.results
            else ""
        )
        self.add(
            "`with logger.batch():` with its default limits around a round of "
            "calls; the times include writing the last buffered entries." + where,
            "",
        )
        single = self.results.get("single", {})
        if "batch" in single.get("us_per_entry", {}):
            figure = single["us_per_entry"]["batch"]
            median, span = spread_text(figure, 1e-6)
            rows = [
                (
                    "one process",
                    median,
                    span,
                    rate_text(1e6 / figure["median"]),
                    ratio_spread_text(single["ratio_to_log_usage"]["batch"]),
                )
            ]
            header = ["", "time per entry", "min–max", "entries/s", "÷ log_usage"]
            self.add(*table(header, rows), "")

    def _queries(self) -> None:
        queries = self.results["queries"]
        generated = queries["file"]
        runs = queries["runs"]
        appended = self.results["sizes"]["append_entries"]
        self.add(f"## Queries over {generated['entries']:,} entries", "")
        self.add(
            f"The log has {generated['entries']:,} lines, "
            f"{generated['bytes'] / 2**20:.0f} MiB (mean "
            f"{generated['mean_line_bytes']:.0f} bytes per line), in "
            f"{generated['sessions']:,} sessions, "
            f"{generated['failures'] / generated['entries']:.1%} failed. Each "
            "query runs in a fresh process on a fresh copy of the log; cold is "
            "its first call there, with the file in the page cache. Then another "
            f"process appends {appended:,} entries through `log_usage`, the same "
            "process runs the query again, and then a new process runs it once. "
            f"Rounds: {self.results['sizes']['query_rounds']}. The three "
            "implementations agree on operations, tokens by kind, failures and "
            "cost, and on the ids of the recent errors (checked in every round). "
            "DuckDB uses all cores.",
            "",
        )
        rows = []
        for query in runs["leyline"]:
            duckdb = runs["duckdb"][query]["cold_seconds"]["median"]
            for way, by_query in runs.items():
                figure = by_query[query]
                median, span = spread_text(figure["cold_seconds"])
                after = figure.get("after_append_seconds")
                new_process = figure.get("new_process_seconds")
                rows.append(
                    (
                        QUERY_LABELS[query],
                        WAY_LABELS[way],
                        median,
                        span,
                        ratio_text(figure["cold_seconds"]["median"] / duckdb),
                        "-" if after is None else spread_text(after)[0],
                        "-" if new_process is None else spread_text(new_process)[0],
                        megabytes(figure["cold_peak_rss"]),
                        megabytes(figure["cold_added_rss"]),
                    )
                )
        header = [
            "query",
            "by",
            "cold",
            "min–max",
            "÷ DuckDB",
            "again, same process",
            "new process",
            "peak RSS MiB",
            "above baseline MiB",
        ]
        self.add(*table(header, rows), "")
        self.add(
            "The last two times follow the appends. Peak RSS is the process's "
            "VmHWM after the cold call, and the baseline is its VmHWM just before "
            "the call, after imports; the highest of all rounds is shown. Above "
            "baseline also counts the peak of the helper process that a cold "
            "leyline-usage build forks, above the same baseline. The "
            "memory target also covers the later calls: "
            f"{self._later_memory_text(runs['leyline'])}.",
            "",
        )

    @staticmethod
    def _later_memory_text(leyline: dict[str, dict[str, Any]]) -> str:
        same = [f["after_append_added_rss"] for f in leyline.values()]
        new = [f["new_process_added_rss"] for f in leyline.values()]
        if None in same:
            same_text = "not measured (the kernel did not allow resetting VmHWM)"
        else:
            same_text = f"at most {megabytes(max(same))} MiB"
        return (
            "above their baseline, the call again in the same process used "
            f"{same_text}, and the call in a new process at most "
            f"{megabytes(max(new))} MiB"
        )

    def _import(self) -> None:
        figures = self.results["import"]
        self.add("## Importing the Claude Code sample transcripts", "")
        self.add(
            f"`import_transcripts` over `examples/claude-code` ({figures['files']} "
            f"files, {figures['records']:,} assistant records, {figures['added']} "
            "API calls), in a fresh process per round into an empty directory, then "
            "once more into the same directory, where every call is already present.",
            "",
        )
        rows = []
        for label, key in (
            ("import", "import_seconds"),
            ("re-import", "reimport_seconds"),
        ):
            median, span = spread_text(figures[key])
            rows.append((label, median, span))
        self.add(*table(["run", "time", "min–max"], rows), "")

    def _profile(self) -> None:
        profiles = self.results["profile"]
        self.add("## Profile", "")
        self.add(
            "cProfile, sorted by cumulative time. The profiler slows every Python "
            "call, so use the shares, not the absolute times.",
            "",
        )
        log_usage = profiles["log_usage"]
        self.add(
            f"### {log_usage['calls']:,} `log_usage` calls "
            f"({log_usage['profiled_seconds']:.2f} s under the profiler)",
            "",
        )
        self._profile_table(log_usage["top"])
        if "summary" in profiles:
            summary = profiles["summary"]
            self.add(
                f"### `get_usage_summary` over {summary['entries']:,} entries "
                f"({summary['profiled_seconds']:.2f} s under the profiler)",
                "",
            )
            self._profile_table(summary["top"])

    def _profile_table(self, top: list[dict[str, Any]]) -> None:
        total = top[0]["cumulative_seconds"] if top else 0.0
        rows = [
            (
                f"`{row['function']}`",
                f"{row['calls']:,}",
                f"{row['own_seconds']:.3f}",
                f"{row['cumulative_seconds']:.3f}",
                f"{row['cumulative_seconds'] / total:.0%}" if total else "-",
            )
            for row in top
        ]
        header = ["function", "calls", "own s", "cumulative s", "share"]
        self.add(*table(header, rows), "")
