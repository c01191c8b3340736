"""Crash safety: writers SIGKILLed at random points lose no entry whose call returned.

Each batch starts several writer processes on one service log, kills every one
of them with SIGKILL at a random moment while they append, then lets fresh
writers append to the same log and checks it line by line. Run with ``-s`` to
see the figures of the run. ``LEYLINE_CRASH_SEED`` replays the kill timing of
a printed seed, though process scheduling still varies.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import reliability_workers

from leyline_usage.reader import ReadStats, iter_entries

BATCHES = 30
WRITERS_PER_BATCH = 4
# Half the writers are killed at a moment drawn uniformly from KILL_WINDOW
# (seconds after the batch starts), which also covers start-up and session
# creation. The other half are killed within APPEND_KILL_WINDOW after their
# first append returned, so on a loaded machine kills still land among
# appends of up to 256 KiB.
KILL_WINDOW = (0.0, 0.04)
APPEND_KILL_WINDOW = (0.0, 0.02)
FIRST_APPEND_TIMEOUT = 30.0
FRESH_WRITERS = 2
FRESH_ENTRIES = 50
JOIN_TIMEOUT = 30.0
ENTRY_START = b'{"timestamp":"'


@dataclass
class CrashFigures:
    """Totals over all batches, printed for docs/reliability.md."""

    processes: int = 0
    kills: int = 0
    entries: int = 0
    returned: int = 0
    torn_lines: int = 0
    lost: int = 0
    log_bytes: int = 0

    def line(self, seed: int, seconds: float) -> str:
        return (
            f"crash figures: processes={self.processes} kills={self.kills} "
            f"entries_on_disk={self.entries} returned_before_kill={self.returned} "
            f"torn_lines={self.torn_lines} entries_lost={self.lost} "
            f"log_bytes={self.log_bytes} seed={seed} seconds={seconds:.1f}"
        )


def test_sigkilled_writers_lose_no_returned_entry(tmp_path: Path) -> None:
    seed = int(os.environ.get("LEYLINE_CRASH_SEED") or random.randrange(1 << 32))
    rng = random.Random(seed)
    # Forked writers start appending within a millisecond or two, so most
    # kills land while they append rather than while they import.
    context = multiprocessing.get_context("fork")
    storage = tmp_path / "usage"
    figures = CrashFigures()
    started = time.monotonic()

    for batch in range(BATCHES):
        service = f"crash{batch}"
        progress = context.RawArray("q", [-1] * WRITERS_PER_BATCH)
        _run_killed_writers(context, storage, service, progress, rng, figures)
        _run_fresh_writers(context, storage, service)
        figures.processes += WRITERS_PER_BATCH + FRESH_WRITERS

        log = storage / f"{service}.jsonl"
        _check_log(log, list(progress), figures)
        figures.log_bytes += log.stat().st_size
        # Each batch's log is checked, then removed, to bound disk use.
        log.unlink()

    print("\n" + figures.line(seed, time.monotonic() - started))
    assert figures.kills >= 100
    assert figures.lost == 0


def _run_killed_writers(
    context: Any,
    storage: Path,
    service: str,
    progress: Any,
    rng: random.Random,
    figures: CrashFigures,
) -> None:
    writers = [
        context.Process(
            target=reliability_workers.crash_writer,
            args=(str(storage), service, slot, progress),
            daemon=True,
        )
        for slot in range(WRITERS_PER_BATCH)
    ]
    start = time.monotonic()
    for writer in writers:
        writer.start()
    # Each slot's kill time: known now, or drawn once its first append returns.
    kill_at: dict[int, float | None] = {}
    for slot in range(WRITERS_PER_BATCH):
        if rng.random() < 0.5:
            kill_at[slot] = start + rng.uniform(*KILL_WINDOW)
        else:
            kill_at[slot] = None
    while kill_at:
        now = time.monotonic()
        assert now < start + FIRST_APPEND_TIMEOUT, f"{service} writers never appended"
        for slot, moment in list(kill_at.items()):
            if moment is None and progress[slot] >= 0:
                kill_at[slot] = now + rng.uniform(*APPEND_KILL_WINDOW)
            elif moment is not None and now >= moment:
                os.kill(writers[slot].pid, signal.SIGKILL)
                del kill_at[slot]
        time.sleep(0.0005)
    for writer in writers:
        writer.join(JOIN_TIMEOUT)

    exit_codes = [writer.exitcode for writer in writers]
    assert exit_codes == [-signal.SIGKILL] * WRITERS_PER_BATCH, service
    figures.kills += WRITERS_PER_BATCH


def _run_fresh_writers(context: Any, storage: Path, service: str) -> None:
    writers = [
        context.Process(
            target=reliability_workers.finite_writer,
            args=(str(storage), service, WRITERS_PER_BATCH + index, FRESH_ENTRIES),
            daemon=True,
        )
        for index in range(FRESH_WRITERS)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(JOIN_TIMEOUT)
    assert [writer.exitcode for writer in writers] == [0] * FRESH_WRITERS, service


def _check_log(log: Path, progress: list[int], figures: CrashFigures) -> None:
    data = log.read_bytes()
    lines = data.split(b"\n")
    assert lines[-1] == b"", f"{log} does not end with a newline"
    lines.pop()

    sequences: dict[int, list[int]] = defaultdict(list)
    torn = 0
    first_fresh = None
    for number, line in enumerate(lines):
        # A line with two entry starts would mean two writes interleaved.
        assert line.count(ENTRY_START) <= 1, f"{log} line {number} is interleaved"
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            # Only the torn head of a killed write may fail to parse.
            is_prefix = line.startswith(ENTRY_START) or ENTRY_START.startswith(line)
            assert is_prefix, f"{log} line {number} is not a torn entry: {line[:80]!r}"
            assert first_fresh is None, f"{log} line {number} torn after fresh writes"
            torn += 1
            continue
        slot = entry["metadata"]["slot"]
        sequences[slot].append(entry["metadata"]["seq"])
        if slot >= WRITERS_PER_BATCH and first_fresh is None:
            first_fresh = number

    stats = ReadStats()
    entries = list(iter_entries([log], stats))
    assert stats.skipped_lines == torn
    assert torn <= WRITERS_PER_BATCH
    assert len({entry["id"] for entry in entries}) == len(entries)
    assert len({entry["session_id"] for entry in entries}) == 1

    for slot, completed in enumerate(progress):
        on_disk = sequences[slot]
        assert on_disk == list(range(len(on_disk))), f"{log} slot {slot} out of order"
        # The kill may land after the append but before progress is stored.
        assert len(on_disk) - 1 - completed in (0, 1), f"{log} slot {slot}"
        figures.returned += completed + 1
        figures.lost += max(0, completed + 1 - len(on_disk))
    for slot in range(WRITERS_PER_BATCH, WRITERS_PER_BATCH + FRESH_WRITERS):
        assert sequences[slot] == list(range(FRESH_ENTRIES)), f"{log} slot {slot}"

    figures.entries += len(entries)
    figures.torn_lines += torn
