"""Exceptions raised by leyline-usage.

Each one subclasses the nearest built-in type, so callers that already catch
``ValueError`` or ``OSError`` keep working.
"""

from __future__ import annotations

from pathlib import Path


class StorageError(OSError):
    """A log, lock or session file could not be written or read safely.

    Raised only by loggers created with ``strict=True``; the default logger
    records the failure through the ``leyline_usage`` logger and counts the
    dropped entry instead.
    """

    def __init__(self, path: Path | str, cause: str) -> None:
        super().__init__(f"{path}: {cause}")
        self.path = Path(path)
        self.cause = cause


class PricingError(ValueError):
    """A pricing table is malformed; the message names the file and the key."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        # "-" stands for the whole file, as for a file that cannot be read.
        where = source if key == "-" else f"{source}: {key}"
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem
