"""Locate the git repository of a directory and read its HEAD from git's files.

``git rev-parse`` locates the repository, because git's discovery rules are
many: ``.git`` files of linked worktrees and submodules, ``core.worktree``,
``safe.directory`` and ceiling directories. Reading HEAD, the branch's ref,
``packed-refs`` and the config file directly then takes microseconds instead
of a process, so a branch switch or a new commit never starts git.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import subprocess
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from leyline_usage_git._remote import origin_url, strip_credentials

_log = logging.getLogger("leyline_usage.git")

# Maximum time in seconds that one log call waits for git rev-parse. A working
# directory whose lookup times out gets no metadata until its .git entry changes.
LOCATE_TIMEOUT_SECONDS = 2.0
# Removed from git's environment, because each would make git describe another
# repository than the one containing the directory, which find_dot_git() finds.
_SCRUBBED_ENVIRONMENT = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR")
# Refs that each worktree keeps in its own git directory. All other refs live in
# the common directory.
_PER_WORKTREE_PREFIXES = ("refs/worktree/", "refs/bisect/", "refs/rewritten/")
_MAX_SYMREF_DEPTH = 5
# SHA-1 or SHA-256 object ids.
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

# A file's inode, modification time in ns and size, or None when it is missing.
# Git replaces refs, HEAD and the config file by renaming a new file over the
# old one, so every update changes at least the inode.
FileSignature: TypeAlias = tuple[int, int, int] | None
# The signature of a file that exists but cannot be opened or examined. It
# differs from the file's real signature, so the file is read again once its
# permissions allow.
_UNREADABLE: FileSignature = (-1, -1, -1)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class DotGit:
    """The nearest ``.git`` entry at or above a directory, and its identity."""

    path: str
    identity: tuple[int, ...]


@dataclass(frozen=True)
class Location:
    """A working tree and its repository directories, as ``git rev-parse`` reports.

    ``git_dir`` contains this worktree's HEAD. ``common_dir`` contains the refs,
    ``packed-refs`` and the config file that all worktrees share. Outside linked
    worktrees it equals ``git_dir``.
    """

    top_level: str
    git_dir: str
    common_dir: str


@dataclass(frozen=True)
class Snapshot:
    """The git metadata of a location, and the files it was read from."""

    metadata: dict[str, Any] | None
    files: tuple[tuple[str, FileSignature], ...]

    def is_current(self) -> bool:
        """Return True if none of the files read has changed since."""
        return all(file_signature(path) == signature for path, signature in self.files)


def dot_git_paths(directory: str) -> tuple[str, ...]:
    """Return the ``.git`` paths at and above ``directory``, nearest first."""
    paths = []
    while True:
        paths.append(os.path.join(directory, ".git"))
        parent = os.path.dirname(directory)
        if parent == directory:
            return tuple(paths)
        directory = parent


def find_dot_git(paths: tuple[str, ...]) -> DotGit | None:
    """Return the first of ``paths`` that exists, as a directory or a file."""
    for path in paths:
        # Most paths tried do not exist, and access() returns False where stat()
        # raises: 0.3 µs against 0.8 µs (timeit, the machine in README.md).
        if not os.access(path, os.F_OK):
            continue
        try:
            status = os.stat(path)
        except OSError:
            continue
        # A .git file names the git directory, so a change to it counts. A .git
        # directory's mtime changes with every ref update, so only its identity
        # counts.
        if stat.S_ISDIR(status.st_mode):
            return DotGit(path, (status.st_dev, status.st_ino))
        return DotGit(
            path, (status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size)
        )
    return None


def locate(directory: str) -> Location | None:
    """Run ``git rev-parse`` once in ``directory`` and return its repository.

    Returns None outside a working tree, for a repository whose refs this
    module cannot read, and when git is missing, fails or times out.
    """
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in _SCRUBBED_ENVIRONMENT
    }
    command = [
        "git",
        "rev-parse",
        "--show-toplevel",
        "--absolute-git-dir",
        "--git-common-dir",
    ]
    try:
        result = subprocess.run(
            command,
            cwd=directory,
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=LOCATE_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        _log.debug("cannot run git rev-parse in %s: %s", directory, exc)
        return None
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        _log.debug("git rev-parse failed in %s: %s", directory, message)
        return None

    lines = os.fsdecode(result.stdout).splitlines()
    if len(lines) != 3:
        _log.debug("unexpected git rev-parse output in %s: %r", directory, lines)
        return None
    top_level, git_dir, common_dir = lines
    # git prints the common directory relative to the working directory.
    common_dir = os.path.normpath(os.path.join(directory, common_dir))
    if os.path.isdir(os.path.join(common_dir, "reftable")):
        # NOTE: repositories created with --ref-format=reftable (git 2.45 and
        # later) keep their refs in a binary format that is not read here, so
        # they get no metadata.
        _log.debug("%s stores its refs as reftable, which is not supported", top_level)
        return None
    return Location(top_level, git_dir, common_dir)


def read_snapshot(location: Location, include_remote: bool) -> Snapshot:
    """Read the branch, commit and (optionally) the origin URL of ``location``.

    The metadata is None when HEAD is missing or malformed. A config file that
    cannot be read only leaves ``remote`` None.
    """
    reader = _FileReader()
    try:
        branch, commit = _read_head(reader, location)
    except (OSError, ValueError) as exc:
        _log.debug("cannot read HEAD of %s: %s", location.top_level, exc)
        return Snapshot(None, tuple(reader.files))

    metadata: dict[str, Any] = {"repository": os.path.basename(location.top_level)}
    if include_remote:
        metadata["remote"] = _read_remote(reader, location)
    metadata["branch"] = branch
    metadata["commit"] = commit
    return Snapshot(metadata, tuple(reader.files))


def file_signature(path: str) -> FileSignature:
    """Return the signature of the file at ``path``, or None if it is missing."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return _UNREADABLE
    return (status.st_ino, status.st_mtime_ns, status.st_size)


@dataclass
class _FileReader:
    """Reads files and records the signature each had when it was read."""

    files: list[tuple[str, FileSignature]] = field(default_factory=list)

    def read(self, path: str) -> bytes | None:
        """Return the contents of ``path``, or None if it does not exist.

        Raises OSError if the path cannot be read or is not a regular file.
        """
        try:
            # O_NONBLOCK keeps a FIFO planted in .git from blocking the logging
            # call. The regular-file check below then rejects it.
            fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
        except FileNotFoundError:
            self.files.append((path, None))
            return None
        except OSError:
            self.files.append((path, _UNREADABLE))
            raise
        try:
            with os.fdopen(fd, "rb") as file:
                status = os.fstat(fd)
                if not stat.S_ISREG(status.st_mode):
                    raise OSError(errno.EINVAL, "not a regular file", path)
                contents = file.read()
        except OSError:
            self.files.append((path, _UNREADABLE))
            raise
        self.files.append((path, (status.st_ino, status.st_mtime_ns, status.st_size)))
        return contents


def _read_head(
    reader: _FileReader, location: Location
) -> tuple[str | None, str | None]:
    """Return the branch (None when detached) and commit (None before the first)."""
    contents = reader.read(os.path.join(location.git_dir, "HEAD"))
    if contents is None:
        raise ValueError("HEAD is missing")
    head = contents.decode().strip()
    if _OBJECT_ID.fullmatch(head):
        return None, head
    if not head.startswith("ref:"):
        raise ValueError(f"HEAD contains neither a ref nor an object id: {head!r}")
    ref_name = head[4:].strip()
    branch = ref_name.removeprefix("refs/heads/")
    return branch, _resolve_ref(reader, location, ref_name)


def _resolve_ref(reader: _FileReader, location: Location, ref_name: str) -> str | None:
    """Return the object id that a ref points to, or None for an unborn branch.

    A loose ref file takes precedence over ``packed-refs``, as in git, and a
    symbolic ref is followed to its target.
    """
    for _ in range(_MAX_SYMREF_DEPTH):
        # The check keeps a crafted HEAD from pointing outside the repository.
        if not ref_name.startswith("refs/") or ".." in ref_name:
            raise ValueError(f"invalid ref name {ref_name!r}")
        if ref_name.startswith(_PER_WORKTREE_PREFIXES):
            directory = location.git_dir
        else:
            directory = location.common_dir
        contents = reader.read(os.path.join(directory, ref_name))
        if contents is None:
            return _packed_ref(reader, location, ref_name)
        value = contents.decode().strip()
        if _OBJECT_ID.fullmatch(value):
            return value
        if not value.startswith("ref:"):
            raise ValueError(f"ref {ref_name} contains {value!r}")
        ref_name = value[4:].strip()
    raise ValueError(f"symbolic refs nested more than {_MAX_SYMREF_DEPTH} deep")


def _packed_ref(reader: _FileReader, location: Location, ref_name: str) -> str | None:
    """Look a ref up in ``packed-refs``: lines of "<object id> <ref name>"."""
    contents = reader.read(os.path.join(location.common_dir, "packed-refs"))
    if contents is None:
        return None
    encoded_name = ref_name.encode()
    for line in contents.splitlines():
        # Comment lines start with "#", and "^" lines hold the peeled object
        # of the annotated tag on the line before.
        object_id, _, name = line.partition(b" ")
        if name == encoded_name:
            value = object_id.decode()
            if not _OBJECT_ID.fullmatch(value):
                raise ValueError(f"packed-refs has {value!r} for {ref_name}")
            return value
    return None


def _read_remote(reader: _FileReader, location: Location) -> str | None:
    try:
        contents = reader.read(os.path.join(location.common_dir, "config"))
    except OSError as exc:
        _log.debug("cannot read the git config of %s: %s", location.top_level, exc)
        return None
    if contents is None:
        return None
    url = origin_url(contents.decode(errors="replace"))
    return None if url is None else strip_credentials(url)
