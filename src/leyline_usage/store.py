"""The lock-protected appender behind every service log.

Each service has three files in the storage directory: ``{service}.jsonl`` (the
log), ``{service}_session.json`` (session state) and ``{service}.jsonl.lock``
(a sidecar that is locked, never written and never deleted, so every process
locks the same inode). Rotated segments sit beside the log (see
:mod:`leyline_usage.segments`).

Locking uses ``fcntl.flock`` on a lock descriptor that stays open for the life of
the process. Measured on a 2-core Linux machine, an uncontended acquire and
release costs about 1 µs. ``filelock.FileLock`` opens the lock file on every
acquire and polls while it waits (about 90 µs per acquire, and up to 50 ms of
idle wait under contention), so it is used only where ``fcntl`` does not exist.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from leyline_usage.errors import StorageError
from leyline_usage.paths import ensure_storage_dir, open_private
from leyline_usage.segments import Rotation

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_log = logging.getLogger("leyline_usage")

# Read access lets the torn-tail check read the last byte of the file.
_APPEND_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT
DEFAULT_LOCK_TIMEOUT = 10.0
# Waits between non-blocking lock attempts grow from the first to the last.
_YIELDS = 20
_FIRST_WAIT = 20e-6
_LONGEST_WAIT = 1e-3


class LockTimeout(StorageError):
    """The service lock stayed held by another process past the timeout."""


class _FileLockFallback:
    """Cross-process lock for platforms without ``fcntl``."""

    def __init__(self, path: Path) -> None:
        import filelock

        self.path = path
        self._lock = filelock.FileLock(str(path))

    def acquire(self, timeout: float) -> None:
        import filelock

        try:
            self._lock.acquire(timeout=timeout)
        except filelock.Timeout as exc:
            raise LockTimeout(
                self.path, f"lock held for more than {timeout:g} s"
            ) from exc

    def release(self) -> None:
        self._lock.release()

    def is_current(self) -> bool:
        return True

    def close(self) -> None:
        pass


class _FlockLock:
    """``flock`` on a descriptor of the sidecar lock file kept open by this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = open_private(path, _LOCK_FLAGS)

    def acquire(self, timeout: float) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._wait(timeout)

    def _wait(self, timeout: float) -> None:
        # Linux has no flock with a timeout, and a blocking flock cannot be
        # interrupted from another thread; so a contended acquire polls. The
        # holder keeps the lock for a few microseconds per write, so the first
        # attempts only yield the processor (to the holder, when processes
        # outnumber cores), and only then do waits grow from 20 µs to 1 ms.
        for _ in range(_YIELDS):
            os.sched_yield()
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
        deadline = time.monotonic() + timeout
        wait = _FIRST_WAIT
        while True:
            time.sleep(wait)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        self.path,
                        f"lock held by another process for more than {timeout:g} s",
                    ) from None
                wait = min(wait * 2, _LONGEST_WAIT)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def is_current(self) -> bool:
        """Return True if the path still names the file this descriptor locks."""
        try:
            on_disk = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return False
        mine = os.fstat(self._fd)
        return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)

    def close(self) -> None:
        os.close(self._fd)


@dataclass(frozen=True)
class WriteOptions:
    """A logger's settings for the writes it requests from an appender."""

    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    rotation: Rotation | None = None


DEFAULT_OPTIONS = WriteOptions()


class Appender:
    """Appends complete lines to one service log under the service lock.

    One instance exists per log path in a process (see :func:`appender_for`).
    A thread lock guards the shared descriptors, because ``flock`` excludes
    other open file descriptions but not other threads using this one.

    Under the lock, every write first checks that the log path still names
    the file this process has open. When it does not (the log was rotated,
    replaced, or its directory deleted), the appender opens the file now at
    the path, and the lock file too if that was replaced, before writing.
    """

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.lock_path = log_path.with_name(log_path.name + ".lock")
        self._thread_lock = threading.Lock()
        # The options of the call holding the thread lock: each logger passes
        # its own, so loggers of one service in a process keep their settings.
        self._options = DEFAULT_OPTIONS
        self._lock: _FlockLock | _FileLockFallback | None = None
        self._fd = -1
        # Size of the log right after this process's last write. When the size
        # under the lock still equals it, the file ends with our own newline and
        # the torn-tail check can skip its read.
        self._end = -1

    @contextmanager
    def locked(self, options: WriteOptions = DEFAULT_OPTIONS) -> Iterator[None]:
        """Hold the service lock (thread and process) for the duration of the block."""
        with self._thread_lock:
            self._options = options
            self._acquire()
            try:
                # Appends check the lock file when the log changed under them;
                # a block that may not append checks it here.
                lock = self._lock
                if lock is not None and not lock.is_current():
                    self._reopen_lock()
                yield
            finally:
                self._release()

    def append(self, data: bytes, options: WriteOptions = DEFAULT_OPTIONS) -> None:
        """Write ``data`` (one or more complete lines) with a single ``os.write``."""
        # The helpers of locked() are spelled out here: this is the hot path.
        with self._thread_lock:
            self._options = options
            lock = self._lock
            if lock is None:
                lock = self._open_lock()
            lock.acquire(options.lock_timeout)
            try:
                self._write_locked(data)
            finally:
                lock.release()

    def append_built(
        self,
        build: Callable[[bytes | None], bytes],
        options: WriteOptions = DEFAULT_OPTIONS,
    ) -> None:
        """Write the lines ``build`` returns when given the log's last entry line.

        ``build`` runs under the lock, so what it writes can depend on the
        entry before it (the hash chain). It receives the last complete line
        that is a JSON object, or None if the log has none.
        """
        with self._thread_lock:
            self._options = options
            self._acquire()
            try:
                self._write_locked(build(self.last_entry_line_locked()))
            finally:
                self._release()

    def last_entry_line_locked(self) -> bytes | None:
        """Return the log's last complete line that parses as a JSON object."""
        size = self._current_size()
        for line in self._lines_backwards(size):
            try:
                if type(orjson.loads(line)) is dict:
                    return line
            except orjson.JSONDecodeError:
                continue
        return None

    def append_locked(self, data: bytes) -> None:
        """Write ``data`` from inside a :meth:`locked` block."""
        self._write_locked(data)

    def close(self) -> None:
        """Close the descriptors; the next append opens them again."""
        with self._thread_lock:
            self._close()

    def size_locked(self) -> int:
        """Return the size of the current log; the caller holds the lock."""
        return self._current_size()

    def _acquire(self) -> None:
        lock = self._lock
        if lock is None:
            lock = self._open_lock()
        lock.acquire(self._options.lock_timeout)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def _open_lock(self) -> _FlockLock | _FileLockFallback:
        ensure_storage_dir(self.log_path.parent)
        lock = (
            _FlockLock(self.lock_path) if fcntl else _FileLockFallback(self.lock_path)
        )
        self._lock = lock
        return lock

    def _reopen_lock(self) -> None:
        """Move from a lock file that was deleted or replaced to the one at the path."""
        lock = self._lock
        assert lock is not None
        lock.release()
        lock.close()
        self._lock = None
        self._open_lock().acquire(self._options.lock_timeout)

    def _current_size(self) -> int:
        """Return the log's size, first moving to the file now at the path.

        The open file is retired when it has no name left (deleted, replaced,
        its directory removed) or lost its owner write bit (a rotation clears
        it before renaming). One fstat shows both and gives the size, which is
        cheaper than a stat of the path on every write.
        """
        if self._fd < 0:
            return self._reopen_locked()
        status = os.fstat(self._fd)
        if status.st_nlink == 0 or not status.st_mode & stat.S_IWUSR:
            return self._reopen_locked()
        # NOTE: a log renamed by another tool keeps its name count and mode, so
        # writers continue in the renamed file until it is deleted.
        return status.st_size

    def _reopen_locked(self) -> int:
        # The directory may have been deleted and made again, with a new lock
        # file that other processes now lock: holding the old one would let
        # them in at the same time, so the lock moves first.
        lock = self._lock
        assert lock is not None
        if not lock.is_current():
            self._reopen_lock()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._fd = open_private(self.log_path, _APPEND_FLAGS)
        self._end = -1
        return os.fstat(self._fd).st_size

    def _write_locked(self, data: bytes) -> None:
        size = self._current_size()
        rotation = self._options.rotation
        if rotation is not None and rotation.due(
            self.log_path, self._fd, size, len(data)
        ):
            rotation.rotate(self.log_path, self._fd)
            size = self._reopen_locked()
        fd = self._fd
        if size != self._end and size > 0 and os.pread(fd, 1, size - 1) != b"\n":
            # A writer died mid-line. Starting on a fresh line keeps the torn
            # fragment from swallowing this entry; readers skip the fragment.
            _log.warning("%s ends with a torn line; starting a new line", self.log_path)
            data = b"\n" + data
        try:
            written = os.write(fd, data)
            while written < len(data):
                written += os.write(fd, data[written:])
        except OSError as exc:
            # After a short write (a full disk, a file size limit) the log may
            # end inside this entry. Cutting it back to its size before the
            # write leaves no fragment. If even that fails, readers skip the
            # fragment and the next write starts a fresh line.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            self._end = -1
            raise StorageError(
                self.log_path, f"append failed: {exc.strerror or exc}"
            ) from exc
        self._end = size + written

    def _lines_backwards(self, size: int) -> Iterator[bytes]:
        """Yield the complete lines of the log, last first, without newlines.

        Bytes after the last newline (a torn fragment) are not a line.
        """
        position = size
        buffer = b""
        found_end = False
        while position > 0:
            start = max(position - (1 << 16), 0)
            buffer = os.pread(self._fd, position - start, start) + buffer
            position = start
            if not found_end:
                cut = buffer.rfind(b"\n")
                if cut < 0:
                    continue
                buffer = buffer[:cut]
                found_end = True
            # Everything after the first newline in the buffer is whole lines;
            # the part before it may continue in the block before this one.
            cut = buffer.rfind(b"\n")
            while cut >= 0:
                line = buffer[cut + 1 :]
                buffer = buffer[:cut]
                if line:
                    yield line
                cut = buffer.rfind(b"\n")
        if found_end and buffer:
            yield buffer

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _reset_after_fork(self) -> None:
        # The child shares the parent's open file descriptions, and flock treats
        # a shared description as one holder: without fresh descriptors the child
        # could write while the parent holds the lock. A thread of the parent may
        # also have held the thread lock at fork time, so it is replaced.
        self._thread_lock = threading.Lock()
        with contextlib.suppress(OSError):
            self._close()


_appenders: dict[Path, Appender] = {}
_appenders_guard = threading.Lock()
_live_appenders: weakref.WeakSet[Appender] = weakref.WeakSet()


def appender_for(log_path: Path) -> Appender:
    """Return this process's appender for ``log_path``, creating it once."""
    key = log_path.absolute()
    appender = _appenders.get(key)
    if appender is None:
        with _appenders_guard:
            appender = _appenders.get(key)
            if appender is None:
                appender = Appender(key)
                _appenders[key] = appender
                _live_appenders.add(appender)
    return appender


def _after_fork_in_child() -> None:
    global _appenders_guard
    _appenders_guard = threading.Lock()
    for appender in list(_live_appenders):
        appender._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
