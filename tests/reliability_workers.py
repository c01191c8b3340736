"""Process targets for the reliability tests, importable by spawn."""

from __future__ import annotations

import fcntl
import os
import random
import resource
import signal
import sys
from pathlib import Path
from typing import Any

from leyline_usage import StorageError, UsageLogger

# Entries a crash writer logs before it stops on its own, so a writer whose
# parent died does not run forever.
MAX_CRASH_ENTRIES = 20_000
# The crash writers' entry size mix: most are small, and a share is large
# enough to span many pages, so a SIGKILL can land inside the write() call.
LARGE_ENTRY_SHARE = 0.15
SMALL_PAD_BYTES = (0, 300)
LARGE_PAD_BYTES = (16 << 10, 256 << 10)
CRASH_MAX_ENTRY_BYTES = 2 << 20


def crash_writer(storage: str, service: str, slot: int, progress: Any) -> None:
    """Log numbered entries until killed, storing each completed number in progress.

    ``progress[slot]`` is the sequence number of the last ``log_usage`` call
    that returned. It lives in shared memory, so the parent can read it after a
    SIGKILL without any write of the writer being in flight.
    """
    logger = UsageLogger(
        service,
        storage_dir=Path(storage),
        strict=True,
        max_entry_bytes=CRASH_MAX_ENTRY_BYTES,
    )
    rng = random.Random(slot)
    padding = "x" * LARGE_PAD_BYTES[1]
    for seq in range(MAX_CRASH_ENTRIES):
        if rng.random() < LARGE_ENTRY_SHARE:
            size = rng.randint(*LARGE_PAD_BYTES)
        else:
            size = rng.randint(*SMALL_PAD_BYTES)
        logger.log_usage(
            "crash",
            tokens=seq,
            metadata={"slot": slot, "seq": seq, "pad": padding[:size]},
        )
        progress[slot] = seq


def finite_writer(storage: str, service: str, slot: int, count: int) -> None:
    """Log ``count`` small numbered entries and exit normally."""
    logger = UsageLogger(service, storage_dir=Path(storage), strict=True)
    for seq in range(count):
        logger.log_usage("after", tokens=seq, metadata={"slot": slot, "seq": seq})


def log_under_file_size_limit(
    storage: str, service: str, limit: int, strict: bool, pad: int
) -> dict[str, Any]:
    """Log one entry with RLIMIT_FSIZE set to ``limit`` bytes and report the outcome.

    SIGXFSZ is ignored, so a write past the limit fails with EFBIG instead of
    killing the process, as a full disk fails with ENOSPC.
    """
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    logger = UsageLogger(service, storage_dir=Path(storage), strict=strict)
    outcome: dict[str, Any] = {"returned": False, "error": None, "path": None}
    try:
        entry = logger.log_usage("full", tokens=1, metadata={"pad": "y" * pad})
    except StorageError as exc:
        outcome["error"] = str(exc)
        outcome["path"] = str(exc.path)
    else:
        outcome["returned"] = entry is not None
    outcome["dropped"] = logger.dropped_entries
    return outcome


def hold_lock(lock_path: str) -> None:
    """Take an exclusive flock on ``lock_path``, print "locked", then sleep.

    Run as ``python reliability_workers.py hold-lock PATH``. The process holds
    the lock until it is killed or its stdin closes.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    sys.stdout.write("locked\n")
    sys.stdout.flush()
    sys.stdin.read()


def fill_and_log(storage: str, service: str, strict: bool) -> dict[str, Any]:
    """Fill the filesystem of ``storage``, then log one entry and report the outcome.

    Meant to run inside a private mount namespace on a small tmpfs: the log is
    written first, a filler file then takes every free block, and the next
    append fails with ENOSPC.
    """
    directory = Path(storage)
    logger = UsageLogger(service, storage_dir=directory, strict=strict)
    logger.log_usage("before", tokens=1)
    before = (directory / f"{service}.jsonl").read_bytes()
    filler = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    block = b"f" * 4096
    try:
        while True:
            os.write(filler, block)
    except OSError:
        pass
    try:
        while True:
            os.write(filler, b"f")
    except OSError:
        pass
    os.close(filler)

    outcome: dict[str, Any] = {"returned": False, "error": None, "path": None}
    try:
        entry = logger.log_usage("full", tokens=2, metadata={"pad": "z" * 9000})
    except StorageError as exc:
        outcome["error"] = str(exc)
        outcome["path"] = str(exc.path)
    else:
        outcome["returned"] = entry is not None
    outcome["dropped"] = logger.dropped_entries
    after = (directory / f"{service}.jsonl").read_bytes()
    outcome["kept_prefix"] = after.startswith(before)
    outcome["grew_by"] = len(after) - len(before)
    os.unlink(directory / "filler")
    outcome["recovered"] = logger.log_usage("recovered", tokens=3) is not None
    return outcome


def _main() -> None:
    command, *args = sys.argv[1:]
    if command == "hold-lock":
        hold_lock(args[0])
    elif command == "fill-and-log":
        import json

        storage, service, strict = args
        print(json.dumps(fill_and_log(storage, service, strict == "strict")))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    _main()
