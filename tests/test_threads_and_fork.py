"""Threads and fork: many threads, asyncio.to_thread, forked children and plugin
hooks that log, all on one service, with no deadlock and one lock holder at a time.

Every test counts the holders of each service flock through a wrapper around
``fcntl.flock`` that keeps its counts in shared memory, so forked children
report into the same table.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import multiprocessing
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from leyline_usage import UsageLogger, hookimpl
from leyline_usage.entry import format_timestamp
from leyline_usage.plugins import plugin_manager
from leyline_usage.reader import ReadStats, iter_entries
from leyline_usage.store import appender_for

THREADS = 8
ENTRIES_PER_THREAD = 400
# How long a test waits for work that should finish before calling it a deadlock.
DEADLOCK_TIMEOUT = 60.0
# How long a child must stay blocked to count as waiting for the lock.
WAIT_CHECK = 0.5
# Size of the open-addressing table of lock file inodes (a prime).
_SLOTS = 1021


class LockOccupancy:
    """Counts holders of each flocked file, across threads and forked processes.

    The tables live in shared memory, so forked children count into them too.
    A lock file gets its slot on its first flock call. Claiming a slot takes no
    lock, which is safe as long as two new lock files do not hash to the same
    slot at the same moment.
    """

    def __init__(self) -> None:
        self._inodes = multiprocessing.RawArray("Q", _SLOTS)
        self._inside = multiprocessing.RawArray("q", _SLOTS)
        self._shared = multiprocessing.RawArray("q", 2)  # violations, acquisitions
        self._original = fcntl.flock

    @property
    def violations(self) -> int:
        return int(self._shared[0])

    @property
    def acquisitions(self) -> int:
        return int(self._shared[1])

    def _slot(self, fd: Any) -> int:
        inode = os.fstat(fd).st_ino
        slot = inode % _SLOTS
        while self._inodes[slot] not in (0, inode):
            slot = (slot + 1) % _SLOTS
        self._inodes[slot] = inode
        return slot

    def flock(self, fd: Any, operation: int) -> None:
        slot = self._slot(fd)
        if operation & fcntl.LOCK_UN:
            self._inside[slot] -= 1
            self._original(fd, operation)
            return
        self._original(fd, operation)
        self._inside[slot] += 1
        self._shared[1] += 1
        # Give another thread the chance to enter, then check it did not.
        time.sleep(0)
        if self._inside[slot] != 1:
            self._shared[0] += 1


@pytest.fixture
def occupancy(monkeypatch: pytest.MonkeyPatch) -> Iterator[LockOccupancy]:
    counter = LockOccupancy()
    monkeypatch.setattr(fcntl, "flock", counter.flock)
    yield counter
    assert counter.acquisitions > 0
    assert counter.violations == 0


def _run_threads(targets: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def run(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + DEADLOCK_TIMEOUT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "threads deadlocked"
    assert errors == []


def _sequences(log: Path) -> tuple[dict[int, list[int]], ReadStats]:
    stats = ReadStats()
    sequences: dict[int, list[int]] = defaultdict(list)
    for entry in iter_entries([log], stats):
        sequences[entry["metadata"]["writer"]].append(entry["metadata"]["seq"])
    return sequences, stats


def _wait_for_child(pid: int, timeout: float = DEADLOCK_TIMEOUT) -> int:
    """Return the exit code of child ``pid``, killing it if it runs past ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError(f"child {pid} did not finish within {timeout} s")


def test_many_threads_lose_nothing(storage: Path, occupancy: LockOccupancy) -> None:
    logger = UsageLogger("svc", storage_dir=storage, strict=True)

    def write(writer: int) -> None:
        for seq in range(ENTRIES_PER_THREAD):
            logger.log_usage("thread", metadata={"writer": writer, "seq": seq})

    _run_threads([functools.partial(write, w) for w in range(THREADS)])

    sequences, stats = _sequences(logger.log_file)
    assert stats.skipped_lines == 0
    for writer in range(THREADS):
        assert sequences[writer] == list(range(ENTRIES_PER_THREAD)), writer
    ids = [entry["id"] for entry in iter_entries([logger.log_file])]
    assert len(set(ids)) == THREADS * ENTRIES_PER_THREAD


def test_separate_loggers_in_threads_share_session(
    storage: Path, occupancy: LockOccupancy
) -> None:
    sessions: list[str] = []
    barrier = threading.Barrier(THREADS)

    def write(writer: int) -> None:
        logger = UsageLogger("svc", storage_dir=storage, strict=True)
        barrier.wait()
        entry = logger.log_usage("start", metadata={"writer": writer, "seq": 0})
        assert entry is not None
        sessions.append(entry["session_id"])

    _run_threads([functools.partial(write, w) for w in range(THREADS)])

    assert len(sessions) == THREADS
    assert len(set(sessions)) == 1


def test_to_thread_calls_lose_nothing(storage: Path, occupancy: LockOccupancy) -> None:
    logger = UsageLogger("svc", storage_dir=storage, strict=True)
    calls = 200

    async def main() -> list[Any]:
        tasks = [
            asyncio.to_thread(
                logger.log_usage, "async", metadata={"writer": 0, "seq": seq}
            )
            for seq in range(calls)
        ]
        return await asyncio.wait_for(asyncio.gather(*tasks), DEADLOCK_TIMEOUT)

    returned = asyncio.run(main())

    assert all(entry is not None for entry in returned)
    sequences, stats = _sequences(logger.log_file)
    assert stats.skipped_lines == 0
    assert sorted(sequences[0]) == list(range(calls))


def test_forked_child_waits_for_parent_lock(
    storage: Path, occupancy: LockOccupancy
) -> None:
    logger = UsageLogger("svc", storage_dir=storage, strict=True)
    template = logger.log_usage("parent", metadata={"writer": 0, "seq": 0})
    assert template is not None
    appender = appender_for(logger.log_file)
    ready_read, ready_write = os.pipe()

    with appender.locked():
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                os.close(ready_read)
                child = UsageLogger("svc", storage_dir=storage, strict=True)
                os.write(ready_write, b"r")
                child.log_usage("child", metadata={"writer": 1, "seq": 0})
            finally:
                os._exit(0)
        os.close(ready_write)
        assert os.read(ready_read, 1) == b"r"
        os.close(ready_read)
        size = logger.log_file.stat().st_size

        time.sleep(WAIT_CHECK)
        assert os.waitpid(pid, os.WNOHANG) == (0, 0), "child did not wait"
        assert logger.log_file.stat().st_size == size
        # Still inside the lock, so this line must land before the child's.
        line = dict(template, id="parent-2", metadata={"writer": 0, "seq": 1})
        appender.append_locked(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

    assert _wait_for_child(pid) == 0
    stats = ReadStats()
    operations = [
        (entry["operation"], entry["metadata"]["seq"])
        for entry in iter_entries([logger.log_file], stats)
    ]
    assert operations == [("parent", 0), ("parent", 1), ("child", 0)]
    assert stats.skipped_lines == 0


@pytest.mark.filterwarnings("ignore:.*multi-threaded.*:DeprecationWarning")
def test_fork_while_threads_log(storage: Path, occupancy: LockOccupancy) -> None:
    logger = UsageLogger("svc", storage_dir=storage, strict=True)
    stop = threading.Event()
    children = 20
    child_entries = 20

    def write(writer: int) -> None:
        seq = 0
        while not stop.is_set():
            logger.log_usage("thread", metadata={"writer": writer, "seq": seq})
            seq += 1

    threads = [
        threading.Thread(target=write, args=(writer,), daemon=True)
        for writer in range(3)
    ]
    for thread in threads:
        thread.start()
    try:
        for child in range(children):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                code = 1
                try:
                    for seq in range(child_entries):
                        logger.log_usage(
                            "child", metadata={"writer": 100 + child, "seq": seq}
                        )
                    code = 0
                finally:
                    os._exit(code)
            assert _wait_for_child(pid, timeout=10.0) == 0
    finally:
        stop.set()
        for thread in threads:
            thread.join(DEADLOCK_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)

    sequences, stats = _sequences(logger.log_file)
    assert stats.skipped_lines == 0
    for writer, seqs in sequences.items():
        expected = child_entries if writer >= 100 else len(seqs)
        assert seqs == list(range(expected)), writer
    assert len([w for w in sequences if w >= 100]) == children


# -- plugin hooks that log ---------------------------------------------------


class _LoggingPlugin:
    """Enricher that logs to another service, and sink that logs to the same one."""

    def __init__(self, storage: Path) -> None:
        self.audit = UsageLogger("audit", storage_dir=storage, strict=True)
        self.work = UsageLogger("svc", storage_dir=storage, strict=True)

    @hookimpl
    def leyline_usage_enrich(
        self, entry: dict[str, Any], metadata: dict[str, Any]
    ) -> None:
        if entry["service"] == "svc":
            self.audit.log_usage(
                "enriched", metadata={"writer": -1, "seq": 0, "of": entry["id"]}
            )
            metadata["enriched"] = True

    @hookimpl
    def leyline_usage_sink(
        self, entries: list[dict[str, Any]], storage_dir: Path
    ) -> None:
        for entry in entries:
            if entry["service"] == "svc" and entry["operation"] == "work":
                self.work.log_usage("sunk", metadata=dict(entry["metadata"]))


def test_hooks_that_log_do_not_deadlock(
    storage: Path, occupancy: LockOccupancy
) -> None:
    manager = plugin_manager()
    plugin = _LoggingPlugin(storage)
    manager.register(plugin, name="logging-hooks")
    try:
        logger = UsageLogger("svc", storage_dir=storage, strict=True)
        per_thread = 50

        def write(writer: int) -> None:
            for seq in range(per_thread):
                logger.log_usage("work", metadata={"writer": writer, "seq": seq})

        _run_threads([functools.partial(write, w) for w in range(4)])
    finally:
        manager.unregister(plugin)

    stats = ReadStats()
    entries = list(iter_entries([storage / "svc.jsonl"], stats))
    operations = [entry["operation"] for entry in entries]
    assert operations.count("work") == 4 * per_thread
    assert operations.count("sunk") == 4 * per_thread
    assert all(entry["metadata"]["enriched"] for entry in entries)
    assert stats.skipped_lines == 0
    audit = list(iter_entries([storage / "audit.jsonl"]))
    assert len(audit) == 2 * 4 * per_thread
    assert manager.failures["logging-hooks"] == 0


# -- shared state of the entry module ----------------------------------------


def test_timestamps_are_right_across_threads() -> None:
    # Each call alternates between two seconds, so every call replaces the cache.
    stop = threading.Event()
    wrong: list[tuple[float, str]] = []

    def format_many(offset: int) -> None:
        count = offset
        while not stop.is_set() and not wrong:
            when = 1_000_000_000.5 + count % 2
            text = format_timestamp(when)
            if text[:19] != time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(when))):
                wrong.append((when, text))
            count += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    threads = [threading.Thread(target=format_many, args=(k,)) for k in range(4)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and not wrong:
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        sys.setswitchinterval(interval)

    assert wrong == []
