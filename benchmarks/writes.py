"""Child tasks that time writing entries: ``log_usage``, batches and the references.

``single`` times every contender in one process, alternating between them
round by round so that a burst of load on the machine hits all of them alike.
``writer`` is one of several processes logging to one service at once. The
parent starts them, waits for each to print ``ready`` and then sends ``go``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from common import child_main
from references import (
    AppendFloor,
    HandlerLogger,
    NaiveLogger,
    concurrent_handler_logger,
    file_handler_logger,
)

from leyline_usage import UsageLogger

SERVICE = "bench"
OPERATION = "summarize"
MODEL = "claude-sonnet-4-5"


def log_call(log_usage: Callable[..., object], number: int) -> None:
    """Make the benchmark's call: a model, four token counts and small metadata."""
    log_usage(
        OPERATION,
        model=MODEL,
        input_tokens=1200 + number % 64,
        output_tokens=300,
        cache_read_tokens=5000,
        cache_write_tokens=800,
        duration=2.4,
        metadata={"files": 3, "tool": "review"},
    )


class Contender:
    """Something that writes one usage entry per call."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def call(self, number: int) -> None:
        """Write entry ``number``."""
        raise NotImplementedError

    def writing(self) -> AbstractContextManager[object]:
        """Return the context that wraps a run of calls (a batch, or nothing)."""
        return nullcontext()

    def run(self, count: int) -> None:
        """Write ``count`` entries as fast as the contender can."""
        call = self.call
        with self.writing():
            for number in range(count):
                call(number)

    def log_path(self) -> Path:
        """Return the file the entries go to."""
        return self.directory / f"{SERVICE}.jsonl"

    def close(self) -> None:
        """Release files and locks."""


class LogUsage(Contender):
    """``UsageLogger.log_usage`` with the built-in plugins on."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.logger = UsageLogger(SERVICE, storage_dir=directory)

    def call(self, number: int) -> None:
        log_call(self.logger.log_usage, number)


class LogUsageBatch(LogUsage):
    """``log_usage`` calls inside one ``with logger.batch():`` block."""

    def writing(self) -> AbstractContextManager[object]:
        return self.logger.batch()  # type: ignore[attr-defined, unused-ignore]


class Reference(Contender):
    """A reference logger from :mod:`references`, called like ``log_usage``."""

    def __init__(self, directory: Path, logger: NaiveLogger | HandlerLogger) -> None:
        super().__init__(directory)
        self.logger = logger

    def call(self, number: int) -> None:
        log_call(self.logger.log_usage, number)

    def close(self) -> None:
        self.logger.close()


class Naive(Reference):
    """The original leyline design: files opened per entry, no lock."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, NaiveLogger(SERVICE, directory))


class FileHandlerJson(Reference):
    """``logging.FileHandler`` with a JSON formatter."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, file_handler_logger(SERVICE, directory))


class ConcurrentHandlerJson(Reference):
    """concurrent-log-handler's ``ConcurrentRotatingFileHandler``, no rotation."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, concurrent_handler_logger(SERVICE, directory))


class Floor(Contender):
    """One ``os.write`` of a line as long as a ``log_usage`` entry."""

    locked = False

    def __init__(self, directory: Path, line: bytes) -> None:
        super().__init__(directory)
        self.floor = AppendFloor(self.log_path(), line, self.locked)

    def call(self, number: int) -> None:
        self.floor.write()

    def run(self, count: int) -> None:
        # A loop without the per-call method, so that the floor stays a floor.
        write = self.floor.write
        for _ in range(count):
            write()

    def close(self) -> None:
        self.floor.close()


class LockedFloor(Floor):
    """One ``os.write`` under ``flock``, both descriptors kept open."""

    locked = True


CONTENDERS: dict[str, type[Contender]] = {
    "log_usage": LogUsage,
    "batch": LogUsageBatch,
    "naive": Naive,
    "file_handler": FileHandlerJson,
    "concurrent_handler": ConcurrentHandlerJson,
    "write": Floor,
    "flock_write": LockedFloor,
}


def sample_line(directory: Path) -> bytes:
    """Return a line exactly as ``log_usage`` writes it for the benchmark's call."""
    contender = LogUsage(directory)
    contender.call(0)
    return contender.log_path().read_bytes().splitlines(keepends=True)[-1]


def open_contender(name: str, directory: Path, line: bytes) -> Contender:
    """Create the contender ``name`` writing into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    kind = CONTENDERS[name]
    if issubclass(kind, Floor):
        return kind(directory, line)
    return kind(directory)


def count_lines(path: Path) -> int:
    """Return the number of newline-terminated lines in ``path``."""
    count = 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def single_task(params: dict[str, Any]) -> dict[str, Any]:
    """Time each contender in this process; return microseconds per entry per round.

    ``entries`` maps each contender to the number of entries it writes per round.
    """
    root = Path(params["directory"])
    entries: dict[str, int] = params["entries"]
    warmup = int(params["warmup"])
    line = sample_line(root / "sample")
    contenders = {
        name: open_contender(name, root / name, line) for name in params["contenders"]
    }
    for contender in contenders.values():
        contender.run(warmup)

    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(int(params["rounds"])):
        for name, contender in contenders.items():
            started = time.perf_counter()
            contender.run(entries[name])
            elapsed = time.perf_counter() - started
            samples[name].append(elapsed / entries[name] * 1e6)

    # NOTE: like the multi-process check, this counts only the live log, which
    # contains every entry while rotation is off (the default without a config).
    lost: dict[str, str] = {}
    for name, contender in contenders.items():
        contender.close()
        written = count_lines(contender.log_path())
        expected = warmup + entries[name] * int(params["rounds"])
        if written != expected:
            lost[name] = f"{written} lines instead of {expected}"
    return {"us_per_entry": samples, "lost": lost, "line_bytes": len(line)}


def writer_task(params: dict[str, Any]) -> dict[str, Any]:
    """Log entries with per-call timing once the parent sends ``go``."""
    directory = Path(params["directory"])
    entries = int(params["entries"])
    contender = open_contender(params["contender"], directory, params["line"].encode())
    contender.run(int(params["warmup"]))
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("writer: expected 'go' on stdin")

    latencies = [0] * entries
    call = contender.call
    clock = time.monotonic_ns
    # CLOCK_MONOTONIC is one clock for every process, so the parent can compare
    # the start and end times of all writers.
    started = clock()
    with contender.writing():
        for number in range(entries):
            before = clock()
            call(number)
            latencies[number] = clock() - before
    ended = clock()
    contender.close()

    return {
        "started_ns": started,
        "ended_ns": ended,
        "entries": entries,
        "latencies_ns": latencies,
    }


def probe_task(params: dict[str, Any]) -> dict[str, Any]:
    """Return whether UsageLogger has ``batch``, and the line of the call."""
    line = sample_line(Path(params["directory"]))
    return {"batch": hasattr(UsageLogger, "batch"), "line": line.decode()}


if __name__ == "__main__":
    child_main({"single": single_task, "writer": writer_task, "probe": probe_task})
