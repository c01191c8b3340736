"""Incremental aggregates of a log, kept in a sidecar file beside it.

A summary over months of entries should not parse months of entries each time.
The index stores totals per hour of entry time, per session, and the offsets
of failed entries, together with how far into the log they reach. The next
query parses only the bytes appended since then.

Each process also keeps the latest index of its recently queried logs in
memory, and writes the file again only once it lags 1 MiB behind: a query
after a few appends then neither reads nor writes it.

The index file ``.{log name}.index`` is a cache: it is rebuilt from the log
whenever it is missing, unreadable, written by another version, made with
other prices, or no longer matches the log (a different inode, a log shorter
than the indexed offset, different first bytes, or different bytes just before
that offset, as after a truncation or a replacement). It never changes the
log.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import sys
import threading
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import orjson

from leyline_usage.columns import ChunkTotals, lines_totals
from leyline_usage.entry import Entry
from leyline_usage.paths import FILE_MODE, open_for_reading
from leyline_usage.query import Pricer, Totals
from leyline_usage.segments import open_stream

_log = logging.getLogger("leyline_usage")

INDEX_VERSION = 2
_CHUNK = 1 << 20
_LINES_PER_BATCH = 10_000
# Unindexed bytes from which a build splits the work with a forked helper.
PARALLEL_BYTES = 32 << 20
# The index file is written again once it lags this far behind the index
# this process keeps in memory.
SAVE_BYTES = 1 << 20
# Offsets of failed entries an index keeps, so that its size stays bounded
# however long the log. Older failures are read from the log when requested.
MAX_ERRORS = 10_000
# Logs whose latest index each process keeps in memory.
_RECENT_LOGS = 8
_recent: OrderedDict[Path, LogIndex] = OrderedDict()
_recent_lock = threading.Lock()
# Bytes before the indexed offset that must still match for the index to apply.
_CHECK_BYTES = 256
# The start of the log must match too: a log rewritten from its first line, or
# a new file that got the old one's inode number, changes it.
_HEAD_BYTES = 4096
# Hour buckets are keyed by the first 13 characters of the timestamp.
_HOUR = 13


@dataclass
class Bucket:
    """The totals of one hour and the byte range its entries lie in."""

    totals: Totals = field(default_factory=Totals)
    start: int = -1
    end: int = 0


@dataclass
class SessionTotals:
    """The totals of one session and the services it was seen in."""

    totals: Totals = field(default_factory=Totals)
    services: set[str] = field(default_factory=set)


@dataclass
class LogIndex:
    """Aggregates of one log file up to ``offset``."""

    identity: tuple[int, int] = (0, 0)
    offset: int = 0
    check: str = ""
    fingerprint: str = ""
    lines: int = 0
    skipped_lines: int = 0
    hours: dict[str, Bucket] = field(default_factory=dict)
    sessions: dict[str, SessionTotals] = field(default_factory=dict)
    # The latest MAX_ERRORS of them; older ones are only counted.
    errors: list[int] = field(default_factory=list)
    errors_dropped: int = 0
    # A last line without its newline: parsed for each query, never saved,
    # because its writer may still be completing it.
    tail: list[Entry] = field(default_factory=list)
    tail_skipped: int = 0
    # Where the index file on disk reaches, or None if there is none.
    saved_offset: int | None = None

    def all_skipped(self) -> int:
        """Return the count of unreadable lines, the unfinished last line included."""
        return self.skipped_lines + self.tail_skipped


def index_path(log: Path) -> Path:
    """Return where the index of ``log`` is kept."""
    return log.with_name(f".{log.name}.index")


def load_index(log: Path, pricer: Pricer) -> LogIndex:
    """Return the index of ``log``, brought up to date with its current end.

    A missing log gives an empty index. The updated index is saved when the
    directory allows it; a failure to save only costs the next query time.
    """
    fingerprint = pricer.fingerprint()
    fd = open_for_reading(log)
    if fd is None:
        return LogIndex(fingerprint=fingerprint)
    with open_stream(log, fd) as file:
        status = os.fstat(fd)
        identity = (status.st_dev, status.st_ino)
        recalled = _recall(log)
        if _still_valid(recalled, log, fd, status, fingerprint):
            assert recalled is not None
            index = recalled
        else:
            saved = _read_saved(index_path(log))
            if _still_valid(saved, log, fd, status, fingerprint):
                assert saved is not None
                index = saved
                index.saved_offset = index.offset
            else:
                index = LogIndex(identity=identity, fingerprint=fingerprint)
        before = index.offset
        if _is_compressed(log):
            pending = _extend_compressed(index, file, pricer, log)
        else:
            pending = _extend(index, file, status.st_size, pricer)
        index.check = _check_value(log, fd, index.offset, status)
    _parse_tail(index, pending)
    lag = index.offset - (index.saved_offset or 0)
    due = index.saved_offset is None or lag >= SAVE_BYTES
    if index.offset != before and due and _save(index_path(log), index):
        index.saved_offset = index.offset
    _remember(log, index)
    return index


def _recall(log: Path) -> LogIndex | None:
    """Return a copy of this process's latest index of ``log``, if it has one.

    The copy shares buckets and session totals with the original. Folding
    replaces the ones it changes rather than changing them, so a query still
    reading the original in another thread reads unchanged totals.
    """
    with _recent_lock:
        index = _recent.get(log)
        if index is not None:
            _recent.move_to_end(log)
    if index is None:
        return None
    return replace(
        index,
        hours=dict(index.hours),
        sessions=dict(index.sessions),
        errors=list(index.errors),
        tail=[],
        tail_skipped=0,
    )


def forget_recent() -> None:
    """Drop the indexes this process keeps in memory; the next query reads files."""
    with _recent_lock:
        _recent.clear()


def _remember(log: Path, index: LogIndex) -> None:
    with _recent_lock:
        _recent[log] = index
        _recent.move_to_end(log)
        while len(_recent) > _RECENT_LOGS:
            _recent.popitem(last=False)


def _still_valid(
    index: LogIndex | None,
    log: Path,
    fd: int,
    status: os.stat_result,
    fingerprint: str,
) -> bool:
    if index is None:
        return False
    if index.identity != (status.st_dev, status.st_ino):
        return False
    if index.fingerprint != fingerprint:
        return False
    if not _is_compressed(log) and index.offset > status.st_size:
        return False
    return index.check == _check_value(log, fd, index.offset, status)


def _check_value(log: Path, fd: int, offset: int, status: os.stat_result) -> str:
    """Return what must not change for the index to stay valid."""
    if _is_compressed(log):
        # Compressed segments are written once and never appended to.
        return f"gz:{status.st_size}:{status.st_mtime_ns}"
    start = max(offset - _CHECK_BYTES, 0)
    digest = hashlib.sha256(os.pread(fd, min(offset, _HEAD_BYTES), 0))
    digest.update(os.pread(fd, offset - start, start))
    return digest.hexdigest()


def _is_compressed(log: Path) -> bool:
    return log.name.endswith(".gz")


def _parse_tail(index: LogIndex, pending: bytes) -> None:
    if not pending.strip():
        index.tail_skipped = 1 if pending else 0
        return
    try:
        entry = orjson.loads(pending)
    except orjson.JSONDecodeError:
        index.tail_skipped = 1
        return
    if type(entry) is dict and type(entry.get("timestamp")) is str:
        index.tail = [entry]
    else:
        index.tail_skipped = 1


def _extend(index: LogIndex, file: Any, size: int, pricer: Pricer) -> bytes:
    """Parse the complete lines after ``index.offset`` into the index.

    ``size`` is the log's size when the query opened it; lines appended since
    are read too. Return the bytes after the last newline, which are not
    indexed.
    """
    if size - index.offset >= PARALLEL_BYTES and _may_fork():
        _extend_in_two(index, file.fileno(), size, pricer)
    file.seek(index.offset)
    return _read_lines(index, file.read, pricer)


def _read_lines(index: LogIndex, read: Callable[[int], bytes], pricer: Pricer) -> bytes:
    """Index the complete lines that ``read`` returns, starting at ``index.offset``.

    Return the bytes after the last newline, which are not indexed.
    """
    pending = b""
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            break
        # Split the chunk as read and join only the line cut by the last
        # chunk: a chunk is not copied before it is split.
        # Split on "\n" only, as the reader does: a stray "\r" is part of a line.
        lines = chunk.split(b"\n")
        ascii_only = chunk.isascii() and pending.isascii()
        if pending:
            lines[0] = pending + lines[0]
        pending = lines.pop()
        if lines:
            _add_split(index, lines, index.offset, pricer, ascii_only)
            index.offset += sum(map(len, lines)) + len(lines)
    return pending


def _may_fork() -> bool:
    # A fork copies only the calling thread: with other threads running, one
    # of them could hold a lock the helper then waits on forever.
    return (
        sys.platform.startswith("linux")
        and threading.active_count() == 1
        and len(os.sched_getaffinity(0)) > 1
    )


def _extend_in_two(index: LogIndex, fd: int, size: int, pricer: Pricer) -> None:
    """Index up to ``size`` with a forked helper taking the second half.

    A cold build parses every line, so on a machine with a second core a
    helper process indexes the second half meanwhile. If the helper fails,
    the caller's sequential read takes over from where this stopped.
    """
    middle = _next_line_start(fd, index.offset + (size - index.offset) // 2, size)
    if middle is None:
        return
    reader, writer = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(reader)
        os.close(writer)
        return
    if pid == 0:  # pragma: no cover - the helper's coverage is not collected
        os.close(reader)
        _index_for_parent(writer, fd, middle, size, pricer)
    os.close(writer)
    with os.fdopen(reader, "rb") as results:
        try:
            _index_range(index, fd, index.offset, middle, pricer)
        finally:
            payload = results.read()
            _, status = os.waitpid(pid, 0)
    if status != 0 or index.offset != middle:
        return
    second = _parse_state(payload)
    # The helper's part must end where a sequential read could have.
    if second is not None and middle <= second.offset <= size:
        _merge(index, second)


def _index_for_parent(
    writer: int, fd: int, start: int, size: int, pricer: Pricer
) -> NoReturn:
    """In the forked helper: index ``start`` to ``size``, send it, and exit."""
    code = 1
    try:
        part = LogIndex(offset=start)
        _index_range(part, fd, start, size, pricer)
        with os.fdopen(writer, "wb") as out:
            out.write(orjson.dumps(_to_state(part)))
        code = 0
    finally:
        # No atexit handlers, no flushing of buffers copied from the parent.
        os._exit(code)


def _index_range(
    index: LogIndex, fd: int, start: int, end: int, pricer: Pricer
) -> None:
    """Index the complete lines between byte offsets ``start`` and ``end``.

    Reads with ``pread``, so the parent and the helper share the descriptor
    without moving each other's file position.
    """
    position = start

    def read(size: int) -> bytes:
        nonlocal position
        data = os.pread(fd, min(size, end - position), position)
        position += len(data)
        return data

    index.offset = start
    _read_lines(index, read, pricer)


def _next_line_start(fd: int, position: int, end: int) -> int | None:
    """Return the offset just after the first newline at or after ``position``."""
    while position < end:
        data = os.pread(fd, min(_CHUNK, end - position), position)
        if not data:
            return None
        newline = data.find(b"\n")
        if newline >= 0:
            return position + newline + 1
        position += len(data)
    return None


def _merge(index: LogIndex, later: LogIndex) -> None:
    """Add ``later``, the index of the bytes right after ``index``'s, to ``index``."""
    index.lines += later.lines
    index.skipped_lines += later.skipped_lines
    for hour, bucket in later.hours.items():
        _add_to_hour(index, hour, bucket.totals, bucket.start, bucket.end)
    for session_id, found in later.sessions.items():
        _add_to_session(index, session_id, found.totals, found.services)
    index.errors_dropped += later.errors_dropped
    _add_errors(index, later.errors)
    index.offset = later.offset


def _extend_compressed(index: LogIndex, file: Any, pricer: Pricer, log: Path) -> bytes:
    """Index a whole compressed segment, keeping every line before any damage.

    Lines are read one by one, so that a segment cut short loses no more than
    the reader loses: the lines decompressed before the damage are indexed.
    """
    if index.offset:
        return b""  # indexed before: compressed segments never change
    lines: list[bytes] = []
    try:
        for line in file:
            lines.append(line)
            # Only the segment's last line can lack its newline, and it is
            # indexed after the loop.
            if len(lines) >= _LINES_PER_BATCH and line.endswith(b"\n"):
                _add_lines(index, b"".join(lines), index.offset, pricer)
                index.offset += sum(len(done) for done in lines)
                lines.clear()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        _log.warning("segment %s is damaged: %s", log, exc)
        index.skipped_lines += 1
    if lines:
        data = b"".join(lines)
        # A segment never grows, so a last line without its newline is
        # complete rather than a write in progress, and is indexed as one.
        ended = data if data.endswith(b"\n") else data + b"\n"
        _add_lines(index, ended, index.offset, pricer)
        index.offset += len(data)
    return b""


def _add_lines(index: LogIndex, data: bytes, base: int, pricer: Pricer) -> None:
    """Index ``data``, complete lines starting at byte ``base`` of the log."""
    lines = data.split(b"\n")
    lines.pop()
    _add_split(index, lines, base, pricer, data.isascii())


def _add_split(
    index: LogIndex, lines: list[bytes], base: int, pricer: Pricer, ascii_only: bool
) -> None:
    found = lines_totals(lines, base, pricer, ascii_only=ascii_only)
    if found is None:
        found = _line_totals(lines, base, pricer)
    _add_errors(index, found.errors)
    index.lines += found.lines
    index.skipped_lines += found.skipped
    _fold(index, found.groups, found.spans)


def _add_errors(index: LogIndex, offsets: list[int]) -> None:
    """Append failed entries' offsets, keeping only the latest MAX_ERRORS."""
    index.errors += offsets
    excess = len(index.errors) - MAX_ERRORS
    if excess > 0:
        del index.errors[:excess]
        index.errors_dropped += excess


def _line_totals(lines: list[bytes], base: int, pricer: Pricer) -> ChunkTotals:
    """Parse ``lines`` one by one: the path for chunks with any unusual line.

    The lines come without their newlines, and the first starts at ``base``.
    """
    loads = orjson.loads
    price = pricer.price
    # One Totals per (hour, session, service) of this chunk, folded into the
    # hour buckets and session totals at the end: each entry is counted once
    # instead of once per aggregate.
    groups: dict[tuple[str, str, str], Totals] = {}
    spans: dict[str, list[int]] = {}
    errors: list[int] = []
    position = base
    skipped = 0

    for line in lines:
        start = position
        position += len(line) + 1
        try:
            entry = loads(line)
        except orjson.JSONDecodeError:
            skipped += 1
            continue
        if type(entry) is not dict:
            skipped += 1
            continue
        timestamp = entry.get("timestamp")
        if type(timestamp) is not str:
            skipped += 1
            continue
        stored = entry.get("cost_usd")
        if type(stored) is float:
            cost, priced = stored, True
        else:
            cost, priced = price(entry)

        hour = timestamp[:_HOUR]
        # Text keys, whatever type another tool wrote, as session_totals uses.
        key = (hour, str(entry.get("session_id")), str(entry.get("service")))
        totals = groups.get(key)
        if totals is None:
            totals = groups[key] = Totals()
        totals.add_priced(entry, cost, priced)
        span = spans.get(hour)
        if span is None:
            spans[hour] = [start, position]
        else:
            span[1] = position
        if entry.get("success") is False:
            errors.append(start)
    return ChunkTotals(groups, spans, errors, len(lines), skipped)


def _fold(
    index: LogIndex,
    groups: dict[tuple[str, str, str], Totals],
    spans: dict[str, list[int]],
) -> None:
    for (hour, session_id, service), totals in groups.items():
        _add_to_hour(index, hour, totals, *spans[hour])
        _add_to_session(index, session_id, totals, {service})


# Both replace the bucket or session they change with a new object: the old
# one may be shared with an index another query is reading (see _recall).


def _add_to_hour(
    index: LogIndex, hour: str, totals: Totals, start: int, end: int
) -> None:
    bucket = index.hours.get(hour)
    added = Bucket(totals.copy(), start, end)
    if bucket is not None:
        added = Bucket(bucket.totals.copy(), bucket.start, max(bucket.end, end))
        added.totals.merge(totals)
    index.hours[hour] = added


def _add_to_session(
    index: LogIndex, session_id: str, totals: Totals, services: set[str]
) -> None:
    session = index.sessions.get(session_id)
    added = SessionTotals(totals.copy(), set(services))
    if session is not None:
        added = SessionTotals(session.totals.copy(), session.services | services)
        added.totals.merge(totals)
    index.sessions[session_id] = added


def summary_since(log: Path, index: LogIndex, cutoff: str, pricer: Pricer) -> Totals:
    """Return the totals of entries at or after ``cutoff`` from the index.

    Hours wholly after the cutoff come from the index; the cutoff's own hour
    is read again from its byte range and filtered entry by entry.
    """
    totals = Totals()
    for entry in index.tail:
        if entry["timestamp"] >= cutoff:
            totals.add(entry, pricer)
    boundary = cutoff[:_HOUR]
    for hour, bucket in index.hours.items():
        if hour > boundary:
            totals.merge(bucket.totals)
        elif hour == boundary:
            for entry in read_range(log, bucket.start, bucket.end):
                if (
                    entry["timestamp"][:_HOUR] == boundary
                    and entry["timestamp"] >= cutoff
                ):
                    totals.add(entry, pricer)
    return totals


def recent_failures(log: Path, index: LogIndex, count: int) -> list[Entry]:
    """Return the last ``count`` failed entries, newest first."""
    failed = [e for e in index.tail if e.get("success") is False]
    from_index = max(count - len(failed), 0)
    if from_index > len(index.errors) and index.errors_dropped:
        # Older failures than the index keeps: read them from the log.
        older = deque(
            (e for e in read_range(log, 0, index.offset) if e.get("success") is False),
            maxlen=from_index,
        )
        entries = [*older, *failed]
    else:
        offsets = index.errors[-from_index:] if from_index else []
        entries = read_at(log, offsets) + failed
    return list(reversed(entries[-count:])) if count else []


def session_stats(index: LogIndex, pricer: Pricer) -> dict[str, SessionTotals]:
    """Return the per-session totals, the unfinished last line included."""
    if not index.tail:
        return index.sessions
    sessions = dict(index.sessions)
    for entry in index.tail:
        session_id = str(entry.get("session_id"))
        current = sessions.get(session_id)
        merged = SessionTotals()
        if current is not None:
            merged.totals.merge(current.totals)
            merged.services |= current.services
        merged.totals.add(entry, pricer)
        merged.services.add(str(entry.get("service")))
        sessions[session_id] = merged
    return sessions


def first_offset_since(index: LogIndex, cutoff: str) -> int:
    """Return a byte offset before which no entry at or after ``cutoff`` lies."""
    boundary = cutoff[:_HOUR]
    starts = [b.start for hour, b in index.hours.items() if hour >= boundary]
    return min(starts, default=index.offset)


def read_range(log: Path, start: int, end: int) -> Iterator[Entry]:
    """Yield the valid entries between two line-boundary offsets of ``log``."""
    fd = open_for_reading(log)
    if fd is None:
        return
    with open_stream(log, fd) as file:
        file.seek(start)
        remaining = end - start
        while remaining > 0:
            line = file.readline(remaining)
            if not line:
                break
            remaining -= len(line)
            with contextlib.suppress(orjson.JSONDecodeError):
                entry = orjson.loads(line)
                if type(entry) is dict and type(entry.get("timestamp")) is str:
                    yield entry


def read_at(log: Path, offsets: list[int]) -> list[Entry]:
    """Return the entries that start at ``offsets``."""
    entries: list[Entry] = []
    fd = open_for_reading(log)
    if fd is None:
        return entries
    with open_stream(log, fd) as file:
        for offset in offsets:
            file.seek(offset)
            with contextlib.suppress(orjson.JSONDecodeError):
                entries.append(orjson.loads(file.readline()))
    return entries


def _read_saved(path: Path) -> LogIndex | None:
    try:
        fd = open_for_reading(path)
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as file:
            saved = file.read()
    except OSError as exc:
        _log.debug("ignoring unreadable index %s: %s", path, exc)
        return None
    index = _parse_state(saved)
    if index is None:
        _log.debug("ignoring index %s: invalid or of another version", path)
    return index


def _parse_state(data: bytes) -> LogIndex | None:
    """Return the index encoded in ``data``, or None if it is not a valid one."""
    try:
        state = orjson.loads(data)
        if type(state) is not dict:
            return None
        return _from_state(state)
    except (
        orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError,
        IndexError,
    ):  # fmt: skip
        return None


def _save(path: Path, index: LogIndex) -> bool:
    """Write ``index`` to ``path`` and return True, or return False if that failed."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(temporary, flags, FILE_MODE)
        with os.fdopen(fd, "wb") as file:
            file.write(orjson.dumps(_to_state(index)))
        os.replace(temporary, path)
        return True
    except (OSError, orjson.JSONEncodeError) as exc:
        # A total beyond 64 bits (from counts other tools wrote) cannot be
        # saved, so a new process builds the index again.
        _log.debug("cannot save index %s: %s", path, exc)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        return False


def _to_state(index: LogIndex) -> dict[str, Any]:
    return {
        "version": INDEX_VERSION,
        "identity": list(index.identity),
        "offset": index.offset,
        "check": index.check,
        "fingerprint": index.fingerprint,
        "lines": index.lines,
        "skipped_lines": index.skipped_lines,
        "hours": {
            hour: [b.totals.to_state(), b.start, b.end]
            for hour, b in index.hours.items()
        },
        "sessions": {
            sid: [s.totals.to_state(), sorted(s.services)]
            for sid, s in index.sessions.items()
        },
        "errors": index.errors,
        "errors_dropped": index.errors_dropped,
    }


def _from_state(state: dict[str, Any]) -> LogIndex | None:
    if state.get("version") != INDEX_VERSION:
        return None
    return LogIndex(
        identity=(int(state["identity"][0]), int(state["identity"][1])),
        offset=int(state["offset"]),
        check=str(state["check"]),
        fingerprint=str(state["fingerprint"]),
        lines=int(state["lines"]),
        skipped_lines=int(state["skipped_lines"]),
        hours={
            hour: Bucket(Totals.from_state(totals), int(start), int(end))
            for hour, (totals, start, end) in state["hours"].items()
        },
        sessions={
            sid: SessionTotals(Totals.from_state(totals), set(services))
            for sid, (totals, services) in state["sessions"].items()
        },
        errors=[int(offset) for offset in state["errors"]],
        errors_dropped=int(state.get("errors_dropped", 0)),
    )


def summary_of(logs: list[Path], cutoff: str, pricer: Pricer) -> tuple[Totals, int]:
    """Return the totals since ``cutoff`` over several logs, and their skipped lines."""
    totals = Totals()
    skipped = 0
    for log in logs:
        index = load_index(log, pricer)
        totals.merge(summary_since(log, index, cutoff, pricer))
        skipped += index.all_skipped()
    return totals, skipped


def failures_of(logs: list[Path], count: int, pricer: Pricer) -> list[Entry]:
    """Return the last ``count`` failed entries of several services, newest first.

    Entries of different services are ordered by timestamp.
    """
    failures: list[Entry] = []
    for log in logs:
        failures += recent_failures(log, load_index(log, pricer), count)
    failures.sort(key=lambda entry: entry["timestamp"], reverse=True)
    return failures[:count]


def last_failures(files: list[Path], count: int, pricer: Pricer) -> list[Entry]:
    """Return the last ``count`` failed entries of one service's files, newest first.

    ``files`` are in write order (segments, then the log), and the entries
    keep that order, as in a scan of the files.
    """
    failures: list[Entry] = []
    for path in reversed(files):
        if len(failures) >= count:
            break
        failures += recent_failures(
            path, load_index(path, pricer), count - len(failures)
        )
    return failures


def sessions_of(logs: list[Path], pricer: Pricer) -> dict[str, SessionTotals]:
    """Return per-session totals over several logs, oldest session first."""
    merged = LogIndex()
    for log in logs:
        for session_id, found in session_stats(load_index(log, pricer), pricer).items():
            # A session seen in one file only keeps its totals object as is.
            if session_id in merged.sessions:
                _add_to_session(merged, session_id, found.totals, found.services)
            else:
                merged.sessions[session_id] = found
    return dict(
        sorted(merged.sessions.items(), key=lambda item: item[1].totals.first or "")
    )
