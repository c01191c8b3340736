"""Session-aware usage logging for LLM tools and plugins.

Every operation goes into an append-only JSONL log per service, grouped into
sessions and priced from TOML tables::

    from leyline_usage import UsageLogger

    logger = UsageLogger("my-plugin")
    logger.log_usage(
        "summarize", model="claude-sonnet-4-5", input_tokens=1200, output_tokens=300
    )
    logger.get_usage_summary(days=7)
"""

from __future__ import annotations

from leyline_usage.config import Config, ConfigError
from leyline_usage.errors import PricingError, StorageError
from leyline_usage.hookspecs import hookimpl, hookspec
from leyline_usage.logger import UsageLogger
from leyline_usage.tracking import Tracked

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "PricingError",
    "StorageError",
    "Tracked",
    "UsageLogger",
    "__version__",
    "hookimpl",
    "hookspec",
]
