"""Faults of the environment that every logger must survive.

The faults: a full disk, unwritable storage, a process that holds the lock and
does not let go, a storage directory deleted under a running logger, a damaged
session file and special files planted at the service paths. For each fault
the default logger must not raise and must either write the entry or count it
in ``dropped_entries``, ``strict=True`` must raise StorageError naming the
file, and bytes already in the log must stay as they were.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import reliability_workers

import leyline_usage.session
from leyline_usage import StorageError, UsageLogger
from leyline_usage.reader import ReadStats, iter_entries
from leyline_usage.store import appender_for

WORKERS_SCRIPT = Path(reliability_workers.__file__)
# How long a call may block before a test treats it as stuck.
STUCK_AFTER = 0.5
# How long a test waits for a call that should finish.
FINISH_TIMEOUT = 10.0


def _operations(log: Path, stats: ReadStats | None = None) -> list[str]:
    return [entry["operation"] for entry in iter_entries([log], stats)]


def _seed_log(storage: Path, service: str = "svc") -> bytes:
    logger = UsageLogger(service, storage_dir=storage)
    logger.log_usage("first", tokens=1)
    logger.log_usage("second", tokens=2)
    return (storage / f"{service}.jsonl").read_bytes()


def _in_forked_child(function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function(*args)`` in a forked process and return its result."""
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(function, *args).result(timeout=60)


class _Call:
    """A call run in a daemon thread, so a test can notice that it blocks."""

    def __init__(self, function: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._function = function
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._function()
        except BaseException as exc:
            self.error = exc

    def finished_within(self, seconds: float) -> bool:
        self._thread.join(seconds)
        return not self._thread.is_alive()


# -- disk full ---------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True])
def test_file_size_limit_drops_entry(storage: Path, strict: bool) -> None:
    before = _seed_log(storage)
    log = storage / "svc.jsonl"

    outcome = _in_forked_child(
        reliability_workers.log_under_file_size_limit,
        str(storage), "svc", len(before) + 100, strict, 1000,
    )  # fmt: skip

    assert outcome["returned"] is False
    assert outcome["dropped"] == 1
    if strict:
        assert outcome["path"] == str(log)
        assert str(log) in outcome["error"]
        assert "File too large" in outcome["error"]
    else:
        assert outcome["error"] is None
    assert log.read_bytes().startswith(before)

    # Once the limit is gone, the next append lands and earlier entries remain.
    UsageLogger("svc", storage_dir=storage, strict=True).log_usage("later")
    assert _operations(log) == ["first", "second", "later"]


def test_failed_append_leaves_one_skipped_fragment(storage: Path) -> None:
    # A short write followed by EFBIG leaves the bytes that fit, and readers
    # skip them as they skip a line torn by a crash.
    before = _seed_log(storage)
    log = storage / "svc.jsonl"

    _in_forked_child(
        reliability_workers.log_under_file_size_limit,
        str(storage), "svc", len(before) + 100, False, 1000,
    )  # fmt: skip
    UsageLogger("svc", storage_dir=storage).log_usage("later")

    stats = ReadStats()
    assert _operations(log, stats) == ["first", "second", "later"]
    assert stats.skipped_lines <= 1


def _mount_namespace_works(directory: Path) -> str | None:
    """Return None if a private tmpfs can be mounted at ``directory``, else why not."""
    if shutil.which("unshare") is None:
        return "the unshare command is not installed"
    probe = subprocess.run(
        ["unshare", "--mount", "--map-root-user", "sh", "-c",
         'mount -t tmpfs -o size=64k tmpfs "$1"', "sh", str(directory)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return f"cannot mount a tmpfs in a private namespace: {probe.stderr.strip()}"
    return None


@pytest.mark.parametrize("strict", [False, True])
def test_full_filesystem_drops_entry(tmp_path: Path, strict: bool) -> None:
    mount_point = tmp_path / "small"
    mount_point.mkdir(mode=0o700)
    problem = _mount_namespace_works(mount_point)
    if problem is not None:
        pytest.skip(problem)

    # The tmpfs exists only inside the namespace, so the worker checks the
    # bytes itself and reports what it saw.
    result = subprocess.run(
        ["unshare", "--mount", "--map-root-user", "sh", "-c",
         'mount -t tmpfs -o size=256k,mode=0700 tmpfs "$1" && exec "$2" "$3" '
         'fill-and-log "$1" svc "$4"',
         "sh", str(mount_point), sys.executable, str(WORKERS_SCRIPT),
         "strict" if strict else "default"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)

    assert outcome["returned"] is False
    assert outcome["dropped"] == 1
    assert outcome["kept_prefix"] is True
    assert outcome["recovered"] is True
    if strict:
        assert outcome["path"] == str(mount_point / "svc.jsonl")
        assert "No space left on device" in outcome["error"]
    else:
        assert outcome["error"] is None


# -- unwritable storage ------------------------------------------------------


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable: chmod for ordinary users, ``chattr +i`` for root.

    Root ignores permission bits, so as root only the immutable attribute
    stops writes. It needs a filesystem that supports it, such as ext4.
    """
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o500 if path.is_dir() else 0o400)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    try:
        result = subprocess.run(
            ["chattr", "+i", str(path)], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        pytest.skip("running as root and chattr is not installed")
    if result.returncode != 0:
        pytest.skip(f"running as root and chattr +i failed: {result.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_read_only_directory_drops_entry(storage: Path) -> None:
    before = _seed_log(storage)
    names = sorted(os.listdir(storage))

    with _read_only(storage):
        logger = UsageLogger("other", storage_dir=storage)
        assert logger.log_usage("op") is None
        assert logger.dropped_entries == 1

        with pytest.raises(StorageError) as raised:
            UsageLogger("other", storage_dir=storage, strict=True).log_usage("op")
        assert raised.value.path.parent == storage
        assert raised.value.path.name.startswith("other.jsonl")
        assert str(raised.value.path) in str(raised.value)

    assert sorted(os.listdir(storage)) == names
    assert (storage / "svc.jsonl").read_bytes() == before


def test_read_only_log_drops_entry(storage: Path) -> None:
    before = _seed_log(storage)
    log = storage / "svc.jsonl"
    # Close this process's descriptors, so the next append opens the log as a
    # process starting now would.
    appender_for(log).close()

    with _read_only(log):
        logger = UsageLogger("svc", storage_dir=storage)
        assert logger.log_usage("op") is None
        assert logger.dropped_entries == 1

        with pytest.raises(StorageError) as raised:
            UsageLogger("svc", storage_dir=storage, strict=True).log_usage("op")
        assert raised.value.path == log
        assert str(log) in str(raised.value)

    assert log.read_bytes() == before
    UsageLogger("svc", storage_dir=storage).log_usage("writable again")
    assert _operations(log) == ["first", "second", "writable again"]


# -- a process that holds the lock and does not let go -----------------------


@contextlib.contextmanager
def _lock_holder(lock_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Run a separate process that holds the flock on ``lock_path``."""
    holder = subprocess.Popen(
        [sys.executable, str(WORKERS_SCRIPT), "hold-lock", str(lock_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        yield holder
    finally:
        holder.kill()
        holder.wait(FINISH_TIMEOUT)


def test_stuck_lock_holder_blocks_until_killed(storage: Path) -> None:
    # log_usage waits while another process holds the lock, for up to the
    # lock timeout, and the kernel releases a flock when its holder is killed.
    before = _seed_log(storage)
    log = storage / "svc.jsonl"
    logger = UsageLogger("svc", storage_dir=storage)

    with _lock_holder(storage / "svc.jsonl.lock") as holder:
        call = _Call(lambda: logger.log_usage("waited"))
        assert not call.finished_within(STUCK_AFTER)
        assert log.read_bytes() == before

        holder.send_signal(signal.SIGKILL)
        assert call.finished_within(FINISH_TIMEOUT)

    assert call.error is None
    assert call.result is not None
    assert _operations(log) == ["first", "second", "waited"]


@pytest.mark.parametrize("strict", [False, True])
def test_lock_held_past_timeout_gives_up(
    storage: Path, strict: bool, caplog: pytest.LogCaptureFixture
) -> None:
    before = _seed_log(storage)
    lock = storage / "svc.jsonl.lock"
    caplog.set_level(logging.WARNING, logger="leyline_usage")

    with _lock_holder(lock):
        logger = UsageLogger(
            "svc", storage_dir=storage, strict=strict, lock_timeout=0.5
        )
        call = _Call(lambda: logger.log_usage("timed out"))
        finished = call.finished_within(FINISH_TIMEOUT)

    assert finished
    if strict:
        assert isinstance(call.error, StorageError)
        assert call.error.path == lock
        assert str(lock) in str(call.error)
    else:
        assert call.error is None
        assert call.result is None
        assert logger.dropped_entries == 1
        assert any(str(lock) in record.getMessage() for record in caplog.records)
    assert (storage / "svc.jsonl").read_bytes() == before


# -- the storage directory deleted under a running logger --------------------


@pytest.mark.parametrize("strict", [False, True])
def test_deleted_storage_does_not_break_new_logger(storage: Path, strict: bool) -> None:
    UsageLogger("svc", storage_dir=storage).log_usage("before")
    shutil.rmtree(storage)

    # A logger created after the deletion starts from scratch.
    appender_for(storage / "svc.jsonl").close()
    entry = UsageLogger("svc", storage_dir=storage, strict=strict).log_usage("after")

    assert entry is not None
    assert _operations(storage / "svc.jsonl") == ["after"]


def test_deleted_storage_does_not_raise(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)
    logger.log_usage("before")
    shutil.rmtree(storage)

    for _ in range(3):
        logger.log_usage("after")


@pytest.mark.parametrize("strict", [False, True])
def test_deleted_storage_is_recreated_or_counted(storage: Path, strict: bool) -> None:
    logger = UsageLogger("svc", storage_dir=storage, strict=strict)
    logger.log_usage("before")
    shutil.rmtree(storage)

    try:
        entry = logger.log_usage("after")
    except StorageError as exc:
        assert strict
        assert exc.path.parent == storage
        entry = None

    if entry is None:
        assert logger.dropped_entries == 1
    else:
        assert _operations(storage / "svc.jsonl") == ["after"]
        assert logger.dropped_entries == 0


def test_recreated_lock_file_still_excludes(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)
    logger.log_usage("before")
    shutil.rmtree(storage)
    appender = appender_for(storage / "svc.jsonl")

    with appender.locked():
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                UsageLogger("svc", storage_dir=storage).log_usage("child")
            finally:
                os._exit(0)
        # While this process holds the lock, the child must not finish.
        deadline = time.monotonic() + STUCK_AFTER
        child_done = False
        while time.monotonic() < deadline and not child_done:
            child_done = os.waitpid(pid, os.WNOHANG)[0] == pid
            time.sleep(0.01)

    if not child_done:
        _wait_for_child(pid)
    assert not child_done, "a child logged while the parent held the lock"


def _wait_for_child(pid: int) -> None:
    """Reap child ``pid``, killing it if it runs past FINISH_TIMEOUT."""
    deadline = time.monotonic() + FINISH_TIMEOUT
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"child {pid} did not finish within {FINISH_TIMEOUT} s")


# -- damaged session state ---------------------------------------------------


GARBAGE_SESSIONS = [
    b"",
    b"\x00\xff\xfe not json",
    b"[]",
    b'{"session_id": 5, "last_activity": 1}',
    b'{"session_id": "", "last_activity": 1}',
    b'{"session_id": "s", "last_activity": "yesterday"}',
    b'{"session_id": "s"',
    b"{" * 100_000,
]


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("garbage", GARBAGE_SESSIONS, ids=range(len(GARBAGE_SESSIONS)))
def test_garbage_session_file_is_replaced(
    storage: Path, garbage: bytes, strict: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # A damaged session file loses no entry, so both modes repair it with a
    # warning instead of dropping the entry or raising. The log was active a
    # moment ago, so the logger continues the session of its last entry.
    before = _seed_log(storage)
    session_file = storage / "svc_session.json"
    old_session = json.loads(session_file.read_bytes())["session_id"]
    session_file.write_bytes(garbage)
    caplog.set_level(logging.WARNING, logger="leyline_usage")

    logger = UsageLogger("svc", storage_dir=storage, strict=strict)
    entry = logger.log_usage("after")

    assert entry is not None
    assert entry["session_id"] == old_session
    assert logger.dropped_entries == 0
    assert any(str(session_file) in record.getMessage() for record in caplog.records)
    state = json.loads(session_file.read_bytes())
    assert state["session_id"] == entry["session_id"]
    log = storage / "svc.jsonl"
    assert log.read_bytes().startswith(before)
    assert _operations(log) == ["first", "second", "after"]


def test_session_path_that_is_a_directory(storage: Path) -> None:
    before = _seed_log(storage)
    session_file = storage / "svc_session.json"
    session_file.unlink()
    session_file.mkdir()

    logger = UsageLogger("svc", storage_dir=storage)
    entry = logger.log_usage("after")
    other = _in_forked_child(_log_one, storage, "other")
    with pytest.raises(StorageError) as raised:
        UsageLogger("svc", storage_dir=storage, strict=True).log_usage("strict")

    # Without strict, loggers of every process continue the session of the
    # log's last entry.
    assert entry is not None
    assert entry["session_id"] == json.loads(before.splitlines()[-1])["session_id"]
    assert other == entry["session_id"]
    assert logger.dropped_entries == 0
    assert raised.value.path == session_file
    log = storage / "svc.jsonl"
    assert log.read_bytes().startswith(before)
    assert _operations(log) == ["first", "second", "after", "other"]


def _log_one(storage: Path, operation: str) -> str:
    entry = UsageLogger("svc", storage_dir=storage).log_usage(operation)
    assert entry is not None
    return str(entry["session_id"])


def test_running_logger_repairs_garbage_session(
    storage: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Refresh the state on every call instead of once a minute.
    monkeypatch.setattr(leyline_usage.session, "ACTIVITY_REFRESH_SECONDS", 0.0)
    logger = UsageLogger("svc", storage_dir=storage)
    first = logger.log_usage("first")
    assert first is not None
    session_file = storage / "svc_session.json"
    session_file.write_bytes(b"garbage")
    caplog.set_level(logging.WARNING, logger="leyline_usage")

    for _ in range(3):
        logger.log_usage("next")

    warnings = [r for r in caplog.records if str(session_file) in r.getMessage()]
    assert len(warnings) <= 1
    assert json.loads(session_file.read_bytes())["session_id"] == first["session_id"]


def test_loggers_agree_after_session_file_loss(
    storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leyline_usage.session, "ACTIVITY_REFRESH_SECONDS", 0.0)
    running = UsageLogger("svc", storage_dir=storage)
    running.log_usage("first")
    (storage / "svc_session.json").write_bytes(b"garbage")

    newcomer = UsageLogger("svc", storage_dir=storage)
    newcomer_entry = newcomer.log_usage("newcomer")
    running_entry = running.log_usage("running")

    assert newcomer_entry is not None
    assert running_entry is not None
    assert running_entry["session_id"] == newcomer_entry["session_id"]


# -- special files planted at the service paths ------------------------------


def _unblock_fifo_reader(fifo: Path, call: _Call) -> None:
    """Open ``fifo`` for writing until a reader blocked in open() returns."""
    deadline = time.monotonic() + FINISH_TIMEOUT
    while not call.finished_within(0.05) and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_fifo_at_session_path_does_not_block(storage: Path) -> None:
    storage.mkdir(mode=0o700)
    fifo = storage / "svc_session.json"
    os.mkfifo(fifo, 0o600)
    logger = UsageLogger("svc", storage_dir=storage)

    call = _Call(lambda: logger.log_usage("op"))
    finished = call.finished_within(STUCK_AFTER)
    _unblock_fifo_reader(fifo, call)

    assert finished
    assert call.error is None


def test_fifo_at_log_path_does_not_block_reader(storage: Path) -> None:
    storage.mkdir(mode=0o700)
    fifo = storage / "svc.jsonl"
    os.mkfifo(fifo, 0o600)

    call = _Call(lambda: list(iter_entries([fifo])))
    finished = call.finished_within(STUCK_AFTER)
    _unblock_fifo_reader(fifo, call)

    assert finished
    assert isinstance(call.error, StorageError)
    assert call.error.path == fifo


def test_fifo_at_log_path_drops_entry(storage: Path) -> None:
    storage.mkdir(mode=0o700)
    os.mkfifo(storage / "svc.jsonl", 0o600)
    logger = UsageLogger("svc", storage_dir=storage)

    call = _Call(lambda: logger.log_usage("op"))

    assert call.finished_within(FINISH_TIMEOUT)
    assert call.error is None
    assert call.result is None
    assert logger.dropped_entries == 1
