"""An opt-in hash chain over a service's entries, and its verification.

With ``chain=True`` every entry carries, under the key ``chain``, the hash of
the entry line before it: the SHA-256 of that line's bytes (without the
newline), as 32 hex digits. Lines that do not parse as JSON objects (torn
fragments left by a crash) are passed over by both writer and verifier. The
first entry of a file chains to the last entry of the previous segment, and
the very first file to an anchor derived from the service name, so the chain
runs unbroken across rotation.

A changed, deleted, inserted or reordered line breaks the chain at the next
entry. What a chain cannot show: the removal of the newest entries (nothing
follows them), or a rewrite of the whole chain by someone able to write the
files, since no secret is involved.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from leyline_usage.paths import open_for_reading
from leyline_usage.segments import (
    list_segments,
    log_files,
    open_stream,
    remove_segments,
    segments_older_than,
)

CHAIN_KEY = "chain"
_DIGITS = 32
_NO_CHAIN = (
    "entry has no chain after chained entries: it was inserted by a writer "
    "without chain=True, or altered"
)
_MISMATCH = (
    "chain does not match the entry before it: that entry was altered, or "
    "entries were deleted, inserted or reordered here"
)


def line_hash(line: bytes) -> str:
    """Return the chain hash of one log line."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()[:_DIGITS]


def genesis(log: Path) -> str:
    """Return the anchor of the first file of ``log``'s service."""
    service = log.name.removesuffix(".jsonl")
    return hashlib.sha256(f"leyline-usage chain: {service}".encode()).hexdigest()[
        :_DIGITS
    ]


def anchor_for_new_file(log: Path) -> str:
    """Return what the first entry of an empty log chains to."""
    segments = list_segments(log)
    if not segments:
        return genesis(log)
    last = None
    for line, entry in _entry_lines(segments[-1]):
        if entry is not None:
            last = line
    return genesis(log) if last is None else line_hash(last)


@dataclass
class ChainReport:
    """The outcome of verifying one service's chain."""

    files: int = 0
    lines: int = 0
    chained: int = 0
    unchained: int = 0
    unreadable: int = 0
    problem: str | None = None
    file: str | None = None
    line: int | None = None

    @property
    def ok(self) -> bool:
        """True if no line breaks the chain."""
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        """Return the report as plain values."""
        return {
            "ok": self.ok,
            "files": self.files,
            "lines": self.lines,
            "chained": self.chained,
            "unchained": self.unchained,
            "unreadable": self.unreadable,
            "problem": self.problem,
            "file": self.file,
            "line": self.line,
        }


def verify_chain(log: Path) -> ChainReport:
    """Check every entry of ``log``'s service against the line before it.

    Stops at the first entry whose ``chain`` does not match, or at an entry
    without ``chain`` after chained ones (an entry inserted by a writer that
    does not chain). Entries before the first chained one are counted as
    unchained and accepted.
    """
    report = ChainReport()
    expected = read_anchor(log) or genesis(log)
    chain_started = False
    for path in log_files(log):
        if not path.exists():
            continue
        report.files += 1
        for number, (line, entry) in enumerate(_entry_lines(path), start=1):
            report.lines += 1
            if entry is None:
                report.unreadable += 1
                continue
            value = entry.get(CHAIN_KEY)
            if value is None:
                if chain_started:
                    return _fail(report, path, number, _NO_CHAIN)
                report.unchained += 1
            elif value != expected:
                return _fail(report, path, number, _MISMATCH)
            else:
                chain_started = True
                report.chained += 1
            expected = line_hash(line)
    return report


def anchor_path(log: Path) -> Path:
    """Return the file that keeps the chain's anchor after old segments are pruned."""
    return log.with_name(log.name + ".anchor")


def read_anchor(log: Path) -> str | None:
    """Return what the oldest remaining entry chains to, if segments were pruned."""
    fd = open_for_reading(anchor_path(log))
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as file:
        try:
            anchor = orjson.loads(file.read()).get("anchor")
        except (orjson.JSONDecodeError, AttributeError):
            return None
    return anchor if isinstance(anchor, str) else None


def prune_keeping_anchor(log: Path, older_than: float) -> list[Path]:
    """Delete old segments, first saving the hash the next entry chains to.

    Without it, the first entry left would not match the service's anchor
    and verify would report the pruned segments as tampering.
    """
    old = segments_older_than(log, older_than)
    if not old:
        return []
    last = None
    for line, entry in _entry_lines(old[-1]):
        if entry is not None:
            last = line
    if last is not None:
        state = {"after_segment": old[-1].name, "anchor": line_hash(last)}
        _write_private(anchor_path(log), orjson.dumps(state))
    return remove_segments(old)


def _write_private(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600
    )
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def _fail(report: ChainReport, path: Path, number: int, reason: str) -> ChainReport:
    report.file = str(path)
    report.line = number
    report.problem = f"{path.name} line {number}: {reason}"
    return report


def _entry_lines(path: Path) -> Iterator[tuple[bytes, dict[str, Any] | None]]:
    """Yield each complete line and its entry, or None if it is not a JSON object."""
    fd = open_for_reading(path)
    if fd is None:
        return
    with open_stream(path, fd) as file:
        for line in file:
            if not line.endswith(b"\n"):
                return
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield line, None
                continue
            yield line, entry if type(entry) is dict else None
