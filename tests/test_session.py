"""Sessions: reuse, timeout, explicit ids and agreement across processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest
import workers

import leyline_usage.session
from leyline_usage import UsageLogger
from leyline_usage.errors import StorageError
from leyline_usage.session import SessionTracker


def write_state(
    storage: Path, service: str, session_id: str, last_activity: float
) -> None:
    storage.mkdir(mode=0o700, parents=True, exist_ok=True)
    state = {
        "session_id": session_id,
        "created_at": last_activity,
        "last_activity": last_activity,
    }
    (storage / f"{service}_session.json").write_text(json.dumps(state))


def age_log(storage: Path, service: str, seconds: float) -> None:
    """Make the log look untouched for ``seconds``."""
    log = storage / f"{service}.jsonl"
    log.touch()
    then = time.time() - seconds
    os.utime(log, (then, then))


def test_entries_share_a_session(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    first = logger.log_usage("a")
    second = logger.log_usage("b")

    assert first is not None and second is not None
    assert first["session_id"] == second["session_id"]
    assert first["session_id"].startswith("session_")
    assert logger.session_id == first["session_id"]


def test_second_logger_continues_active_session(storage: Path) -> None:
    first = UsageLogger("svc", storage_dir=storage).session_id

    assert UsageLogger("svc", storage_dir=storage).session_id == first


def test_original_session_file_is_continued(storage: Path) -> None:
    write_state(storage, "svc", "session_1733400175", time.time() - 60)

    entry = UsageLogger("svc", storage_dir=storage).log_usage("op")

    assert entry is not None
    assert entry["session_id"] == "session_1733400175"


def test_expired_session_is_replaced(storage: Path) -> None:
    write_state(storage, "svc", "session_old", time.time() - 7200)
    age_log(storage, "svc", 7200)

    entry = UsageLogger("svc", storage_dir=storage).log_usage("op")

    assert entry is not None
    assert entry["session_id"] != "session_old"
    state = json.loads((storage / "svc_session.json").read_text())
    assert state["session_id"] == entry["session_id"]
    assert state["created_at"] == pytest.approx(time.time(), abs=60)


def test_recent_log_append_keeps_session_alive(storage: Path) -> None:
    # The state file shows two hours idle, but another process appended a
    # minute ago: that append is activity, so the session continues.
    write_state(storage, "svc", "session_busy", time.time() - 7200)
    age_log(storage, "svc", 60)

    assert UsageLogger("svc", storage_dir=storage).session_id == "session_busy"


def test_custom_timeout(storage: Path) -> None:
    write_state(storage, "svc", "session_short", time.time() - 120)
    age_log(storage, "svc", 120)

    assert (
        UsageLogger("svc", storage_dir=storage, session_timeout=60).session_id
        != "session_short"
    )
    assert (
        UsageLogger("other", storage_dir=storage, session_timeout=600).session_id
        != "session_short"
    )


def test_idle_process_starts_new_session(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage, session_timeout=1)
    first = logger.log_usage("a")
    age_log(storage, "svc", 5)
    state_path = storage / "svc_session.json"
    state = json.loads(state_path.read_text())
    state["last_activity"] -= 5
    state_path.write_text(json.dumps(state))
    time.sleep(1.1)

    second = logger.log_usage("b")

    assert first is not None and second is not None
    assert first["session_id"] != second["session_id"]


def test_explicit_session_id_shared_across_services(storage: Path) -> None:
    a = UsageLogger("alpha", storage_dir=storage, session_id="shared-run-1")
    b = UsageLogger("beta", storage_dir=storage, session_id="shared-run-1")

    a.log_usage("x")
    b.log_usage("y")

    assert [e["session_id"] for e in a.get_session_operations()] == ["shared-run-1"]
    assert [e["session_id"] for e in b.get_session_operations()] == ["shared-run-1"]


def test_session_id_environment_variable(
    storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEYLINE_SESSION_ID", "from-env")

    entry = UsageLogger("svc", storage_dir=storage).log_usage("op")

    assert entry is not None
    assert entry["session_id"] == "from-env"


@pytest.mark.parametrize("session_id", ["", "a\nb", "x" * 257])
def test_invalid_explicit_session_raises(storage: Path, session_id: str) -> None:
    with pytest.raises(ValueError, match="session id"):
        UsageLogger("svc", storage_dir=storage, session_id=session_id or "\x00")


def test_garbage_session_file_starts_new_session(storage: Path) -> None:
    storage.mkdir(mode=0o700)
    (storage / "svc_session.json").write_bytes(b"\x00garbage{")

    entry = UsageLogger("svc", storage_dir=storage).log_usage("op")

    assert entry is not None
    state = json.loads((storage / "svc_session.json").read_text())
    assert state["session_id"] == entry["session_id"]


def test_processes_started_after_expiry_share_new_session(storage: Path) -> None:
    write_state(storage, "svc", "session_expired", time.time() - 7200)
    age_log(storage, "svc", 7200)
    context = multiprocessing.get_context("spawn")
    count = 6
    barrier = context.Barrier(count)
    results = context.Queue()
    processes = [
        context.Process(
            target=workers.log_after_barrier,
            args=(str(storage), "svc", barrier, results),
        )
        for _ in range(count)
    ]

    for process in processes:
        process.start()
    sessions = {results.get(timeout=120) for _ in range(count)}
    for process in processes:
        process.join(timeout=60)

    assert [p.exitcode for p in processes] == [0] * count
    assert len(sessions) == 1
    assert sessions != {"session_expired"}


def test_held_write_at_timeout_edge_keeps_session(storage: Path) -> None:
    # Process A chooses the session of an entry just before the timeout and
    # is held before writing it, while this process logs just after the
    # timeout. No two entries are a timeout apart, so all share one session.
    timeout = 1.0
    context = multiprocessing.get_context("spawn")
    append_held, release = context.Event(), context.Event()
    writer = context.Process(
        target=workers.log_across_timeout_edge,
        args=(str(storage), "svc", timeout, append_held, release),
    )
    writer.start()
    try:
        assert append_held.wait(60)
        time.sleep(timeout * 0.2)
        logger = UsageLogger("svc", storage_dir=storage, session_timeout=timeout)
        logger.log_usage("b1", tokens=1)
    finally:
        release.set()
        writer.join(timeout=60)

    assert writer.exitcode == 0
    entries = sorted(logger.iter_entries(), key=lambda e: e["timestamp"])
    sessions = {e["operation"]: e["session_id"] for e in entries}
    assert [e["operation"] for e in entries] == ["a1", "a2", "b1", "a3"]
    assert sessions["a2"] == sessions["a1"]
    assert sessions["b1"] == sessions["a1"]
    assert sessions["a3"] == sessions["a1"]


@pytest.mark.parametrize("strict", [False, True])
def test_unsaved_activity_still_joins_session(
    storage: Path, monkeypatch: pytest.MonkeyPatch, strict: bool
) -> None:
    # File modes do not stop root, so the save is made to fail by replacing
    # it, as on a storage directory that accepts appends but no new files.
    write_state(storage, "svc", "session_shared", time.time() - 10)

    def failing_write(self: SessionTracker, state: dict[str, Any]) -> None:
        raise StorageError(self.state_path, "cannot save session: read-only")

    monkeypatch.setattr(SessionTracker, "_write_state", failing_write)
    # Refresh the state on every call instead of once a minute.
    monkeypatch.setattr(leyline_usage.session, "ACTIVITY_REFRESH_SECONDS", 0.0)
    logger = UsageLogger("svc", storage_dir=storage, strict=strict)

    entries = [logger.log_usage("op", tokens=n) for n in range(3)]

    assert [e and e["session_id"] for e in entries] == ["session_shared"] * 3


def test_coarse_log_mtime_keeps_session(storage: Path) -> None:
    # The kernel can stamp the log's mtime a tick before the append. Here it
    # is set 9 ms back, and this process logs 6 ms before the timeout.
    timeout = 0.2
    context = multiprocessing.get_context("spawn")
    checked = 0
    for trial in range(3):
        service = f"svc{trial}"
        results = context.Queue()
        writer = context.Process(
            target=workers.log_two_entries,
            args=(str(storage), service, timeout, results),
        )
        writer.start()
        last_time, last_session = results.get(timeout=60)
        writer.join(timeout=60)
        log = storage / f"{service}.jsonl"
        os.utime(log, (last_time - 0.009, last_time - 0.009))
        time.sleep(max(0.0, last_time + timeout - 0.006 - time.time()))
        logger = UsageLogger(service, storage_dir=storage, session_timeout=timeout)
        entry = logger.log_usage("b1", tokens=1)

        assert entry is not None
        if workers.entry_time(entry) - last_time < timeout:
            checked += 1
            assert entry["session_id"] == last_session
    assert checked > 0


def test_session_ids_unique_within_one_second(storage: Path, tmp_path: Path) -> None:
    ids = {UsageLogger(f"svc{i}", storage_dir=storage).session_id for i in range(50)}

    assert len(ids) == 50
