"""Child tasks that generate a large service log and time queries over it.

``generate`` writes the log directly, line by line, from templates that
``log_usage`` itself produced, so key order, value shapes and costs are those
of real entries. The queries run three ways, each in a fresh process: through
``UsageLogger`` (``leyline``, then ``leyline_once`` in a second process after
the appends), with ``json.loads`` per line and plain Python (``json``), and
with DuckDB's ``read_json`` (``duckdb``). Every task returns a digest of its
result, which the parent compares across the three.
"""

from __future__ import annotations

import json
import os
import random
import resource
import time
from collections import deque
from pathlib import Path
from typing import Any

import orjson
from common import child_main, peak_rss_bytes, reset_peak_rss, run_child

SERVICE = "bench"
SUMMARY_DAYS = 7
ERROR_COUNT = 10
# The fallback price of unpriced entries, USD per token: leyline-usage's
# default of 0.50 USD per million tokens.
FALLBACK_PER_TOKEN = 0.50 / 1_000_000
TOKEN_KINDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)

# Model mix of the generated log, as (model, weight). The local model has no
# price table, so its entries carry no cost_usd and summaries use the fallback
# rate. None stands for entries without a model, as the original logger wrote.
MODELS = (
    ("claude-sonnet-4-5", 40),
    ("claude-opus-4-6", 15),
    ("claude-haiku-4-5", 15),
    ("gpt-5-mini", 10),
    ("gemini-2.5-flash", 8),
    ("llama-3.1-8b-local", 4),
    (None, 8),
)
OPERATIONS = ("summarize", "review", "plan", "edit_file", "search", "classify")
ERRORS = (
    ("TimeoutError", "request timed out after 30s"),
    ("RateLimitError", "429: rate limit exceeded, retry after 20s"),
    ("APIConnectionError", "connection reset by peer"),
    ("OverloadedError", "529: overloaded"),
)
FAILURE_RATE = 0.05
TEMPLATES_PER_KIND = 400
GENERATED_DAYS = 6.0


# -- generating the log --------------------------------------------------------


def _template_calls(rng: random.Random, failed: bool) -> list[dict[str, Any]]:
    models = [model for model, _ in MODELS]
    weights = [weight for _, weight in MODELS]
    calls = []
    for _ in range(TEMPLATES_PER_KIND):
        model = rng.choices(models, weights)[0]
        call: dict[str, Any] = {
            "operation": rng.choice(OPERATIONS),
            "duration": round(rng.uniform(0.2, 40.0), 3),
            "metadata": rng.choice(
                ({}, {"files": rng.randint(1, 20)}, {"tool": "grep", "attempt": 2})
            ),
        }
        if failed:
            error_type, message = rng.choice(ERRORS)
            call.update(success=False, error_type=error_type, error_message=message)
        if model is None:
            call["tokens"] = rng.randint(100, 20_000)
            calls.append(call)
            continue
        call["model"] = model
        call["input_tokens"] = rng.randint(20, 4_000)
        call["output_tokens"] = 0 if failed else rng.randint(10, 2_000)
        if rng.random() < 0.6:
            call["cache_read_tokens"] = rng.randint(1_000, 60_000)
        if rng.random() < 0.2:
            call["cache_write_tokens"] = rng.randint(500, 8_000)
        calls.append(call)
    return calls


def _templates(scratch: Path, rng: random.Random, failed: bool) -> list[str]:
    """Log template calls through ``log_usage`` and return each line's middle part.

    The middle part is the JSON text between the session id and the entry id,
    without the enclosing commas.
    """
    from leyline_usage import UsageLogger

    logger = UsageLogger(SERVICE, storage_dir=scratch, strict=True)
    for call in _template_calls(rng, failed):
        logger.log_usage(**call)
    middles = []
    for line in (scratch / f"{SERVICE}.jsonl").read_bytes().splitlines():
        entry = orjson.loads(line)
        keys = list(entry)
        if keys[:2] != ["timestamp", "session_id"] or keys[-1] != "id":
            raise RuntimeError(
                f"log_usage wrote keys in an unexpected order ({keys}): update "
                "the generator in benchmarks/queries.py to the new entry format"
            )
        rest = {key: entry[key] for key in keys[2:-1]}
        middles.append(orjson.dumps(rest).decode()[1:-1])
    return middles


class _Timestamps:
    """Formats UTC times like the log, formatting the date part once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, when: float) -> str:
        second = int(when)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int((when - second) * 1_000_000):06d}Z"


def generate_task(params: dict[str, Any]) -> dict[str, Any]:
    """Write ``entries`` lines to ``path``: sessions of 50 to 1,000 entries each.

    Entries are spread evenly over the last six days, oldest first, so a
    seven-day summary counts all of them.
    """
    path = Path(params["path"])
    entries = int(params["entries"])
    rng = random.Random(int(params["seed"]))
    scratch = Path(params["scratch"])
    successes = _templates(scratch / "ok", rng, failed=False)
    failures = _templates(scratch / "failed", rng, failed=True)

    end = time.time() - 3600
    step = GENERATED_DAYS * 86400 / entries
    now = end - GENERATED_DAYS * 86400
    timestamps = _Timestamps()
    lines: list[str] = []
    remaining_in_session = 0
    session_id = prefix = ""
    number = 0
    sessions = failed = 0
    with open(path, "w", encoding="utf-8") as file:
        for _ in range(entries):
            if remaining_in_session == 0:
                remaining_in_session = rng.randint(50, 1_000)
                session_id = f"session_{int(now)}_{rng.getrandbits(32):08x}"
                prefix = f"{rng.getrandbits(64):016x}"
                sessions += 1
            remaining_in_session -= 1
            number += 1
            if rng.random() < FAILURE_RATE:
                middle = rng.choice(failures)
                failed += 1
            else:
                middle = rng.choice(successes)
            now += step * rng.uniform(0.5, 1.5)
            lines.append(
                f'{{"timestamp":"{timestamps.format(now)}",'
                f'"session_id":"{session_id}",{middle},"id":"{prefix}-{number:x}"}}\n'
            )
            if len(lines) == 10_000:
                file.writelines(lines)
                lines.clear()
        file.writelines(lines)
    size = path.stat().st_size
    return {
        "entries": entries,
        "bytes": size,
        "mean_line_bytes": size / entries,
        "sessions": sessions,
        "failures": failed,
    }


# -- leyline-usage -------------------------------------------------------------


def _leyline_query(logger: Any, query: str) -> Any:
    if query == "summary":
        return logger.get_usage_summary(days=SUMMARY_DAYS)
    if query == "errors":
        return logger.get_recent_errors(count=ERROR_COUNT)
    if query == "sessions":
        return logger.list_sessions()
    raise ValueError(f"unknown query {query!r}")


def _digest(query: str, result: Any) -> dict[str, Any]:
    """Return the numbers of a result that every implementation must agree on."""
    if query == "summary":
        digest = {
            "operations": result["total_operations"],
            "tokens": result["total_tokens"],
            "failed": result["failed_operations"],
            "cost": result["estimated_cost"],
        }
        digest.update({kind: result[kind] for kind in TOKEN_KINDS})
        return digest
    if query == "errors":
        return {"ids": [entry["id"] for entry in result]}
    return {
        "sessions": len(result),
        "operations": sum(stats["total_operations"] for stats in result),
        "tokens": sum(stats["total_tokens"] for stats in result),
        "first_session": result[0]["session_id"] if result else None,
    }


def _timed(function: Any, *args: Any) -> tuple[Any, float, int | None]:
    """Call ``function`` and return its result, seconds taken and peak RSS after."""
    started = time.perf_counter()
    result = function(*args)
    elapsed = time.perf_counter() - started
    return result, elapsed, peak_rss_bytes()


def leyline_task(params: dict[str, Any]) -> dict[str, Any]:
    """Run a query cold, let another process append entries, and run it again."""
    from leyline_usage import UsageLogger

    directory = Path(params["directory"])
    query = params["query"]
    logger = UsageLogger(SERVICE, storage_dir=directory)
    baseline = peak_rss_bytes()
    result, cold_seconds, cold_peak = _timed(_leyline_query, logger, query)
    # A cold build of a large log forks a helper. It is this task's only
    # child so far, and its peak counts toward the query's memory.
    helper_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    cold_digest = _digest(query, result)
    del result

    append = {"directory": str(directory), "entries": params["append_entries"]}
    run_child("queries", "append", append, os.environ)
    peak_reset = reset_peak_rss()
    second_baseline = peak_rss_bytes()
    result, after_seconds, after_peak = _timed(_leyline_query, logger, query)
    return {
        "cold_seconds": cold_seconds,
        "after_append_seconds": after_seconds,
        "baseline_rss": baseline,
        "cold_peak_rss": cold_peak,
        "cold_helper_added_rss": max(helper_peak - baseline, 0) if baseline else 0,
        "after_append_baseline_rss": second_baseline if peak_reset else None,
        "after_append_peak_rss": after_peak if peak_reset else None,
        "cold_digest": cold_digest,
        "after_append_digest": _digest(query, result),
    }


def leyline_once_task(params: dict[str, Any]) -> dict[str, Any]:
    """Run a query once in this new process, as a command-line query would."""
    from leyline_usage import UsageLogger

    logger = UsageLogger(SERVICE, storage_dir=Path(params["directory"]))
    baseline = peak_rss_bytes()
    result, seconds, peak = _timed(_leyline_query, logger, params["query"])
    return {
        "seconds": seconds,
        "baseline_rss": baseline,
        "peak_rss": peak,
        "digest": _digest(params["query"], result),
    }


def append_task(params: dict[str, Any]) -> dict[str, Any]:
    """Log ``entries`` entries through ``log_usage``, with the call of ``writes.py``."""
    from writes import log_call

    from leyline_usage import UsageLogger

    logger = UsageLogger(SERVICE, storage_dir=Path(params["directory"]))
    for number in range(int(params["entries"])):
        log_call(logger.log_usage, number)
    return {"appended": int(params["entries"])}


# -- json.loads per line ---------------------------------------------------------


class _Totals:
    """The totals of a usage summary, accumulated from parsed entries."""

    def __init__(self) -> None:
        self.operations = self.successes = self.tokens = 0
        self.duration = self.cost = 0.0
        self.by_kind = dict.fromkeys(TOKEN_KINDS, 0)
        self.cost_by_model: dict[str, float] = {}
        self.first = self.last = ""

    def add(self, entry: dict[str, Any]) -> None:
        self.operations += 1
        self.successes += entry.get("success") is True
        tokens = entry.get("tokens") or 0
        self.tokens += tokens
        self.duration += entry.get("duration_seconds") or 0.0
        for kind in TOKEN_KINDS:
            self.by_kind[kind] += entry.get(kind) or 0
        cost = entry.get("cost_usd")
        if cost is None:
            cost = tokens * FALLBACK_PER_TOKEN
        self.cost += cost
        model = entry.get("model") or "(unknown)"
        self.cost_by_model[model] = self.cost_by_model.get(model, 0.0) + cost
        timestamp = entry["timestamp"]
        if not self.first or timestamp < self.first:
            self.first = timestamp
        if timestamp > self.last:
            self.last = timestamp

    def digest(self) -> dict[str, Any]:
        digest = {
            "operations": self.operations,
            "tokens": self.tokens,
            "failed": self.operations - self.successes,
            "cost": round(self.cost, 6),
        }
        digest.update(self.by_kind)
        return digest


def _cutoff() -> str:
    return _Timestamps().format(time.time() - SUMMARY_DAYS * 86400)


def _json_entries(path: Path) -> Any:
    loads = json.loads
    with open(path, "rb") as file:
        for line in file:
            yield loads(line)


def _json_query(path: Path, query: str) -> dict[str, Any]:
    if query == "summary":
        cutoff = _cutoff()
        totals = _Totals()
        for entry in _json_entries(path):
            if entry["timestamp"] >= cutoff:
                totals.add(entry)
        return totals.digest()
    if query == "errors":
        errors: deque[dict[str, Any]] = deque(maxlen=ERROR_COUNT)
        for entry in _json_entries(path):
            if entry.get("success") is False:
                errors.append(entry)
        return {"ids": [entry["id"] for entry in reversed(errors)]}
    sessions: dict[str, _Totals] = {}
    for entry in _json_entries(path):
        session_id = entry.get("session_id")
        session = sessions.get(session_id)
        if session is None:
            session = sessions[session_id] = _Totals()
        session.add(entry)
    ordered = sorted(sessions.items(), key=lambda item: item[1].first)
    return {
        "sessions": len(ordered),
        "operations": sum(totals.operations for totals in sessions.values()),
        "tokens": sum(totals.tokens for totals in sessions.values()),
        "first_session": ordered[0][0] if ordered else None,
    }


def json_task(params: dict[str, Any]) -> dict[str, Any]:
    """Run a query by parsing every line with ``json.loads``."""
    baseline = peak_rss_bytes()
    digest, seconds, peak = _timed(_json_query, Path(params["path"]), params["query"])
    return {
        "cold_seconds": seconds,
        "baseline_rss": baseline,
        "cold_peak_rss": peak,
        "cold_digest": digest,
    }


# -- DuckDB --------------------------------------------------------------------

_COLUMNS = {
    "timestamp": "VARCHAR",
    "session_id": "VARCHAR",
    "service": "VARCHAR",
    "operation": "VARCHAR",
    "tokens": "BIGINT",
    "success": "BOOLEAN",
    "duration_seconds": "DOUBLE",
    "error_type": "VARCHAR",
    "error_message": "VARCHAR",
    "model": "VARCHAR",
    **{kind: "BIGINT" for kind in TOKEN_KINDS},
    "cost_usd": "DOUBLE",
    "id": "VARCHAR",
}
_AGGREGATES = f"""
    count(*) AS operations,
    count(*) FILTER (WHERE success) AS successes,
    coalesce(sum(tokens), 0) AS tokens,
    {", ".join(f"coalesce(sum({kind}), 0) AS {kind}" for kind in TOKEN_KINDS)},
    coalesce(sum(duration_seconds), 0) AS duration,
    sum(coalesce(cost_usd, tokens * {FALLBACK_PER_TOKEN!r})) AS cost,
    min("timestamp") AS first,
    max("timestamp") AS last
"""


def _duckdb_query(path: Path, query: str) -> dict[str, Any]:
    import duckdb

    source = "read_json(?, format = 'newline_delimited', columns = ?)"
    arguments: list[Any] = [str(path), _COLUMNS]
    connection = duckdb.connect()
    if query == "summary":
        rows = connection.execute(
            f"""SELECT coalesce(model, '(unknown)') AS model, {_AGGREGATES}
            FROM {source} WHERE "timestamp" >= ? GROUP BY ALL""",
            [*arguments, _cutoff()],
        ).fetchall()
        names = [column[0] for column in connection.description]
        by_model = [dict(zip(names, row, strict=True)) for row in rows]
        digest = {
            "operations": sum(row["operations"] for row in by_model),
            "tokens": sum(row["tokens"] for row in by_model),
            "failed": sum(row["operations"] - row["successes"] for row in by_model),
            "cost": round(sum(row["cost"] for row in by_model), 6),
        }
        digest.update(
            {kind: sum(row[kind] for row in by_model) for kind in TOKEN_KINDS}
        )
        return digest
    if query == "errors":
        rows = connection.execute(
            f"""SELECT * FROM {source} WHERE success = false
            ORDER BY "timestamp" DESC LIMIT {ERROR_COUNT}""",
            arguments,
        ).fetchall()
        names = [column[0] for column in connection.description]
        return {"ids": [row[names.index("id")] for row in rows]}
    rows = connection.execute(
        f"""SELECT session_id, list(DISTINCT service) AS services, {_AGGREGATES}
        FROM {source} GROUP BY session_id ORDER BY first""",
        arguments,
    ).fetchall()
    names = [column[0] for column in connection.description]
    sessions = [dict(zip(names, row, strict=True)) for row in rows]
    return {
        "sessions": len(sessions),
        "operations": sum(row["operations"] for row in sessions),
        "tokens": sum(row["tokens"] for row in sessions),
        "first_session": sessions[0]["session_id"] if sessions else None,
    }


def duckdb_task(params: dict[str, Any]) -> dict[str, Any]:
    """Run a query with DuckDB's ``read_json`` over the log."""
    import duckdb

    duckdb.connect().close()
    baseline = peak_rss_bytes()
    path = Path(params["path"])
    digest, seconds, peak = _timed(_duckdb_query, path, params["query"])
    return {
        "cold_seconds": seconds,
        "baseline_rss": baseline,
        "cold_peak_rss": peak,
        "cold_digest": digest,
    }


if __name__ == "__main__":
    child_main(
        {
            "generate": generate_task,
            "leyline": leyline_task,
            "leyline_once": leyline_once_task,
            "append": append_task,
            "json": json_task,
            "duckdb": duckdb_task,
        }
    )
