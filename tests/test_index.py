"""The incremental index returns the results of a full scan, however the log changes."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import run_writers
from test_queries import make_random_log
from workers import log_sequence

from leyline_usage import UsageLogger, index
from leyline_usage.index import forget_recent, index_path, load_index
from leyline_usage.query import (
    Pricer,
    cutoff_timestamp,
    recent_errors,
    session_totals,
    since,
    summarize,
)
from leyline_usage.reader import ReadStats, iter_entries

NUMERIC = (
    "total_operations", "total_tokens", "failed_operations", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "unpriced_operations",
)  # fmt: skip


def full_scan(log: Path, days: float = 7) -> dict[str, Any]:
    stats = ReadStats()
    entries = list(iter_entries([log], stats))
    summary = summarize(since(entries, cutoff_timestamp(days * 86400)), Pricer())
    summary["skipped_lines"] = stats.skipped_lines
    summary["errors"] = recent_errors(entries, 10)
    summary["sessions"] = session_totals(entries, Pricer())
    return summary


def assert_same(logger: UsageLogger, expected: dict[str, Any]) -> None:
    summary = logger.get_usage_summary()
    for key in NUMERIC:
        assert summary[key] == expected[key], key
    assert summary["skipped_lines"] == expected["skipped_lines"]
    # Sums in another order can round the other way at the sixth decimal.
    assert summary["estimated_cost"] == pytest.approx(
        expected["estimated_cost"], abs=2e-6
    )
    assert summary["total_duration"] == pytest.approx(expected["total_duration"])
    assert summary["first_timestamp"] == expected["first_timestamp"]
    assert summary["last_timestamp"] == expected["last_timestamp"]
    assert logger.get_recent_errors(10) == expected["errors"]
    sessions = {s["session_id"]: s for s in logger.list_sessions()}
    assert list(sessions) == list(expected["sessions"])
    for session_id, stats in expected["sessions"].items():
        assert sessions[session_id]["total_tokens"] == stats["total_tokens"]
        assert sessions[session_id]["total_operations"] == stats["total_operations"]
        assert sessions[session_id]["services"] == stats["services"]


def test_index_matches_full_scan_after_appends(storage: Path) -> None:
    make_random_log(storage, 300)
    logger = UsageLogger("svc", storage_dir=storage)
    assert_same(logger, full_scan(logger.log_file))
    assert index_path(logger.log_file).exists()

    make_random_log(storage, 50)
    with open(logger.log_file, "ab") as file:
        file.write(b"garbage line\n")

    assert_same(logger, full_scan(logger.log_file))


def test_index_reads_only_new_bytes(storage: Path) -> None:
    make_random_log(storage, 200)
    logger = UsageLogger("svc", storage_dir=storage)
    logger.get_usage_summary()
    indexed_at = index_path(logger.log_file).stat().st_mtime_ns

    logger.get_usage_summary()

    assert index_path(logger.log_file).stat().st_mtime_ns == indexed_at


def test_truncated_log_rebuilds_index(storage: Path) -> None:
    make_random_log(storage, 200)
    logger = UsageLogger("svc", storage_dir=storage)
    logger.get_usage_summary()
    lines = logger.log_file.read_bytes().splitlines(keepends=True)

    with open(logger.log_file, "r+b") as file:
        file.truncate(sum(len(line) for line in lines[:50]))

    assert logger.get_usage_summary()["total_operations"] == 50
    assert_same(logger, full_scan(logger.log_file))


def test_rewritten_log_same_length_rebuilds_index(storage: Path) -> None:
    make_random_log(storage, 100)
    logger = UsageLogger("svc", storage_dir=storage)
    logger.get_usage_summary()
    data = logger.log_file.read_bytes()

    # Same size and inode, different last bytes: the tokens of the last entry change.
    changed = data.replace(b'"tokens":', b'"tokens":9', 1)
    changed = changed[: len(data)]
    with open(logger.log_file, "r+b") as file:
        file.write(changed)

    assert_same(logger, full_scan(logger.log_file))


def test_replaced_log_rebuilds_index(storage: Path, tmp_path: Path) -> None:
    make_random_log(storage, 100)
    logger = UsageLogger("svc", storage_dir=storage)
    logger.get_usage_summary()
    other = tmp_path / "other"
    make_random_log(other, 30)

    os.replace(other / "svc.jsonl", logger.log_file)

    assert logger.get_usage_summary()["total_operations"] == 30
    assert_same(logger, full_scan(logger.log_file))


def test_unfinished_last_line_counted_each_time(storage: Path) -> None:
    make_random_log(storage, 20)
    logger = UsageLogger("svc", storage_dir=storage)
    with open(logger.log_file, "ab") as file:
        file.write(
            b'{"timestamp": "2999-01-01T00:00:00.000000Z", "tokens": 5, "success": false}'
        )

    first = logger.get_usage_summary()
    second = logger.get_usage_summary()

    assert first["total_operations"] == second["total_operations"] == 21
    assert logger.get_recent_errors(1)[0]["timestamp"].startswith("2999")
    assert_same(logger, full_scan(logger.log_file))


def test_corrupt_index_is_ignored(storage: Path) -> None:
    make_random_log(storage, 50)
    logger = UsageLogger("svc", storage_dir=storage)
    logger.get_usage_summary()

    index_path(logger.log_file).write_bytes(b"\x00not an index")

    assert_same(logger, full_scan(logger.log_file))


def test_price_change_rebuilds_index(storage: Path) -> None:
    make_random_log(storage, 50)
    cheap = UsageLogger("svc", storage_dir=storage, fallback_rate="0.5")
    dear = UsageLogger("svc", storage_dir=storage, fallback_rate="50")

    low = cheap.get_usage_summary()["estimated_cost"]
    high = dear.get_usage_summary()["estimated_cost"]

    assert high > low


def test_boundary_hour_filtered_exactly(storage: Path) -> None:
    storage.mkdir(mode=0o700)
    logger = UsageLogger("svc", storage_dir=storage)
    cutoff = cutoff_timestamp(3600)
    hour = cutoff[:13]
    lines = []
    for minute in range(60):
        stamp = f"{hour}:{minute:02d}:00.000000Z"
        lines.append(
            f'{{"timestamp": "{stamp}", "session_id": "s", "service": "svc", "operation": "op", '
            f'"tokens": 1, "success": true, "duration_seconds": 0.0, "error_type": null, '
            f'"error_message": null, "metadata": {{}}}}\n'
        )
    logger.log_file.write_text("".join(lines))

    summary = logger.get_usage_summary(days=1 / 24)
    expected = sum(1 for line in lines if line[15:42] >= cutoff)

    assert summary["total_operations"] == expected
    assert len(logger.get_recent_operations(hours=1)) == expected


def test_sample_import_through_index(storage: Path) -> None:
    shutil.copytree(
        Path(__file__).resolve().parents[1] / "examples" / "original-format", storage
    )
    logger = UsageLogger("my-service", storage_dir=storage)

    assert logger.get_usage_summary(days=100_000)["total_tokens"] == 7000
    assert logger.get_usage_summary(days=100_000)["total_tokens"] == 7000


def test_errors_keep_file_order_across_segments(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage, rotate_bytes=1500)
    for n in range(30):
        logger.log_usage("op", tokens=n, success=False)
    # Older timestamps appended last, as an import of old transcripts does.
    line = (
        '{"timestamp": "2001-01-01T00:00:00.000000Z", "session_id": "s", '
        '"service": "svc", "operation": "old", "tokens": 1, "success": false, '
        '"duration_seconds": 0.0, "error_type": "E", "error_message": null, '
        '"metadata": {}}\n'
    )
    with open(logger.log_file, "a") as file:
        file.write(line)

    expected = full_scan_errors(logger, 12)

    assert logger.get_recent_errors(12) == expected
    assert expected[0]["operation"] == "old"


@pytest.mark.parametrize("count", [2, 3, 4])
def test_compressed_segment_keeps_unended_last_line(
    storage: Path, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    # The last line lacks its newline, as after a writer died before the
    # rotation. With 2 lines per batch it ends a full batch when count is even.
    monkeypatch.setattr(index, "_LINES_PER_BATCH", 2)
    lines = [
        orjson.dumps(
            {"timestamp": "2026-01-02T03:00:00Z", "session_id": "s",
             "service": "svc", "tokens": n + 1, "success": True,
             "duration_seconds": 1.0}
        )
        for n in range(count)
    ]  # fmt: skip
    storage.mkdir(mode=0o700, parents=True, exist_ok=True)
    segment = storage / "svc.jsonl.20260102T030000000000Z-0123abcd.gz"
    segment.write_bytes(gzip.compress(b"\n".join(lines)))
    logger = UsageLogger("svc", storage_dir=storage)

    summary = logger.get_usage_summary(days=100_000)

    assert summary["total_operations"] == count
    assert summary["total_tokens"] == count * (count + 1) // 2
    assert summary["skipped_lines"] == 0
    assert logger.get_session_stats("s")["total_operations"] == count
    forget_recent()
    assert logger.get_usage_summary(days=100_000)["total_operations"] == count


def full_scan_errors(logger: UsageLogger, count: int) -> list[dict[str, Any]]:
    return recent_errors(list(logger.iter_entries()), count)


def test_wrong_shape_index_file_ignored(storage: Path) -> None:
    make_random_log(storage, 100)
    logger = UsageLogger("svc", storage_dir=storage)
    expected = full_scan(logger.log_file)
    index_path(logger.log_file).write_bytes(b"[]")

    assert_same(logger, expected)


def test_infinite_duration_survives_saved_index(storage: Path) -> None:
    storage.mkdir()
    line = (
        b'{"timestamp":"%s","session_id":"s","service":"svc","tokens":1,'
        b'"success":true,"duration_seconds":1e308}\n' % cutoff_timestamp(60).encode()
    )
    (storage / "svc.jsonl").write_bytes(line * 2)
    logger = UsageLogger("svc", storage_dir=storage)

    first = logger.get_usage_summary()
    second = logger.get_usage_summary()

    assert first["total_duration"] == float("inf")
    assert second["total_duration"] == float("inf")
    assert second["total_operations"] == 2


def test_token_total_past_64_bits(storage: Path) -> None:
    storage.mkdir()
    line = (
        b'{"timestamp":"%s","session_id":"s","service":"svc",'
        b'"tokens":9223372036854775807,"success":true,"duration_seconds":1}\n'
        % cutoff_timestamp(60).encode()
    )
    (storage / "svc.jsonl").write_bytes(line * 3)
    logger = UsageLogger("svc", storage_dir=storage)

    first = logger.get_usage_summary()
    second = logger.get_usage_summary()

    assert first["total_tokens"] == 3 * (2**63 - 1)
    assert second == first
    assert not index_path(logger.log_file).exists()


def test_query_after_other_process_appends(storage: Path) -> None:
    make_random_log(storage, 200)
    logger = UsageLogger("svc", storage_dir=storage)
    logger.get_usage_summary()
    saved_at = index_path(logger.log_file).stat().st_mtime_ns

    assert run_writers(log_sequence, storage, "svc", 2, 50) == [0, 0]

    # The query uses the index kept in memory, and the file, behind by less
    # than SAVE_BYTES, stays as it was.
    assert_same(logger, full_scan(logger.log_file))
    assert index_path(logger.log_file).stat().st_mtime_ns == saved_at
    # A process without it in memory extends the lagging file instead.
    forget_recent()
    assert_same(logger, full_scan(logger.log_file))


def test_index_file_rewritten_once_it_lags(
    storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_random_log(storage, 100)
    logger = UsageLogger("svc", storage_dir=storage)
    logger.get_usage_summary()
    monkeypatch.setattr(index, "SAVE_BYTES", 1)

    make_random_log(storage, 10)
    logger.get_usage_summary()

    forget_recent()
    saved = index._read_saved(index_path(logger.log_file))
    assert saved is not None
    assert saved.offset == logger.log_file.stat().st_size


def test_index_being_read_is_never_changed(storage: Path) -> None:
    make_random_log(storage, 100)
    log = storage / "svc.jsonl"
    first = load_index(log, Pricer())
    hours = {hour: b.totals.as_dict() for hour, b in first.hours.items()}
    sessions = {sid: s.totals.as_dict() for sid, s in first.sessions.items()}
    errors = list(first.errors)

    make_random_log(storage, 100)
    second = load_index(log, Pricer())

    assert {hour: b.totals.as_dict() for hour, b in first.hours.items()} == hours
    assert {sid: s.totals.as_dict() for sid, s in first.sessions.items()} == sessions
    assert first.errors == errors
    assert second.lines == first.lines + 100


def test_old_failures_read_from_log(
    storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index, "MAX_ERRORS", 3)
    make_random_log(storage, 300)
    logger = UsageLogger("svc", storage_dir=storage)
    expected = full_scan(logger.log_file)

    assert_same(logger, expected)

    forget_recent()
    saved = index._read_saved(index_path(logger.log_file))
    assert saved is not None
    assert len(saved.errors) == 3
    assert saved.errors_dropped == expected["failed_operations"] - 3
    assert logger.get_recent_errors(10) == expected["errors"]
    assert logger.get_recent_errors(2) == expected["errors"][:2]


def test_first_line_edit_rebuilds_index(storage: Path) -> None:
    make_random_log(storage, 100)
    logger = UsageLogger("svc", storage_dir=storage)
    logger.get_usage_summary()
    data = logger.log_file.read_bytes()
    tokens = str(orjson.loads(data.split(b"\n")[0])["tokens"])
    # The same length, so only the first bytes tell the edit apart.
    other = "1" * len(tokens) if set(tokens) != {"1"} else "2" * len(tokens)
    old, new = f'"tokens":{tokens},'.encode(), f'"tokens":{other},'.encode()

    with open(logger.log_file, "r+b") as file:
        file.write(data.replace(old, new, 1))

    assert_same(logger, full_scan(logger.log_file))
