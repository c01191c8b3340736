"""Targets for tests that log from separate processes (importable by spawn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leyline_usage import UsageLogger


def log_sequence(storage: str, service: str, worker: int, count: int) -> None:
    """Log ``count`` entries numbered 0..count-1 from one process."""
    logger = UsageLogger(service, storage_dir=Path(storage), strict=True)
    for number in range(count):
        logger.log_usage(
            "step", tokens=number, metadata={"worker": worker, "seq": number}
        )


def log_after_barrier(storage: str, service: str, barrier: Any, results: Any) -> None:
    """Wait until every process is ready, then log one entry and report its session."""
    logger = UsageLogger(service, storage_dir=Path(storage), strict=True)
    barrier.wait()
    entry = logger.log_usage("start", tokens=1)
    assert entry is not None
    results.put(entry["session_id"])


def log_sequence_batched(storage: str, service: str, worker: int, count: int) -> None:
    """Log ``count`` numbered entries from one process inside ``batch()``."""
    logger = UsageLogger(service, storage_dir=Path(storage), strict=True)
    with logger.batch(max_entries=250):
        for number in range(count):
            logger.log_usage(
                "step", tokens=number, metadata={"worker": worker, "seq": number}
            )


def log_sequence_rotating(storage: str, service: str, worker: int, count: int) -> None:
    """Log ``count`` numbered entries from one process into a log that rotates often."""
    logger = UsageLogger(
        service, storage_dir=Path(storage), strict=True, rotate_bytes=20_000
    )
    for number in range(count):
        logger.log_usage(
            "step", tokens=number, metadata={"worker": worker, "seq": number}
        )


def log_sequence_chained(storage: str, service: str, worker: int, count: int) -> None:
    """Log ``count`` numbered entries from one process with the hash chain on."""
    logger = UsageLogger(service, storage_dir=Path(storage), strict=True, chain=True)
    for number in range(count):
        logger.log_usage(
            "step", tokens=number, metadata={"worker": worker, "seq": number}
        )


def log_sequence_rotating_fast(
    storage: str, service: str, worker: int, count: int
) -> None:
    """Log ``count`` numbered entries into a log that rotates every few entries."""
    logger = UsageLogger(
        service, storage_dir=Path(storage), strict=True, rotate_bytes=6_000
    )
    for number in range(count):
        logger.log_usage(
            "step", tokens=number, metadata={"worker": worker, "seq": number}
        )
