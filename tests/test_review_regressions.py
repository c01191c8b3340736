"""Cases where queries, segments and sessions once went wrong."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest
import workers
from conftest import run_cli

from leyline_usage import UsageLogger
from leyline_usage.query import Pricer, recent_errors, session_totals, summarize
from leyline_usage.reader import ReadStats, iter_entries
from leyline_usage.segments import list_segments


def scan(logger: UsageLogger) -> dict[str, Any]:
    stats = ReadStats()
    entries = list(iter_entries(logger.files(), stats))
    summary = summarize(entries, Pricer())
    summary["skipped_lines"] = stats.skipped_lines
    summary["errors"] = recent_errors(entries, 10)
    summary["sessions"] = session_totals(entries, Pricer())
    return summary


def base_line(**fields: Any) -> str:
    entry = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
        "session_id": "s", "service": "svc", "operation": "op", "tokens": 5,
        "success": True, "duration_seconds": 0.0, "error_type": None,
        "error_message": None, "metadata": {},
    }  # fmt: skip
    entry.update(fields)
    return json.dumps(entry) + "\n"


@pytest.mark.parametrize(
    "fields",
    [
        {"model": "claude-sonnet-4-5", "input_tokens": None, "output_tokens": 5},
        {"model": "claude-sonnet-4-5", "input_tokens": "100"},
        {"session_id": ["a"], "service": {"x": 1}},
        {"model": 7, "cost_usd": "0.1", "success": "yes"},
    ],
)
def test_odd_field_types_from_other_tools(
    storage: Path, fields: dict[str, Any]
) -> None:
    logger = UsageLogger("svc", storage_dir=storage)
    logger.log_usage(
        "ours", model="claude-sonnet-4-5", input_tokens=100, output_tokens=10
    )
    with open(logger.log_file, "a") as file:
        file.write(base_line(**fields))

    summary = logger.get_usage_summary()
    sessions = logger.list_sessions()
    expected = scan(logger)

    assert summary["total_operations"] == 2
    assert summary["unpriced_operations"] == expected["unpriced_operations"] == 1
    assert summary["estimated_cost"] == pytest.approx(expected["estimated_cost"])
    assert len(sessions) == len(expected["sessions"]) == 2
    assert len(logger.get_recent_operations()) == 2
    assert run_cli("summary", "--dir", storage).returncode == 0


def test_service_name_ending_in_jsonl_keeps_its_segments(storage: Path) -> None:
    short = UsageLogger("foo", storage_dir=storage)
    long = UsageLogger("foo.jsonl", storage_dir=storage, rotate_bytes=1500)
    short.log_usage("mine", tokens=1)
    for _ in range(30):
        long.log_usage("theirs", tokens=100)

    pruned = run_cli("prune", "foo", "--older-than", "0s", "--dir", storage)
    summary = json.loads(run_cli("summary", "--dir", storage, "--json").stdout)

    assert list_segments(short.log_file) == []
    assert short.get_usage_summary()["total_tokens"] == 1
    assert "removed 0 segment" in pruned.stdout
    assert len(list_segments(long.log_file)) >= 2
    assert summary["total_operations"] == 31


def test_damaged_segment_index_matches_scan(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage, rotate_bytes=400_000)
    for n in range(3000):
        logger.log_usage("op", tokens=1, metadata={"n": n})
    segment = next(p for p in logger.files() if p.name.endswith(".gz"))
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) // 2])

    summary = logger.get_usage_summary()
    expected = scan(logger)

    assert summary["total_operations"] == expected["total_operations"]
    assert summary["skipped_lines"] == expected["skipped_lines"] == 1
    assert len(logger.get_recent_operations()) == expected["total_operations"]


def test_carriage_return_inside_line(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)
    logger.log_usage("a", tokens=5)
    with open(logger.log_file, "ab") as file:
        file.write(
            b'{"timestamp": "2999-01-01T00:00:00Z", "tokens": 4}\r{"tokens": 6}\n'
        )
    logger.log_usage("b", tokens=10)

    summary = logger.get_usage_summary()
    expected = scan(logger)

    assert summary["total_operations"] == expected["total_operations"]
    assert summary["total_tokens"] == expected["total_tokens"]
    assert summary["skipped_lines"] == expected["skipped_lines"]


def hold_lock(storage: str, ready: Any, seconds: float) -> None:
    holder = UsageLogger("svc", storage_dir=Path(storage))
    with holder._appender.locked():
        ready.set()
        time.sleep(seconds)


def test_session_lookup_timeout_drops_entry(storage: Path) -> None:
    first = UsageLogger("svc", storage_dir=storage)
    first.log_usage("before")
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    process = context.Process(target=hold_lock, args=(str(storage), ready, 0.6))
    process.start()
    assert ready.wait(60)

    late = UsageLogger("svc", storage_dir=storage, lock_timeout=0.3)
    result = late.log_usage("during")
    process.join(60)
    late.log_usage("after")

    sessions = {e["session_id"] for e in first.iter_entries()}
    assert result is None
    assert late.dropped_entries == 1
    assert len(sessions) == 1


def test_queries_during_rapid_rotation_miss_nothing(storage: Path) -> None:
    context = multiprocessing.get_context("spawn")
    writer = context.Process(
        target=workers.log_sequence_rotating_fast, args=(str(storage), "svc", 0, 6000)
    )
    writer.start()
    reader = UsageLogger("svc", storage_dir=storage)
    checks = 0
    while writer.is_alive() and checks < 200:
        operations = reader.get_recent_operations(hours=1)
        numbers = [e["metadata"]["seq"] for e in operations]
        assert numbers == list(range(len(numbers)))
        checks += 1
    writer.join(120)

    assert writer.exitcode == 0
    assert checks > 0
    assert reader.get_usage_summary()["total_operations"] == 6000
