"""Export leyline-usage entries as OpenTelemetry GenAI metrics and log records.

Installed, the package registers the ``otel`` plugin, whose sink records each
logged entry on the ``gen_ai.client.token.usage`` and
``gen_ai.client.operation.duration`` histograms and as one log record, and
exports them over OTLP/HTTP in the background. The functions here let an
application or a test choose the providers and flush them.
"""

from __future__ import annotations

from leyline_usage_otel.pipeline import (
    SettingsError,
    configure_providers,
    force_flush,
    reset_providers,
)
from leyline_usage_otel.version import __version__

__all__ = [
    "SettingsError",
    "__version__",
    "configure_providers",
    "force_flush",
    "reset_providers",
]
