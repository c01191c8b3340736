"""The git metadata of each working directory, cached between refreshes.

Within ``refresh_seconds`` of the last refresh, an entry costs one
``os.getcwd()`` and a dictionary lookup. A refresh finds the nearest ``.git``
with one ``access()`` call per directory level, then compares the signatures
of the files that the last read used (HEAD, the branch's ref or
``packed-refs``, the config file). It reads them again only if one changed,
and runs ``git rev-parse`` only if the ``.git`` entry is new or different. So
a refresh starts at most one process, and a commit or a branch switch starts
none.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from leyline_usage_git._repository import (
    DotGit,
    Location,
    Snapshot,
    dot_git_paths,
    find_dot_git,
    locate,
    read_snapshot,
)

DEFAULT_REFRESH_SECONDS = 1.0
# A process that visits more working directories than this starts over with
# an empty cache, which bounds its memory.
_MAX_DIRECTORIES = 256


@dataclass(frozen=True)
class _DirectoryState:
    """The result of the last refresh of one working directory."""

    checked_at: float
    dot_git_paths: tuple[str, ...]
    dot_git: DotGit | None = None
    location: Location | None = None
    snapshot: Snapshot | None = None

    @property
    def metadata(self) -> dict[str, Any] | None:
        return None if self.snapshot is None else self.snapshot.metadata


class GitMetadataCache:
    """Git metadata per working directory, refreshed every ``refresh_seconds``.

    Safe to share between threads. The returned dictionaries are shared by
    every caller and must not be modified.
    """

    def __init__(
        self,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        include_remote: bool = True,
    ) -> None:
        self.refresh_seconds = refresh_seconds
        self.include_remote = include_remote
        self._states: dict[str, _DirectoryState] = {}
        # Serializes refreshes, so that threads logging at the same time
        # start at most one git process between them.
        self._lock = threading.Lock()
        _live_caches.add(self)

    def configure(self, refresh_seconds: float, include_remote: bool) -> None:
        """Apply new settings and forget every cached directory."""
        with self._lock:
            self.refresh_seconds = refresh_seconds
            self.include_remote = include_remote
            self._states = {}

    def current(self) -> dict[str, Any] | None:
        """Return the metadata of the working directory, or None outside a repository.

        Also None when the working directory was deleted or the repository
        cannot be read.
        """
        try:
            directory = os.getcwd()
        except OSError:
            return None
        state = self._states.get(directory)
        if state is None or time.monotonic() - state.checked_at >= self.refresh_seconds:
            state = self._refresh(directory)
        return state.metadata

    def _refresh(self, directory: str) -> _DirectoryState:
        with self._lock:
            state = self._states.get(directory)
            now = time.monotonic()
            if state is not None and now - state.checked_at < self.refresh_seconds:
                return state  # another thread refreshed it while this one waited
            state = self._revalidate(directory, state, now)
            if directory not in self._states and len(self._states) >= _MAX_DIRECTORIES:
                self._states = {}
            self._states[directory] = state
            return state

    def _revalidate(
        self, directory: str, previous: _DirectoryState | None, now: float
    ) -> _DirectoryState:
        paths = dot_git_paths(directory) if previous is None else previous.dot_git_paths
        dot_git = find_dot_git(paths)
        if dot_git is None:
            return _DirectoryState(now, paths)
        if previous is None or previous.dot_git != dot_git:
            location = locate(directory)
        else:
            location = previous.location
        if location is None:
            return _DirectoryState(now, paths, dot_git)

        snapshot = None
        if previous is not None and previous.location == location:
            snapshot = previous.snapshot
        if snapshot is None or not snapshot.is_current():
            snapshot = read_snapshot(location, self.include_remote)
        return _DirectoryState(now, paths, dot_git, location, snapshot)

    def _reset_after_fork(self) -> None:
        # A thread of the parent may have held the lock at fork time, and no
        # thread of the child would ever release it.
        self._lock = threading.Lock()


_live_caches: weakref.WeakSet[GitMetadataCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cache in list(_live_caches):
        cache._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
