"""Queries over logs: original-format files, independent counts and bad lines."""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ORIGINAL_FORMAT

from leyline_usage import UsageLogger

ALL_TIME_DAYS = 100_000


@pytest.fixture
def original_log(storage: Path) -> Path:
    """A storage directory holding a log and session file in the original format."""
    shutil.copytree(ORIGINAL_FORMAT, storage)
    return storage


def test_original_format_reads_back_unchanged(original_log: Path) -> None:
    raw = [
        json.loads(line)
        for line in (original_log / "my-service.jsonl").read_text().splitlines()
    ]

    operations = UsageLogger(
        "my-service", storage_dir=original_log
    ).get_recent_operations(hours=ALL_TIME_DAYS * 24)

    assert operations == raw


def test_original_format_summary_matches_hand_count(original_log: Path) -> None:
    summary = UsageLogger("my-service", storage_dir=original_log).get_usage_summary(
        days=ALL_TIME_DAYS
    )

    assert summary["total_operations"] == 3
    assert summary["total_tokens"] == 7000
    assert summary["success_rate"] == pytest.approx(2 / 3)
    assert summary["total_duration"] == pytest.approx(33.2)
    # No model is recorded, so the original flat $0.50 per million applies.
    assert summary["estimated_cost"] == pytest.approx(7000 * 0.5 / 1e6)
    assert summary["unpriced_operations"] == 3
    assert summary["skipped_lines"] == 0


def test_original_format_errors_and_sessions(original_log: Path) -> None:
    logger = UsageLogger("my-service", storage_dir=original_log)

    errors = logger.get_recent_errors()
    sessions = logger.list_sessions()

    assert [e["error_type"] for e in errors] == ["TimeoutError"]
    assert [s["session_id"] for s in sessions] == [
        "session_1733394600",
        "session_1733400175",
    ]
    assert [s["total_operations"] for s in sessions] == [2, 1]
    assert len(logger.get_session_operations("session_1733394600")) == 2


def test_appending_keeps_original_lines_byte_identical(original_log: Path) -> None:
    before = (original_log / "my-service.jsonl").read_bytes()

    UsageLogger("my-service", storage_dir=original_log).log_usage("new", tokens=1)

    after = (original_log / "my-service.jsonl").read_bytes()
    assert after.startswith(before)
    assert after.count(b"\n") == before.count(b"\n") + 1


def make_random_log(storage: Path, count: int) -> list[dict[str, Any]]:
    """Log ``count`` varied entries through the API and return them as written."""
    rng = random.Random(7)
    models = ["claude-opus-4-6", "claude-sonnet-4-5", "mystery-model", None]
    loggers = [
        UsageLogger("svc", storage_dir=storage, session_id=f"session_{n}")
        for n in range(4)
    ]
    for _ in range(count):
        failed = rng.random() < 0.2
        rng.choice(loggers).log_usage(
            rng.choice(["read", "write", "plan"]),
            success=not failed,
            duration=rng.random() * 3,
            error_type="RuntimeError" if failed else None,
            model=rng.choice(models),
            input_tokens=rng.randint(0, 5000),
            output_tokens=rng.randint(0, 800),
            cache_read_tokens=rng.randint(0, 20000),
        )
    return [
        json.loads(line) for line in (storage / "svc.jsonl").read_text().splitlines()
    ]


def test_summary_matches_independent_count(storage: Path) -> None:
    written = make_random_log(storage, 600)
    logger = UsageLogger("svc", storage_dir=storage)

    summary = logger.get_usage_summary(days=1)

    assert summary["total_operations"] == len(written)
    assert summary["total_tokens"] == sum(e["tokens"] for e in written)
    assert summary["input_tokens"] == sum(e["input_tokens"] for e in written)
    assert summary["output_tokens"] == sum(e["output_tokens"] for e in written)
    assert summary["success_rate"] == pytest.approx(
        sum(e["success"] for e in written) / len(written)
    )
    assert summary["total_duration"] == pytest.approx(
        sum(e["duration_seconds"] for e in written)
    )
    priced = [e for e in written if "cost_usd" in e]
    unpriced = [e for e in written if "cost_usd" not in e]
    assert summary["unpriced_operations"] == len(unpriced)
    expected_cost = (
        sum(e["cost_usd"] for e in priced)
        + sum(e["tokens"] for e in unpriced) * 0.5 / 1e6
    )
    assert summary["estimated_cost"] == pytest.approx(expected_cost, abs=1e-5)
    for model in ("claude-opus-4-6", "claude-sonnet-4-5"):
        expected = sum(e["cost_usd"] for e in priced if e.get("model") == model)
        assert summary["cost_by_model"][model] == pytest.approx(expected, abs=1e-5)


def test_errors_newest_first_and_limited(storage: Path) -> None:
    written = make_random_log(storage, 300)
    failed = [e for e in written if not e["success"]]

    errors = UsageLogger("svc", storage_dir=storage).get_recent_errors(count=5)

    assert errors == list(reversed(failed[-5:]))


def test_session_stats_match_independent_count(storage: Path) -> None:
    written = make_random_log(storage, 400)
    logger = UsageLogger("svc", storage_dir=storage, session_id="session_2")

    stats = logger.get_session_stats()
    listed = {s["session_id"]: s for s in logger.list_sessions()}

    mine = [e for e in written if e["session_id"] == "session_2"]
    assert stats["total_operations"] == len(mine)
    assert stats["total_tokens"] == sum(e["tokens"] for e in mine)
    assert stats["failed_operations"] == sum(not e["success"] for e in mine)
    assert sorted(listed) == ["session_0", "session_1", "session_2", "session_3"]
    assert sum(s["total_operations"] for s in listed.values()) == len(written)
    assert listed["session_2"]["total_tokens"] == stats["total_tokens"]


def test_session_wall_time_mixed_zones(storage: Path) -> None:
    # The original format wrote timestamps without a zone, and they read as UTC.
    storage.mkdir(mode=0o700)
    lines = [
        '{"timestamp": "2026-01-02T03:00:00", "session_id": "a", "service": "svc", '
        '"tokens": 1, "success": true, "duration_seconds": 0.5}',
        '{"timestamp": "2026-01-02T04:30:00Z", "session_id": "a", "service": "svc", '
        '"tokens": 2, "success": true, "duration_seconds": 0.5}',
    ]
    (storage / "svc.jsonl").write_text("\n".join(lines) + "\n")
    logger = UsageLogger("svc", storage_dir=storage)

    listed = logger.list_sessions()

    assert [s["session_id"] for s in listed] == ["a"]
    assert listed[0]["wall_seconds"] == 5400.0
    assert logger.get_session_stats("a")["wall_seconds"] == 5400.0


def test_recent_operations_respects_cutoff(storage: Path) -> None:
    storage.mkdir(mode=0o700)
    old = time.strftime(
        "%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() - 3 * 3600)
    )
    line = {"timestamp": old, "session_id": "s", "service": "svc", "operation": "old",
            "tokens": 1, "success": True, "duration_seconds": 0.0, "error_type": None,
            "error_message": None, "metadata": {}}  # fmt: skip
    (storage / "svc.jsonl").write_text(json.dumps(line) + "\n")
    logger = UsageLogger("svc", storage_dir=storage)
    logger.log_usage("new")

    assert [e["operation"] for e in logger.get_recent_operations(hours=1)] == ["new"]
    assert [e["operation"] for e in logger.get_recent_operations(hours=4)] == [
        "old",
        "new",
    ]


def test_corrupt_lines_skipped_and_counted(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)
    logger.log_usage("a", tokens=1)
    with open(storage / "svc.jsonl", "ab") as file:
        file.write(b"\n")
        file.write(b"not json at all\n")
        file.write(b"[1, 2, 3]\n")
        file.write(b'{"no_timestamp": true}\n')
        file.write(b"\xff\xfe\x00binary\n")
    logger.log_usage("b", tokens=2)

    summary = logger.get_usage_summary()

    assert summary["total_operations"] == 2
    assert summary["total_tokens"] == 3
    assert summary["skipped_lines"] == 5


def test_queries_on_missing_log_are_empty(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    assert logger.get_recent_operations() == []
    assert logger.get_recent_errors() == []
    assert logger.get_session_operations() == []
    assert logger.list_sessions() == []
    assert logger.get_usage_summary()["total_operations"] == 0
    assert not storage.exists()
