"""Targets for tests that log from separate processes (importable by spawn)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
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


def log_two_entries(storage: str, service: str, timeout: float, results: Any) -> None:
    """Log two entries 40 ms apart and report the second one's time and session.

    The second entry only appends: the state file keeps the first's time.
    """
    logger = UsageLogger(
        service, storage_dir=Path(storage), strict=True, session_timeout=timeout
    )
    logger.log_usage("a0", tokens=1)
    time.sleep(0.04)
    entry = logger.log_usage("a1", tokens=1)
    assert entry is not None
    results.put((entry_time(entry), entry["session_id"]))


def log_across_timeout_edge(
    storage: str, service: str, timeout: float, append_held: Any, release: Any
) -> None:
    """Log, then log from a new logger just before the timeout, its write held back.

    The new logger reads the session state under the lock and then lets the
    lock go before writing. The held write stands for a process descheduled
    in between, while another process logs.
    """
    from leyline_usage import store

    first = UsageLogger(
        service, storage_dir=Path(storage), strict=True, session_timeout=timeout
    ).log_usage("a1", tokens=1)
    assert first is not None
    time.sleep(max(0.0, entry_time(first) + timeout * 0.9 - time.time()))
    logger = UsageLogger(
        service, storage_dir=Path(storage), strict=True, session_timeout=timeout
    )
    real_append = store.Appender.append

    def held_append(self: Any, data: bytes, *args: Any) -> None:
        append_held.set()
        release.wait(60)
        real_append(self, data, *args)

    store.Appender.append = held_append  # type: ignore[method-assign]
    try:
        logger.log_usage("a2", tokens=1)
    finally:
        store.Appender.append = real_append  # type: ignore[method-assign]
    logger.log_usage("a3", tokens=1)


def entry_time(entry: dict[str, Any]) -> float:
    """Return an entry's timestamp as a Unix time."""
    moment = datetime.strptime(entry["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.replace(tzinfo=timezone.utc).timestamp()
