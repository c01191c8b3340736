"""Storage locations of usage files, and opening them without trusting the directory."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from leyline_usage.errors import StorageError

STORAGE_DIR_ENV = "LEYLINE_USAGE_DIR"

# Letters, digits, '.', '_' and '-', so a name can never carry a path separator
# or become '..'; the leading-dot rule keeps hidden files and '.' itself out.
_SERVICE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")

# O_NOFOLLOW makes open() fail on a symlink planted at the final path component;
# O_CLOEXEC keeps descriptors out of subprocesses that the host tool starts.
# O_NONBLOCK keeps open() from hanging on a FIFO planted at the path; the
# fstat check below then rejects it. Regular files ignore the flag.
_OPEN_FLAGS = os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK

FILE_MODE = 0o600
DIR_MODE = 0o700


def default_storage_dir() -> Path:
    """Return ``$LEYLINE_USAGE_DIR``, or ``~/.claude/leyline/usage`` if it is unset."""
    configured = os.environ.get(STORAGE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".claude" / "leyline" / "usage"


def validate_service_name(service: object) -> str:
    """Return ``service`` unchanged if it is a safe file name, else raise ValueError."""
    if not isinstance(service, str) or not _SERVICE_NAME.fullmatch(service):
        raise ValueError(
            f"service name {service!r} is invalid: use 1 to 128 letters, digits, "
            "'.', '_' or '-', not starting with '.'"
        )
    return service


def ensure_storage_dir(directory: Path) -> Path:
    """Create ``directory`` (owner-only) if it is missing and return it."""
    try:
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            directory, f"cannot create storage directory: {exc}"
        ) from exc
    if directory.is_symlink():
        raise StorageError(
            directory, "storage directory is a symlink; refusing to follow it"
        )
    if not directory.is_dir():
        raise StorageError(directory, "storage path is not a directory")
    return directory


def open_private(path: Path, flags: int) -> int:
    """Open ``path`` owner-only, refusing symlinks and anything but a regular file."""
    try:
        fd = os.open(path, flags | _OPEN_FLAGS, FILE_MODE)
    except OSError as exc:
        if _is_symlink(path):
            raise StorageError(path, "refusing to follow a symlink; remove it") from exc
        raise StorageError(path, f"cannot open: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StorageError(path, "not a regular file; remove it")
    return fd


def _is_symlink(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def open_for_reading(path: Path) -> int | None:
    """Open a log or index for reading, or return None if it does not exist.

    Like :func:`open_private`, this refuses symlinks and anything but a
    regular file, and never blocks on a FIFO.
    """
    try:
        return open_private(path, os.O_RDONLY)
    except StorageError:
        if not os.path.lexists(path):
            return None
        raise
