"""Rotation of a service log into compressed segments, and their retention.

Under the service lock, a writer that finds the log over its size or age
limit renames it to ``{service}.jsonl.{UTC time}-{random}`` and continues in
a new, empty log. Other writers notice the new file at their next write. The
renamed segment is compressed to ``.gz`` after the lock is released, so no
writer waits for the compression. Segment names sort in rotation order.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from leyline_usage.paths import FILE_MODE, open_for_reading

_log = logging.getLogger("leyline_usage")

_STAMP = "%Y%m%dT%H%M%S"
# The part of a segment name after "{service}.jsonl.", matched whole, so that
# the segments of service "a.jsonl" are never taken for those of service "a".
_SEGMENT_SUFFIX = re.compile(r"(\d{8}T\d{6})\d{6}Z-[0-9a-f]{8}(\.gz)?")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Return seconds for ``90d``, ``12h``, ``30m``, ``45s``, ``2w`` or a number."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"duration {text!r} is invalid: use a number with an optional unit "
            "s, m, h, d or w, e.g. 90d"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def list_segments(log: Path) -> list[Path]:
    """Return the rotated segments of ``log``, oldest first.

    While a segment is being compressed both its plain and ``.gz`` files
    exist; the plain one is complete, so only it is listed.
    """
    found: dict[str, Path] = {}
    prefix = log.name + "."
    try:
        names = os.listdir(log.parent)
    except FileNotFoundError:
        return []
    for name in names:
        if not name.startswith(prefix) or not _SEGMENT_SUFFIX.fullmatch(
            name[len(prefix) :]
        ):
            continue
        base = name.removesuffix(".gz")
        if base not in found or not name.endswith(".gz"):
            found[base] = log.parent / name
    return [found[base] for base in sorted(found)]


def segment_log(segment: Path) -> Path | None:
    """Return the log a segment was rotated from, or None if it is not a segment."""
    name, separator, suffix = segment.name.rpartition(".jsonl.")
    if separator and _SEGMENT_SUFFIX.fullmatch(suffix):
        return segment.with_name(name + ".jsonl")
    return None


def log_files(log: Path) -> list[Path]:
    """Return every file holding entries of ``log``'s service, oldest first."""
    return [*list_segments(log), log]


def rotated_at(segment: Path) -> float:
    """Return when ``segment`` was rotated out, as a Unix time."""
    match = _SEGMENT_SUFFIX.search(segment.name)
    if match is None or match.end() != len(segment.name):
        raise ValueError(f"{segment.name} is not a segment name")
    moment = datetime.strptime(match.group(1), _STAMP).replace(tzinfo=timezone.utc)
    return moment.timestamp()


def open_stream(path: Path, fd: int) -> IO[bytes]:
    """Wrap an open descriptor of a log or segment as a binary stream of its lines."""
    raw = os.fdopen(fd, "rb", buffering=1 << 20)
    if path.name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


@dataclass
class Rotation:
    """When to rotate: past ``max_bytes``, or ``max_age`` s after the first entry."""

    max_bytes: int | None = None
    max_age: float | None = None
    pending: list[Path] = field(default_factory=list)
    _first_written: dict[tuple[int, int], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_bytes is not None and (
            type(self.max_bytes) is not int or self.max_bytes < 1
        ):
            raise ValueError(
                f"rotate_bytes must be a positive integer, got {self.max_bytes!r}"
            )
        if self.max_age is not None and not 0 < self.max_age < float("inf"):
            raise ValueError(
                f"rotate_age must be a positive number of seconds, got {self.max_age!r}"
            )

    def due(self, log: Path, fd: int, size: int, incoming: int) -> bool:
        """Return True if a log of ``size`` bytes must rotate before ``incoming``."""
        if size == 0:
            return False
        if self.max_bytes is not None and size + incoming > self.max_bytes:
            return True
        if self.max_age is not None:
            return time.time() - self._first_entry_time(fd) >= self.max_age
        return False

    def _first_entry_time(self, fd: int) -> float:
        status = os.fstat(fd)
        identity = (status.st_dev, status.st_ino)
        known = self._first_written.get(identity)
        if known is None:
            known = _first_timestamp(fd) or status.st_mtime
            self._first_written = {identity: known}
        return known

    def rotate(self, log: Path, fd: int) -> Path:
        """Rename ``log`` to a new segment name; the caller holds the service lock.

        The file loses its write bit first: that is how writers holding it open
        learn, from one fstat, that it is retired.
        """
        now = datetime.now(timezone.utc)
        stamp = now.strftime(_STAMP) + f"{now.microsecond:06d}Z"
        segment = log.with_name(f"{log.name}.{stamp}-{os.urandom(4).hex()}")
        os.fchmod(fd, 0o400)
        os.rename(log, segment)
        self.pending.append(segment)
        _log.debug("rotated %s to %s", log, segment.name)
        return segment

    def compress_pending(self, log: Path, locked: Locker) -> None:
        """Compress rotated segments; runs after the lock is released.

        ``locked`` takes the service lock, held only to swap the plain segment
        for its compressed copy, so a query under the lock reads one or the other.
        """
        self.pending.clear()
        for segment in list_segments(log):
            if not segment.name.endswith(".gz"):
                compress_segment(segment, locked)


Locker = Callable[[], AbstractContextManager[None]]


def compress_segment(segment: Path, locked: Locker = contextlib.nullcontext) -> Path:
    """Write ``segment.gz`` and remove the plain segment, never leaving neither."""
    target = segment.with_name(segment.name + ".gz")
    temporary = segment.with_name(
        f".{segment.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    )
    fd = open_for_reading(segment)
    if fd is None:
        return target
    flags = (
        os.O_WRONLY
        | os.O_CREAT
        | os.O_EXCL
        | os.O_CLOEXEC
        | getattr(os, "O_NOFOLLOW", 0)
    )
    try:
        out = os.open(temporary, flags, FILE_MODE)
        with os.fdopen(fd, "rb") as source, os.fdopen(out, "wb") as sink:
            with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6) as packed:
                shutil.copyfileobj(source, packed, 1 << 20)
            sink.flush()
            os.fsync(sink.fileno())
        # The .gz appears whole (rename), and only then does the plain copy go,
        # so a crash at any point leaves a complete segment.
        with locked():
            os.replace(temporary, target)
            os.unlink(segment)
        with contextlib.suppress(OSError):
            os.unlink(segment.with_name(f".{segment.name}.index"))
    except FileNotFoundError:
        # Another writer compressed the segment first.
        pass
    except OSError as exc:
        _log.warning("could not compress segment %s: %s", segment, exc)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    return target


def segments_older_than(
    log: Path, older_than: float, now: Callable[[], float] = time.time
) -> list[Path]:
    """Return the segments of ``log`` rotated more than ``older_than`` seconds ago."""
    cutoff = now() - older_than
    return [s for s in list_segments(log) if rotated_at(s) < cutoff]


def remove_segments(segments: list[Path]) -> list[Path]:
    """Delete ``segments`` with their index files; return those deleted."""
    removed = []
    for segment in segments:
        plain = segment.name.removesuffix(".gz")
        for name in (plain, f"{plain}.gz", f".{plain}.index", f".{plain}.gz.index"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(segment.with_name(name))
        removed.append(segment)
    return removed


def _first_timestamp(fd: int) -> float | None:
    head = os.pread(fd, 4096, 0)
    match = re.search(rb'"timestamp"\s*:\s*"([^"]+)"', head)
    if match is None:
        return None
    try:
        text = match.group(1).decode().replace("Z", "+00:00")
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    # A timestamp without a zone (the original format) is UTC, as in queries.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
