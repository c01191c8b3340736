"""Compatibility import path of the original leyline usage logger.

``from leyline.usage_logger import UsageLogger`` keeps working for existing
callers; the implementation lives in :mod:`leyline_usage`.
"""

from __future__ import annotations

from leyline_usage.entry import Entry as LogEntry
from leyline_usage.logger import UsageLogger

__all__ = ["LogEntry", "UsageLogger"]
