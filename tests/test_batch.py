"""UsageLogger.batch: buffered writes under one lock acquisition."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import workers
from conftest import run_writers, sequences_by_worker

from leyline_usage import StorageError, UsageLogger


def line_count(storage: Path, service: str = "svc") -> int:
    path = storage / f"{service}.jsonl"
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def test_block_end_writes_everything_in_order(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    with logger.batch(max_entries=10_000, max_delay=60):
        returned = [logger.log_usage("op", tokens=n) for n in range(500)]
        assert line_count(storage) == 0

    entries = list(logger.iter_entries())
    assert [e["tokens"] for e in entries] == list(range(500))
    assert [e["id"] for e in entries] == [e["id"] for e in returned if e]


def test_full_buffer_flushes(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    with logger.batch(max_entries=100, max_delay=60):
        for n in range(250):
            logger.log_usage("op", tokens=n)
        assert line_count(storage) == 200

    assert line_count(storage) == 250


def test_old_entries_flush_without_more_calls(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    with logger.batch(max_entries=10_000, max_delay=0.05):
        logger.log_usage("op")
        deadline = time.monotonic() + 5
        while line_count(storage) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert line_count(storage) == 1


def test_nested_batch_joins_outer(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    with logger.batch(max_delay=60) as outer:
        with logger.batch() as inner:
            logger.log_usage("op")
        assert inner is outer
        assert line_count(storage) == 0

    assert line_count(storage) == 1


def test_interpreter_exit_flushes(storage: Path) -> None:
    script = textwrap.dedent(
        f"""
        from leyline_usage import UsageLogger
        logger = UsageLogger("svc", storage_dir={str(storage)!r})
        block = logger.batch(max_entries=10_000, max_delay=60)
        block.__enter__()
        for n in range(300):
            logger.log_usage("op", tokens=n)
        """
    )

    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)

    assert line_count(storage) == 300


def test_batched_processes_lose_nothing(storage: Path) -> None:
    exit_codes = run_writers(workers.log_sequence_batched, storage, "svc", 4, 3000)

    assert exit_codes == [0] * 4
    lines = (storage / "svc.jsonl").read_bytes().splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 12_000
    sequences = sequences_by_worker(entries)
    for worker in range(4):
        assert sequences[worker] == list(range(3000))


def test_forked_child_does_not_repeat_parent_buffer(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    with logger.batch(max_entries=10_000, max_delay=60):
        logger.log_usage("parent")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                logger.log_usage("child")
            finally:
                os._exit(0)
        os.waitpid(pid, 0)

    operations = sorted(e["operation"] for e in logger.iter_entries())
    assert operations == ["child", "parent"]


def test_invalid_arguments_raise_at_call(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    with logger.batch():
        with pytest.raises(ValueError, match="tokens"):
            logger.log_usage("op", tokens=-1)
        logger.log_usage("op", tokens=1)

    assert line_count(storage) == 1


@pytest.mark.parametrize(("entries", "delay"), [(0, 1.0), (10, 0), (10, float("inf"))])
def test_invalid_batch_settings_raise(
    storage: Path, entries: int, delay: float
) -> None:
    with (
        pytest.raises(ValueError, match="max_"),
        UsageLogger("svc", storage_dir=storage).batch(
            max_entries=entries, max_delay=delay
        ),
    ):
        pass


def test_storage_failure_at_flush(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    lenient = UsageLogger("svc", storage_dir=blocker / "usage")
    strict = UsageLogger("svc2", storage_dir=blocker / "usage", strict=True)

    with lenient.batch():
        for _ in range(5):
            lenient.log_usage("op")
    with pytest.raises(StorageError), strict.batch():
        strict.log_usage("op")

    assert lenient.dropped_entries == 5
