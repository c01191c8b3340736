"""The appender: concurrency across processes, torn tails, permissions and names."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import workers
from conftest import run_writers, sequences_by_worker

from leyline_usage import StorageError, UsageLogger
from leyline_usage.reader import ReadStats, iter_entries
from leyline_usage.segments import list_segments

PROCESSES = 8
ENTRIES_PER_PROCESS = 2_000


def test_eight_processes_lose_nothing(storage: Path) -> None:
    exit_codes = run_writers(
        workers.log_sequence, storage, "shared", PROCESSES, ENTRIES_PER_PROCESS
    )

    assert exit_codes == [0] * PROCESSES
    lines = (storage / "shared.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    entries = [json.loads(line) for line in lines[:-1]]
    assert len(entries) == PROCESSES * ENTRIES_PER_PROCESS
    sequences = sequences_by_worker(entries)
    for worker in range(PROCESSES):
        assert sequences[worker] == list(range(ENTRIES_PER_PROCESS))
    assert len({entry["id"] for entry in entries}) == len(entries)
    assert len({entry["session_id"] for entry in entries}) == 1


def test_torn_tail_then_append(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)
    logger.log_usage("before", tokens=1)
    with open(storage / "svc.jsonl", "ab") as file:
        file.write(
            b'{"timestamp": "2025-12-05T10:30:00.000000Z", "session_id": "s", "serv'
        )

    logger.log_usage("after", tokens=2)

    stats = ReadStats()
    operations = [
        entry["operation"] for entry in iter_entries([storage / "svc.jsonl"], stats)
    ]
    assert operations == ["before", "after"]
    assert stats.skipped_lines == 1
    assert logger.get_usage_summary()["skipped_lines"] == 1


def test_torn_line_written_by_another_process_is_detected(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)
    logger.log_usage("first")
    os.system(f"printf '{{\"partial' >> '{storage / 'svc.jsonl'}'")

    logger.log_usage("second")

    assert [e["operation"] for e in logger.iter_entries()] == ["first", "second"]
    assert logger.skipped_lines == 1


def test_files_are_owner_only(storage: Path) -> None:
    UsageLogger("svc", storage_dir=storage).log_usage("op")

    assert stat.S_IMODE(storage.stat().st_mode) == 0o700
    for name in ("svc.jsonl", "svc.jsonl.lock", "svc_session.json"):
        assert stat.S_IMODE((storage / name).stat().st_mode) == 0o600, name


@pytest.mark.parametrize("name", ["svc.jsonl", "svc.jsonl.lock", "svc_session.json"])
def test_planted_symlink_is_refused(storage: Path, tmp_path: Path, name: str) -> None:
    storage.mkdir(mode=0o700)
    target = tmp_path / "target"
    target.write_text("do not touch\n")
    (storage / name).symlink_to(target)

    with pytest.raises(StorageError, match="symlink"):
        UsageLogger("svc", storage_dir=storage, strict=True).log_usage("op")

    assert target.read_text() == "do not touch\n"


def test_symlink_drop_is_counted_without_strict(storage: Path, tmp_path: Path) -> None:
    storage.mkdir(mode=0o700)
    (storage / "svc.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    logger = UsageLogger("svc", storage_dir=storage)

    assert logger.log_usage("op") is None

    assert logger.dropped_entries == 1
    assert not (tmp_path / "elsewhere.jsonl").exists()


@pytest.mark.parametrize(
    "name",
    ["", "../x", "a/b", ".hidden", "..", "a\\b", "x" * 129, "sp ace", "nul\0", 7],
)
def test_invalid_service_name_raises(storage: Path, name: object) -> None:
    with pytest.raises(ValueError, match="service name"):
        UsageLogger(name, storage_dir=storage)  # type: ignore[arg-type]

    assert not storage.exists()


@pytest.mark.parametrize("name", ["a", "my-service", "svc.v2", "_x", "x" * 128])
def test_valid_service_names_accepted(storage: Path, name: str) -> None:
    UsageLogger(name, storage_dir=storage).log_usage("op")

    assert (storage / f"{name}.jsonl").exists()


def test_storage_path_that_is_a_file_drops_entry(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    logger = UsageLogger("svc", storage_dir=blocker / "usage")

    assert logger.log_usage("op") is None
    assert logger.dropped_entries == 1
    with pytest.raises(StorageError):
        UsageLogger("svc", storage_dir=blocker / "usage", strict=True).log_usage("op")


def test_forked_child_uses_its_own_descriptors(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)
    logger.log_usage("parent")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            child = UsageLogger("svc", storage_dir=storage)
            for _ in range(100):
                child.log_usage("child")
        finally:
            os._exit(0)
    for _ in range(100):
        logger.log_usage("parent")
    os.waitpid(pid, 0)

    operations = [e["operation"] for e in logger.iter_entries()]
    assert operations.count("child") == 100
    assert operations.count("parent") == 101
    assert logger.skipped_lines == 0


def test_loggers_of_one_service_keep_their_settings(storage: Path) -> None:
    plain = UsageLogger("svc", storage_dir=storage)
    UsageLogger("svc", storage_dir=storage, lock_timeout=0.01, rotate_bytes=500)

    for _ in range(20):
        plain.log_usage("op")

    assert plain._write_options.lock_timeout == 10.0
    assert list_segments(plain.log_file) == []
