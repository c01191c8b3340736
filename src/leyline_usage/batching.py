"""``UsageLogger.batch``: buffer entries and write many under one lock acquisition."""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence

from leyline_usage.entry import Entry

# Writes the encoded lines and then hands the entries to the sinks.
Writer = Callable[[bytes, Sequence[Entry]], None]

DEFAULT_MAX_ENTRIES = 1000
DEFAULT_MAX_DELAY = 0.2


class Batch:
    """A buffer of encoded entries, flushed as one write.

    A flush happens when the buffer holds ``max_entries`` entries, when its
    oldest entry is ``max_delay`` seconds old (checked by a background thread),
    when the ``with`` block ends and at interpreter exit. Every entry is still
    one complete line, and the lines of one flush are contiguous in the log.
    """

    def __init__(self, write: Writer, max_entries: int, max_delay: float) -> None:
        if type(max_entries) is not int or max_entries < 1:
            raise ValueError(
                f"max_entries must be a positive integer, got {max_entries!r}"
            )
        if not 0 < max_delay < float("inf"):
            raise ValueError(
                f"max_delay must be a positive number of seconds, got {max_delay!r}"
            )
        self.max_entries = max_entries
        self.max_delay = float(max_delay)
        self._write = write
        self._lock = threading.Lock()
        # One growing buffer rather than a list of lines: each encoded line is
        # freed at once, and keeping a thousand of them alive made the encoder
        # several times slower through fresh memory for each.
        self._data = bytearray()
        self._entries: list[Entry] = []
        self._oldest = 0.0
        self._error: Exception | None = None
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_when_due, daemon=True)
        self._flusher.start()
        _live_batches.add(self)

    def add(self, line: bytes, entry: Entry) -> None:
        """Buffer one encoded entry, flushing if the buffer is full."""
        with self._lock:
            self._raise_pending()
            entries = self._entries
            if not entries:
                self._oldest = time.monotonic()
            self._data += line
            entries.append(entry)
            if len(entries) >= self.max_entries or self._closed.is_set():
                self._flush_locked()

    def flush(self) -> None:
        """Write everything buffered so far."""
        with self._lock:
            self._raise_pending()
            self._flush_locked()

    def _raise_pending(self) -> None:
        # A strict logger's write error in the background thread surfaces at
        # the caller's next call instead of dying with that thread.
        error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Flush and stop the background thread."""
        self._closed.set()
        self.flush()
        _live_batches.discard(self)

    def _flush_locked(self) -> None:
        if not self._entries:
            return
        data = bytes(self._data)
        entries = self._entries
        self._data = bytearray()
        self._entries = []
        # The write happens under the batch lock so that flushes from the
        # background thread and from add() stay in order.
        self._write(data, entries)

    def _flush_when_due(self) -> None:
        while not self._closed.wait(self.max_delay / 2):
            with self._lock:
                if self._entries and time.monotonic() - self._oldest >= self.max_delay:
                    try:
                        self._flush_locked()
                    except Exception as exc:
                        self._error = exc

    def _forget_after_fork(self) -> None:
        # The parent flushes these entries; the child writing them too would
        # duplicate them, and the background thread does not exist here.
        self._lock = threading.Lock()
        self._data = bytearray()
        self._entries = []
        self._closed.set()


_live_batches: weakref.WeakSet[Batch] = weakref.WeakSet()


def _flush_all_at_exit() -> None:
    for batch in list(_live_batches):
        batch.flush()


def _after_fork_in_child() -> None:
    for batch in list(_live_batches):
        batch._forget_after_fork()
    _live_batches.clear()


atexit.register(_flush_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
