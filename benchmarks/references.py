"""Reference loggers that do the work of one ``log_usage`` call by other means.

None of them prices entries or gives them ids. They write the ten keys of the
original leyline format plus the model and token counts, which is what a
caller would otherwise have to log by hand.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from concurrent_log_handler import ConcurrentRotatingFileHandler

SESSION_TIMEOUT_SECONDS = 3600.0


def usage_fields(
    service: str,
    operation: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    duration: float,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """Return the fields of one entry after ``timestamp`` and ``session_id``."""
    return {
        "service": service,
        "operation": operation,
        "tokens": input_tokens + output_tokens + cache_read_tokens + cache_write_tokens,
        "success": True,
        "duration_seconds": duration,
        "error_type": None,
        "error_message": None,
        "metadata": metadata,
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read_tokens,
        "cache_write_tokens": cache_write_tokens,
    }


def utc_timestamp(when: float | None = None) -> str:
    """Format a UTC time as ``2025-12-05T10:30:00.412907Z`` with ``datetime``."""
    moment = datetime.fromtimestamp(time.time() if when is None else when, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NaiveLogger:
    """The original leyline design: no lock, every file opened per entry.

    Each entry reads the session file to find the session, appends the entry
    with ``open(..., "a")`` and ``json.dumps``, and rewrites the session file
    to record the activity. Two processes can interleave between the read and
    the rewrite, so this design is not process-safe.
    """

    def __init__(self, service: str, directory: Path) -> None:
        self.service = service
        self.log_file = directory / f"{service}.jsonl"
        self.session_file = directory / f"{service}_session.json"

    def log_usage(self, operation: str, **fields: Any) -> None:
        """Append one entry and record the session's activity."""
        now = time.time()
        entry = {
            "timestamp": utc_timestamp(now),
            "session_id": self._session_id(now),
            **usage_fields(self.service, operation, **fields),
        }
        with open(self.log_file, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")
        self._touch_session(now)

    def close(self) -> None:
        """Do nothing: no file stays open between entries."""

    def _session_id(self, now: float) -> str:
        state = self._read_session()
        if state and now - state["last_activity"] < SESSION_TIMEOUT_SECONDS:
            return str(state["session_id"])
        session_id = f"session_{int(now)}"
        self._write_session(
            {"session_id": session_id, "created_at": now, "last_activity": now}
        )
        return session_id

    def _touch_session(self, now: float) -> None:
        state = self._read_session()
        if state is not None:
            state["last_activity"] = now
            self._write_session(state)

    def _read_session(self) -> dict[str, Any] | None:
        try:
            with open(self.session_file, encoding="utf-8") as file:
                state: dict[str, Any] = json.load(file)
        except (OSError, ValueError):
            return None
        return state

    def _write_session(self, state: dict[str, Any]) -> None:
        with open(self.session_file, "w", encoding="utf-8") as file:
            json.dump(state, file)


class JsonFormatter(logging.Formatter):
    """Formats a record carrying ``usage`` fields as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": utc_timestamp(record.created),
            "session_id": record.session_id,  # type: ignore[attr-defined]
            **record.usage,  # type: ignore[attr-defined]
        }
        return json.dumps(entry)


class HandlerLogger:
    """Logs entries through a ``logging`` handler with :class:`JsonFormatter`."""

    def __init__(self, service: str, handler: logging.Handler) -> None:
        handler.setFormatter(JsonFormatter())
        self.service = service
        self.session_id = f"session_{int(time.time())}"
        self.handler = handler
        self._logger = logging.getLogger(f"benchmarks.{service}.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._logger.addHandler(handler)

    def log_usage(self, operation: str, **fields: Any) -> None:
        """Emit one entry as an INFO record."""
        usage = usage_fields(self.service, operation, **fields)
        self._logger.info(
            "usage", extra={"usage": usage, "session_id": self.session_id}
        )

    def close(self) -> None:
        """Detach and close the handler."""
        self._logger.removeHandler(self.handler)
        self.handler.close()


def file_handler_logger(service: str, directory: Path) -> HandlerLogger:
    """Return a logger writing through ``logging.FileHandler`` (one process only)."""
    handler = logging.FileHandler(directory / f"{service}.jsonl", encoding="utf-8")
    return HandlerLogger(service, handler)


def concurrent_handler_logger(service: str, directory: Path) -> HandlerLogger:
    """Return a logger writing through concurrent-log-handler, without rotation."""
    handler = ConcurrentRotatingFileHandler(
        str(directory / f"{service}.jsonl"), maxBytes=0, encoding="utf-8"
    )
    return HandlerLogger(service, handler)


class AppendFloor:
    """One ``os.write`` per entry on a kept-open ``O_APPEND`` descriptor.

    With ``locked``, each write happens under ``fcntl.flock`` on a lock file
    descriptor that also stays open, as leyline-usage does. The line is
    encoded once, so this measures only the system calls.
    """

    def __init__(self, path: Path, line: bytes, locked: bool) -> None:
        self.line = line
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self.fd = os.open(path, flags, 0o600)
        self.lock_fd = -1
        if locked:
            lock_path = path.with_name(path.name + ".lock")
            self.lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)

    def write(self) -> None:
        """Append the line once."""
        if self.lock_fd < 0:
            os.write(self.fd, self.line)
            return
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        try:
            os.write(self.fd, self.line)
        finally:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the descriptors."""
        os.close(self.fd)
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
