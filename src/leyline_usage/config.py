"""The user's configuration file: defaults, plugins, sink settings and prices.

The file is TOML, at ``$LEYLINE_USAGE_CONFIG`` or ``config.toml`` in the
platformdirs user config directory (``~/.config/leyline-usage`` on Linux).
A missing file means defaults. ``leyline-usage config init`` writes a
commented one.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from leyline_usage.errors import PricingError
from leyline_usage.pricing import ModelPrices, parse_models, read_table
from leyline_usage.segments import parse_duration

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_ENV = "LEYLINE_USAGE_CONFIG"


class ConfigError(ValueError):
    """The config file is malformed; the message names the file, line and key."""


@dataclass
class Config:
    """Settings read from the config file; every field has a default."""

    path: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)
    session_timeout: float | None = None
    fallback_rate: Decimal | None = None
    chain: bool = False
    rotate_bytes: int | None = None
    rotate_age: float | None = None
    enabled_plugins: list[str] | None = None
    disabled_plugins: list[str] = field(default_factory=list)
    pricing_models: list[ModelPrices] = field(default_factory=list)
    error: str | None = None

    def plugin_settings(self, name: str) -> dict[str, Any]:
        """Return the ``[plugins.NAME]`` table, or an empty dict.

        Numbers with a fraction arrive as :class:`~decimal.Decimal`, because the
        file is parsed with ``parse_float=Decimal`` to keep prices exact.
        """
        section = self.data.get("plugins", {}).get(name, {})
        return section if isinstance(section, dict) else {}


def config_path() -> Path:
    """Return the config file's path: ``$LEYLINE_USAGE_CONFIG`` or the default."""
    configured = os.environ.get(CONFIG_ENV)
    if configured:
        return Path(configured).expanduser()
    return platformdirs.user_config_path("leyline-usage") / "config.toml"


def load_config(path: Path | None = None) -> Config:
    """Read the config file, or return defaults if there is none.

    A malformed file does not raise here: the returned config carries the
    problem in ``error`` and no user prices, so callers can decide whether to
    fail (the CLI and strict loggers) or go on unpriced (the default logger).
    """
    path = path or config_path()
    try:
        return parse_config(path)
    except ConfigError as exc:
        return Config(path=path, error=str(exc))


def parse_config(path: Path) -> Config:
    """Read and validate the config file at ``path``, raising ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config(path=None)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc

    config = Config(path=path, data=data)
    logging_section = _table(data, "logging", path, text)
    config.session_timeout = _number(logging_section, "session_timeout", path, text)
    rate = _number(logging_section, "fallback_rate", path, text)
    config.fallback_rate = None if rate is None else Decimal(str(rate))
    chain = logging_section.get("chain", False)
    if not isinstance(chain, bool):
        raise ConfigError(
            f"{path}, line {_line_of(text, 'chain')}: logging.chain: "
            f"must be true or false, got {chain!r}"
        )
    config.chain = chain
    rotate_bytes = _number(logging_section, "rotate_bytes", path, text)
    config.rotate_bytes = None if rotate_bytes is None else int(rotate_bytes)
    config.rotate_age = _duration(logging_section, "rotate_age", path, text)
    plugins = _table(data, "plugins", path, text)
    config.enabled_plugins = _names(plugins, "enabled", path, text)
    config.disabled_plugins = _names(plugins, "disabled", path, text) or []
    config.pricing_models = _pricing(_table(data, "pricing", path, text), path, text)
    return config


def _table(data: dict[str, Any], key: str, path: Path, text: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}, line {_line_of(text, key)}: {key}: must be a table")
    return value


def _number(section: dict[str, Any], key: str, path: Path, text: str) -> float | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or value < 0:
        raise ConfigError(
            f"{path}, line {_line_of(text, key)}: logging.{key}: "
            f"must be a non-negative number, got {value!r}"
        )
    return float(value)


def _duration(section: dict[str, Any], key: str, path: Path, text: str) -> float | None:
    value = section.get(key)
    if value is None:
        return None
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise ConfigError(
            f"{path}, line {_line_of(text, key)}: logging.{key}: {exc}"
        ) from None


def _names(
    section: dict[str, Any], key: str, path: Path, text: str
) -> list[str] | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"{path}, line {_line_of(text, key)}: plugins.{key}: "
            'must be a list of plugin names, e.g. ["sqlite"]'
        )
    return list(value)


def _pricing(section: dict[str, Any], path: Path, text: str) -> list[ModelPrices]:
    models: list[ModelPrices] = []
    tables = section.get("tables", [])
    if not isinstance(tables, list) or not all(isinstance(t, str) for t in tables):
        raise ConfigError(
            f"{path}, line {_line_of(text, 'tables')}: pricing.tables: "
            "must be a list of TOML file paths"
        )
    for table in tables:
        table_path = Path(table).expanduser()
        if not table_path.is_absolute():
            table_path = path.parent / table_path
        try:
            models.extend(read_table(table_path))
        except PricingError as exc:
            where = f"{path}, line {_line_of(text, 'tables')}"
            raise ConfigError(f"{where}: pricing.tables: {exc}") from exc
    try:
        if "models" in section:
            provider = str(section.get("provider", "user"))
            models.extend(parse_models(str(path), text, provider, section["models"]))
    except PricingError as exc:
        raise ConfigError(str(exc)) from exc
    return models


def _line_of(text: str, key: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith((f"{key} ", f"{key}=", f"[{key}]")):
            return number
    return 1


DEFAULT_CONFIG = {
    "logging": {"session_timeout": 3600, "fallback_rate": 0.5},
    "plugins": {"disabled": []},
    "pricing": {"tables": []},
}

_COMMENTS = {
    "logging": (
        "# Seconds without activity after which the next entry starts a new\n"
        "# session, and the USD price per million tokens of entries that no\n"
        "# pricing table can price. Uncomment to rotate logs past a size or an\n"
        "# age, and to hash-chain every entry for leyline-usage verify.\n"
        "# rotate_bytes = 50_000_000\n"
        '# rotate_age = "30d"\n'
        "# chain = true"
    ),
    "plugins": (
        "# Plugins load from the leyline_usage entry-point group. Uncomment\n"
        "# 'enabled' to load only the listed third-party plugins. 'disabled'\n"
        '# turns off any plugin by name, built-in ones too ("redact_secrets").\n'
        '# enabled = ["sqlite"]'
    ),
    "pricing": (
        "# Extra pricing tables, in the schema of the bundled pricing/*.toml\n"
        "# files. Their models are added, or replace a bundled model of the same\n"
        '# id. Prices may also go here directly, as [pricing.models."MODEL-ID"].'
    ),
}

_TRAILERS = {
    "plugins": (
        "\n# Settings of a plugin go in a table named after it, for example:\n"
        "# [plugins.sqlite]\n"
        '# path = "~/.claude/leyline/usage/usage.sqlite3"\n'
    ),
}


def default_config_text() -> str:
    """Return the commented default config file."""
    parts = ["# leyline-usage configuration. Every setting is optional.\n"]
    for section, values in DEFAULT_CONFIG.items():
        header, _, body = tomli_w.dumps({section: values}).partition("\n")
        parts.append(f"\n{header}\n{_COMMENTS[section]}\n{body}")
        parts.append(_TRAILERS.get(section, ""))
    return "".join(parts)
