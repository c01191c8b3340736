"""Rotation into compressed segments, reading across them, and pruning."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pytest
import workers
from conftest import run_cli, run_writers, sequences_by_worker

from leyline_usage import UsageLogger
from leyline_usage.reader import ReadStats, iter_entries, service_logs
from leyline_usage.segments import list_segments, parse_duration


def all_entries(storage: Path, service: str = "svc") -> list[dict[str, object]]:
    log = storage / f"{service}.jsonl"
    return list(iter_entries([*list_segments(log), log]))


def test_size_rotation_keeps_every_entry_once(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage, rotate_bytes=4000)

    for n in range(200):
        logger.log_usage("op", tokens=n)

    segments = list_segments(logger.log_file)
    assert len(segments) >= 5
    assert all(s.name.endswith(".gz") for s in segments)
    assert all(s.stat().st_size < 4000 for s in segments)
    assert logger.log_file.stat().st_size <= 4000
    assert [e["tokens"] for e in logger.iter_entries()] == list(range(200))
    summary = logger.get_usage_summary()
    assert summary["total_operations"] == 200
    assert summary["total_tokens"] == sum(range(200))
    assert sum(s["total_operations"] for s in logger.list_sessions()) == 200


def test_segments_are_valid_gzip_and_private(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage, rotate_bytes=2000)
    for n in range(50):
        logger.log_usage("op", tokens=n)

    for segment in list_segments(logger.log_file):
        lines = gzip.decompress(segment.read_bytes()).splitlines()
        assert all(json.loads(line)["operation"] == "op" for line in lines)
        assert segment.stat().st_mode & 0o777 == 0o600


def test_age_rotation(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage, rotate_age=0.2)
    logger.log_usage("first")
    time.sleep(0.3)

    logger.log_usage("second")

    assert len(list_segments(logger.log_file)) == 1
    assert [e["operation"] for e in logger.iter_entries()] == ["first", "second"]


def test_age_of_zoneless_first_entry_is_utc(
    storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An original-format log that started ten minutes ago, read in a zone 12
    # hours ahead of UTC: taken as local time it would be 12 hours old.
    storage.mkdir(mode=0o700)
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 600))
    (storage / "svc.jsonl").write_text(
        json.dumps({"timestamp": started, "session_id": "s", "service": "svc",
                    "operation": "old", "tokens": 1, "success": True,
                    "duration_seconds": 0.0, "error_type": None,
                    "error_message": None, "metadata": {}}) + "\n"
    )  # fmt: skip
    monkeypatch.setenv("TZ", "EAST-12")
    time.tzset()
    try:
        logger = UsageLogger("svc", storage_dir=storage, rotate_age=3600)
        logger.log_usage("new")
    finally:
        monkeypatch.undo()
        time.tzset()

    assert list_segments(logger.log_file) == []
    assert [e["operation"] for e in logger.iter_entries()] == ["old", "new"]


def test_rotation_under_concurrent_writers(storage: Path) -> None:
    exit_codes = run_writers(workers.log_sequence_rotating, storage, "svc", 4, 1500)

    assert exit_codes == [0] * 4
    stats = ReadStats()
    log = storage / "svc.jsonl"
    entries = list(iter_entries([*list_segments(log), log], stats))
    assert stats.skipped_lines == 0
    assert len(entries) == 6000
    assert len({e["id"] for e in entries}) == 6000
    sequences = sequences_by_worker(entries)
    for worker in range(4):
        assert sequences[worker] == list(range(1500))
    assert len(list_segments(log)) > 10


def test_writer_holding_old_file_moves_on(storage: Path) -> None:
    first = UsageLogger("svc", storage_dir=storage)
    first.log_usage("a")
    rotating = UsageLogger("svc", storage_dir=storage, rotate_bytes=10)
    rotating.log_usage("b")

    # The first logger shares this process's appender; a separate process
    # still holding the old descriptor is covered by the concurrent test.
    first.log_usage("c")

    assert [e["operation"] for e in first.iter_entries()] == ["a", "b", "c"]


def test_import_skips_entries_in_segments(storage: Path) -> None:
    from conftest import CLAUDE_CODE_SAMPLES

    from leyline_usage.importers.claude_code import import_transcripts

    logger = UsageLogger("claude-code", storage_dir=storage, rotate_bytes=50_000)
    first = import_transcripts(logger, [CLAUDE_CODE_SAMPLES])
    logger.log_usage("filler", tokens=1)
    again = import_transcripts(logger, [CLAUDE_CODE_SAMPLES])

    assert first.added == 325
    assert again.added == 0
    assert round(logger.get_usage_summary(days=100_000)["estimated_cost"], 2) == 23.23


def test_cli_reads_across_segments(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage, rotate_bytes=3000)
    for n in range(100):
        logger.log_usage("op", tokens=1, success=n % 10 != 0)

    summary = json.loads(run_cli("summary", "--dir", storage, "--json").stdout)
    errors = json.loads(
        run_cli("errors", "--dir", storage, "--count", "100", "--json").stdout
    )
    recent = json.loads(
        run_cli("recent", "--dir", storage, "--limit", "0", "--json").stdout
    )

    assert summary["total_operations"] == 100
    assert len(errors) == 10
    assert len(recent) == 100


def test_service_logs_lists_segments_first(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage, rotate_bytes=2000)
    for _ in range(40):
        logger.log_usage("op")

    paths = service_logs(storage)

    assert paths[-1] == logger.log_file
    assert paths[:-1] == list_segments(logger.log_file)


def test_damaged_segment_is_counted_not_raised(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage, rotate_bytes=2000)
    for _ in range(40):
        logger.log_usage("op")
    segment = list_segments(logger.log_file)[0]
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) // 2])

    summary = logger.get_usage_summary()

    assert summary["skipped_lines"] >= 1
    assert 0 < summary["total_operations"] < 40


def age_segment(segment: Path, days: int) -> Path:
    """Rename a segment so that it appears rotated ``days`` days ago."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() - days * 86400))
    name = segment.name
    start = name.index(".jsonl.") + len(".jsonl.")
    renamed = segment.with_name(name[:start] + stamp + name[start + 15 :])
    os.rename(segment, renamed)
    return renamed


def test_prune_removes_only_old_segments(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage, rotate_bytes=2000)
    for _ in range(60):
        logger.log_usage("op")
    segments = list_segments(logger.log_file)
    old = age_segment(segments[0], 120)
    current_before = logger.log_file.read_bytes()

    result = run_cli("prune", "svc", "--older-than", "90d", "--dir", storage)

    assert result.returncode == 0, result.stderr
    assert "removed 1 segment" in result.stdout
    assert not old.exists()
    assert list_segments(logger.log_file) == segments[1:]
    assert logger.log_file.read_bytes() == current_before


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 90 * 86400), ("12h", 43200), ("30m", 1800), ("45", 45), ("2w", 1209600)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_prune_rejects_bad_duration(storage: Path) -> None:
    result = run_cli("prune", "svc", "--older-than", "ninety days", "--dir", storage)

    assert result.returncode == 2
    assert "'ninety days' is invalid" in result.stderr


@pytest.mark.parametrize("settings", [{"rotate_bytes": 0}, {"rotate_age": -1.0}])
def test_invalid_rotation_settings(storage: Path, settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="rotate_"):
        UsageLogger("svc", storage_dir=storage, **settings)  # type: ignore[arg-type]
