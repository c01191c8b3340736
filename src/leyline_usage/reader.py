"""Streaming reads of service logs that skip and count lines they cannot use."""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from leyline_usage.entry import Entry
from leyline_usage.paths import open_for_reading, validate_service_name
from leyline_usage.segments import log_files, open_stream, segment_log

_log = logging.getLogger("leyline_usage")


@dataclass
class ReadStats:
    """Counts of what a read went through."""

    lines: int = 0
    skipped_lines: int = 0


def iter_entries(
    paths: Iterable[Path], stats: ReadStats | None = None, start: int = 0
) -> Iterator[Entry]:
    """Yield the entries of each log in ``paths``, in file order.

    Blank lines, lines that are not a JSON object, and objects without a string
    ``timestamp`` are skipped and counted in ``stats``; a missing file reads as
    empty. Memory use does not grow with the file. ``start`` is a byte offset,
    at a line boundary, where reading of each file begins.
    """
    if stats is None:
        stats = ReadStats()
    for path in paths:
        yield from _iter_file(path, stats, start)


def _iter_file(path: Path, stats: ReadStats, start: int) -> Iterator[Entry]:
    fd = open_for_reading(path)
    if fd is None:
        return
    loads = orjson.loads
    with open_stream(path, fd) as file:
        try:
            if start:
                file.seek(start)
            for line in file:
                stats.lines += 1
                try:
                    entry = loads(line)
                except orjson.JSONDecodeError:
                    stats.skipped_lines += 1
                    continue
                if type(entry) is not dict or type(entry.get("timestamp")) is not str:
                    stats.skipped_lines += 1
                    continue
                yield entry
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            # A damaged segment: what came before the damage was read.
            stats.skipped_lines += 1
            _log.warning(
                "segment %s is damaged after %d lines: %s", path, stats.lines, exc
            )


def service_logs(directory: Path, services: Iterable[str] | None = None) -> list[Path]:
    """Return the files of ``services`` in ``directory``, or of every service there.

    Each service's rotated segments come first, oldest first, then its log.
    """
    if services is not None:
        # A service named twice is read once.
        names = dict.fromkeys(validate_service_name(s) for s in services)
        logs = [directory / f"{name}.jsonl" for name in names]
    elif directory.is_dir():
        logs = sorted(
            p for p in directory.glob("*.jsonl") if not p.name.startswith(".")
        )
        # A service whose current log is missing may still have segments.
        for segment in directory.glob("*.jsonl.*Z-*"):
            log = segment_log(segment)
            if log is not None and log not in logs and not log.name.startswith("."):
                logs.append(log)
        logs.sort()
    else:
        return []
    return [path for log in logs for path in log_files(log)]
