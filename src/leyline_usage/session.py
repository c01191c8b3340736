"""Sessions: one id for a burst of activity, shared by every process of a service.

State lives in ``{service}_session.json`` (``session_id``, ``created_at``,
``last_activity``, in the original leyline layout) and changes only under the
service lock, by writing a temporary file and renaming it over the old one.

The state file is not rewritten per entry. The last activity of a service is
the later of the state's ``last_activity`` and the modification time of the
service log, which every append advances. So a process only needs the state
file when its own record shows that the session might have expired, and the
one-hour rule applies across processes even though ``last_activity`` is
refreshed at most once a minute. A process that takes the session from the
file saves its own time there first, because its entry lands only after the
lock is let go.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import orjson

from leyline_usage.errors import StorageError
from leyline_usage.paths import ensure_storage_dir, open_private
from leyline_usage.store import DEFAULT_OPTIONS, Appender, WriteOptions

SESSION_ID_ENV = "LEYLINE_SESSION_ID"
DEFAULT_TIMEOUT = 3600.0
# The maximum delay before an active process refreshes the state file's
# last_activity (a quarter of the timeout, for timeouts under four minutes).
ACTIVITY_REFRESH_SECONDS = 60.0
# Linux can stamp a file's mtime from a clock that advances once per tick.
# So the log's mtime can be up to a tick older than its last entry, and a
# tick is at most 10 ms (at 100 Hz, the lowest tick rate).
_MTIME_LAG = 0.01

_log = logging.getLogger("leyline_usage")


def new_session_id(now: float) -> str:
    """Return a fresh id: ``session_<unix seconds>_<8 random hex digits>``."""
    return f"session_{int(now)}_{os.urandom(4).hex()}"


def validate_session_id(session_id: object) -> str:
    """Return ``session_id`` if it is a usable explicit id, else raise ValueError."""
    if (
        not isinstance(session_id, str)
        or not session_id
        or len(session_id) > 256
        or not session_id.isprintable()
    ):
        raise ValueError(
            f"session id {session_id!r} is invalid: use 1 to 256 printable characters"
        )
    return session_id


class SessionTracker:
    """Finds or starts the current session of one service."""

    def __init__(
        self,
        appender: Appender,
        state_path: Path,
        timeout: float,
        options: WriteOptions = DEFAULT_OPTIONS,
        *,
        strict: bool = False,
    ) -> None:
        if not timeout > 0:
            raise ValueError(
                f"session timeout must be a positive number of seconds, got {timeout!r}"
            )
        self.state_path = state_path
        self.timeout = float(timeout)
        self._refresh_interval = min(ACTIVITY_REFRESH_SECONDS, self.timeout / 4)
        self._appender = appender
        self._options = options
        # With strict, a state file that cannot be read or saved raises.
        self.strict = strict
        self._session_id: str | None = None
        # The latest activity this process has seen, and the last_activity it
        # last saw in (or wrote to) the state file.
        self._known_activity = 0.0
        self._saved_activity = 0.0

    def current(self, now: float) -> str:
        """Return the session id for an entry logged at ``now``."""
        session_id = self._session_id
        if session_id is not None and now - self._known_activity < self.timeout:
            # Activity only moves forward, so no process can have ended this
            # session before known_activity + timeout.
            self._known_activity = now
            if now - self._saved_activity >= self._refresh_interval:
                return self._refresh(session_id, now)
            return session_id
        return self._resolve(now)

    def peek(self) -> str | None:
        """Return the active session id from the state file, or None if none is."""
        if (
            self._session_id is not None
            and time.time() - self._known_activity < self.timeout
        ):
            return self._session_id
        state, _ = self._load_state()
        if state and time.time() - self._last_activity(state) < self.timeout:
            return str(state["session_id"])
        return None

    def _resolve(self, now: float) -> str:
        with self._appender.locked(self._options):
            state, readable = self._load_state()
            restored = False
            if state is None:
                state = self._state_from_log()
                restored = state is not None and readable
            if state is not None and now - self._last_activity(state) < self.timeout:
                session_id = str(state["session_id"])
                # The entry is written after the lock is let go. Saving its
                # time now keeps a process that takes the lock in between
                # from ending this session before the entry lands. A state
                # restored from the log is saved in the same write.
                if restored or float(state["last_activity"]) < now:
                    state["last_activity"] = max(now, float(state["last_activity"]))
                    self._save_state(state, required=restored)
                self._saved_activity = float(state["last_activity"])
            else:
                session_id = new_session_id(now)
                self._save_state(
                    {"session_id": session_id, "created_at": now, "last_activity": now},
                    required=True,
                )
                self._saved_activity = now
                _log.debug("started session %s in %s", session_id, self.state_path)
        self._session_id = session_id
        self._known_activity = now
        return session_id

    def _refresh(self, session_id: str, now: float) -> str:
        """Save this process's activity and return the session to continue in."""
        with self._appender.locked(self._options):
            state, _ = self._load_state()
            if state is None:
                # Lost or unreadable while this session is active: write it
                # again, so that loggers starting now join this session.
                state = {
                    "session_id": session_id,
                    "created_at": now,
                    "last_activity": now,
                }
                self._save_state(state, required=True)
            elif state["session_id"] != session_id:
                # Another process started a session while this one waited for
                # the lock at the edge of the timeout: join it, so the split
                # lasts at most one refresh interval.
                session_id = self._session_id = str(state["session_id"])
            elif float(state["last_activity"]) < now:
                state["last_activity"] = now
                self._save_state(state, required=False)
        self._saved_activity = now
        return session_id

    def _load_state(self) -> tuple[dict[str, Any] | None, bool]:
        """Return the saved state, or None, and whether the state file was readable.

        Without ``strict``, a state path that cannot be read (a directory, a
        symlink, no permission) reads as no state, so the session comes from
        the log's last entry, which every process reads alike.
        """
        try:
            return self._read_state(), True
        except StorageError as exc:
            if self.strict:
                raise
            _log.debug("session state unreadable, using the log instead: %s", exc)
            return None, False

    def _save_state(self, state: dict[str, Any], *, required: bool) -> None:
        """Write ``state``; a failure raises only for a required save with ``strict``.

        Every process still finds the session in the log's last entry, so a
        state file that cannot be written costs no entry.
        """
        try:
            self._write_state(state)
        except StorageError as exc:
            if self.strict and required:
                raise
            _log.debug("saving the session state failed: %s", exc)

    def _state_from_log(self) -> dict[str, Any] | None:
        """Rebuild lost session state from the service's last entry, if recent."""
        try:
            line = self._appender.last_entry_line_locked()
            activity = os.stat(self._appender.log_path).st_mtime
        except OSError:
            return None
        if line is None:
            return None
        try:
            session_id = orjson.loads(line).get("session_id")
        except orjson.JSONDecodeError:
            return None
        if not isinstance(session_id, str) or not session_id:
            return None
        return {
            "session_id": session_id,
            "created_at": activity,
            "last_activity": activity,
        }

    def _last_activity(self, state: dict[str, Any]) -> float:
        try:
            log_mtime = os.stat(self._appender.log_path).st_mtime + _MTIME_LAG
        except OSError:
            log_mtime = 0.0
        return max(float(state["last_activity"]), log_mtime)

    def _read_state(self) -> dict[str, Any] | None:
        try:
            fd = open_private(self.state_path, os.O_RDONLY)
        except StorageError as exc:
            if not os.path.lexists(self.state_path):
                return None
            raise exc
        try:
            with os.fdopen(fd, "rb") as file:
                raw = file.read(65536)
        except OSError as exc:
            raise StorageError(
                self.state_path, f"cannot read: {exc.strerror or exc}"
            ) from exc
        return _parse_state(raw, self.state_path)

    def _write_state(self, state: dict[str, Any]) -> None:
        directory = ensure_storage_dir(self.state_path.parent)
        temporary = (
            directory
            / f".{self.state_path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        )
        try:
            fd = open_private(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            try:
                os.write(fd, orjson.dumps(state))
            finally:
                os.close(fd)
            # rename() replaces a planted symlink itself rather than its target.
            os.replace(temporary, self.state_path)
        except OSError as exc:
            _remove_quietly(temporary)
            if isinstance(exc, StorageError):
                raise
            raise StorageError(
                self.state_path, f"cannot save session: {exc.strerror or exc}"
            ) from exc


def _parse_state(raw: bytes, path: Path) -> dict[str, Any] | None:
    try:
        state = orjson.loads(raw)
        if (
            isinstance(state, dict)
            and isinstance(state.get("session_id"), str)
            and state["session_id"]
            and isinstance(state.get("last_activity"), (int, float))
        ):
            state.setdefault("created_at", state["last_activity"])
            return state
    except orjson.JSONDecodeError:
        pass
    _log.warning("session file %s is unreadable; a new session will replace it", path)
    return None


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
