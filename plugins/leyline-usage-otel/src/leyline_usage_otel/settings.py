"""The ``[plugins.otel]`` table of the leyline-usage config file, validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

SETTINGS_NAME = "otel"
DEFAULT_SERVICE_NAME = "leyline-usage"

_KEYS = (
    "endpoint",
    "headers",
    "timeout",
    "export_interval",
    "service_name",
    "providers",
)


@dataclass(frozen=True)
class OtelSettings:
    """Export settings, where None means the OpenTelemetry environment variable applies.

    ``endpoint`` is the OTLP/HTTP base URL, to which ``/v1/metrics`` and
    ``/v1/logs`` are appended. ``timeout`` and ``export_interval`` are seconds.
    ``providers`` maps a model id prefix to a ``gen_ai.provider.name`` value and
    is consulted before the built-in prefixes.
    """

    endpoint: str | None = None
    headers: Mapping[str, str] | None = None
    timeout: float | None = None
    export_interval: float | None = None
    service_name: str | None = None
    providers: Mapping[str, str] = field(default_factory=dict)


def parse_settings(table: Mapping[str, Any]) -> OtelSettings:
    """Validate ``[plugins.otel]``, raising ValueError that names the first bad key."""
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ValueError(
            f"plugins.{SETTINGS_NAME}: unknown key {unknown[0]!r}. "
            f"Valid keys are {', '.join(_KEYS)}."
        )
    return OtelSettings(
        endpoint=_endpoint(table.get("endpoint")),
        headers=_string_table("headers", table.get("headers")),
        timeout=_seconds("timeout", table.get("timeout")),
        export_interval=_seconds("export_interval", table.get("export_interval")),
        service_name=_text("service_name", table.get("service_name")),
        providers=_string_table("providers", table.get("providers")) or {},
    )


def _endpoint(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(
            f"plugins.{SETTINGS_NAME}.endpoint: must be an http:// or https:// URL "
            f'such as "http://127.0.0.1:4318", got {value!r}'
        )
    return value.rstrip("/")


def _seconds(key: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError(
            f"plugins.{SETTINGS_NAME}.{key}: must be a number of seconds, got {value!r}"
        )
    seconds = float(value)
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(
            f"plugins.{SETTINGS_NAME}.{key}: must be a positive, finite number "
            f"of seconds, got {value!r}"
        )
    return seconds


def _text(key: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"plugins.{SETTINGS_NAME}.{key}: must be a non-empty string, got {value!r}"
        )
    return value


def _string_table(key: str, value: object) -> dict[str, str] | None:
    # The messages name types, never values, because headers may carry secrets.
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(
            f"plugins.{SETTINGS_NAME}.{key}: must be a table of strings such as "
            f'{key} = {{ "name" = "value" }}, got a {type(value).__name__}'
        )
    for name, item in value.items():
        if not isinstance(item, str):
            raise ValueError(
                f"plugins.{SETTINGS_NAME}.{key}.{name}: must be a string, "
                f"got a {type(item).__name__}"
            )
    return dict(value)
