"""Targets for tests that log from separate processes (importable by spawn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leyline_usage import UsageLogger


def log_numbered(
    storage: str, service: str, worker: int, count: int, barrier: Any = None
) -> None:
    """Log ``count`` entries whose metadata contains ``worker`` and 0..count-1."""
    logger = UsageLogger(service, storage_dir=Path(storage), strict=True)
    if barrier is not None:
        barrier.wait()
    for number in range(count):
        logger.log_usage(
            "step", tokens=number, metadata={"worker": worker, "seq": number}
        )


def log_until(storage: str, service: str, stop: Any) -> None:
    """Log entries until the event ``stop`` is set."""
    logger = UsageLogger(service, storage_dir=Path(storage), strict=True)
    number = 0
    while not stop.is_set():
        logger.log_usage("step", tokens=number)
        number += 1
