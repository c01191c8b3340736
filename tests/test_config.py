"""The config file: defaults, errors with file and line, and user prices."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import tomllib
from conftest import run_cli

from leyline_usage import ConfigError, UsageLogger
from leyline_usage.config import load_config, parse_config
from leyline_usage.plugins import reset_plugin_manager

USER_PRICES = """
[logging]
session_timeout = 120
fallback_rate = 2.0

[pricing.models."house-model"]
[[pricing.models."house-model".periods]]
effective_from = 2025-01-01
source = "https://example.com/internal-prices"
checked = 2025-01-01
input = 1.0
output = 2.0

[pricing.models."claude-opus-4-6"]
[[pricing.models."claude-opus-4-6".periods]]
effective_from = 2025-01-01
source = "https://example.com/negotiated"
checked = 2025-01-01
input = 4.0
output = 20.0
"""

HOUSE_TABLE = """
provider = "house"

[models."house-model"]
[[models."house-model".periods]]
effective_from = 2025-01-01
source = "https://example.com/internal-prices"
checked = 2025-01-01
input = 1.0
output = 2.0
"""


@pytest.fixture
def config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None
) -> Path:
    path = tmp_path / "config.toml"
    monkeypatch.setenv("LEYLINE_USAGE_CONFIG", str(path))
    return path


def test_missing_file_means_defaults(config_file: Path) -> None:
    config = load_config()

    assert config.path is None
    assert config.error is None
    assert config.session_timeout is None


def test_user_prices_add_and_override(config_file: Path, storage: Path) -> None:
    config_file.write_text(USER_PRICES)
    logger = UsageLogger("svc", storage_dir=storage)

    house = logger.log_usage("a", model="house-model", input_tokens=1_000_000)
    opus = logger.log_usage("b", model="claude-opus-4-6", input_tokens=1_000_000)
    unknown = logger.log_usage("c", model="mystery", tokens=1_000_000)

    assert house is not None
    assert opus is not None
    assert unknown is not None
    assert house["cost_usd"] == 1.0
    assert opus["cost_usd"] == 4.0
    assert logger.get_usage_summary()["estimated_cost"] == pytest.approx(
        1.0 + 4.0 + 2.0
    )
    assert logger._sessions.timeout == 120


def test_prices_cost_names_user_table(config_file: Path) -> None:
    config_file.write_text(USER_PRICES)

    result = run_cli(
        "prices", "cost", "claude-opus-4-6", "--input", "1000000", "--json"
    )

    data = json.loads(result.stdout)
    assert data["cost_usd"] == "4"
    assert data["table"] == str(config_file)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[logging\n", "invalid TOML"),
        ("[logging]\nsession_timeout = 'long'\n", "line 2: logging.session_timeout"),
        ("\n[plugins]\nenabled = 'sqlite'\n", "line 3: plugins.enabled"),
        (
            "[pricing.models.x]\n[[pricing.models.x.periods]]\nsource='s'\n",
            "line 1: models.x.periods[0].effective_from",
        ),
        ("[pricing]\ntables = ['missing.toml']\n", "missing.toml: cannot read"),
    ],
)
def test_malformed_config_names_file_line_key(
    config_file: Path, text: str, fragment: str
) -> None:
    config_file.write_text(text)

    with pytest.raises(ConfigError) as raised:
        parse_config(config_file)

    assert str(config_file.name) in str(raised.value)
    assert fragment in str(raised.value)


def test_broken_config_logs_unpriced(config_file: Path, storage: Path) -> None:
    config_file.write_text(USER_PRICES + "\n[logging\n")

    entry = UsageLogger("svc", storage_dir=storage).log_usage(
        "op", model="claude-opus-4-6", input_tokens=1000
    )

    assert entry is not None
    assert "cost_usd" not in entry
    with pytest.raises(ConfigError, match="invalid TOML"):
        UsageLogger("svc", storage_dir=storage, strict=True)


def test_cli_reports_broken_config(config_file: Path) -> None:
    config_file.write_text("[logging]\nfallback_rate = -1\n")

    result = run_cli("prices", "list")
    logged = run_cli("log", "svc", "op", "--dir", config_file.parent / "usage")
    check = run_cli("config", "check")

    assert result.returncode == 2
    assert "logging.fallback_rate" in result.stderr
    assert logged.returncode == 2
    assert len(logged.stderr.strip().splitlines()) == 1
    assert check.returncode == 2
    assert "line 2" in check.stderr


def test_config_init_writes_valid_commented_file(config_file: Path) -> None:
    first = run_cli("config", "init")
    second = run_cli("config", "init")

    assert first.returncode == 0, first.stderr
    text = config_file.read_text()
    assert text.count("#") > 5
    assert tomllib.loads(text)["logging"]["session_timeout"] == 3600
    assert config_file.stat().st_mode & 0o777 == 0o600
    assert second.returncode == 2
    assert "--force" in second.stderr
    assert parse_config(config_file).error is None


def test_session_timeout_from_config(config_file: Path, storage: Path) -> None:
    config_file.write_text("[logging]\nsession_timeout = 1\n")
    logger = UsageLogger("svc", storage_dir=storage)
    first = logger.log_usage("a")
    state = storage / "svc_session.json"
    data = json.loads(state.read_text())
    data["last_activity"] -= 10
    state.write_text(json.dumps(data))
    past = time.time() - 10
    import os

    os.utime(storage / "svc.jsonl", (past, past))
    time.sleep(1.1)

    second = logger.log_usage("b")

    assert first is not None and second is not None
    assert first["session_id"] != second["session_id"]


def test_fingerprint_ignores_later_config_edits(
    config_file: Path, storage: Path
) -> None:
    config_file.write_text(USER_PRICES)
    logger = UsageLogger("svc", storage_dir=storage)
    logger.log_usage("a", tokens=10, model="house-model")
    first = logger.pricer.fingerprint()

    # An edit after the process loaded its prices does not change them, so
    # indexes it saves must not claim the new prices.
    config_file.write_text(USER_PRICES.replace("input = 1.0", "input = 9.0"))

    assert logger.pricer.fingerprint() == first
    reset_plugin_manager()
    assert UsageLogger("svc", storage_dir=storage).pricer.fingerprint() != first


def test_fingerprint_follows_table_files_read(config_file: Path, storage: Path) -> None:
    table = config_file.parent / "extra.toml"
    table.write_text(HOUSE_TABLE)
    config_file.write_text('[pricing]\ntables = ["extra.toml"]\n')
    first = UsageLogger("svc", storage_dir=storage).pricer.fingerprint()

    table.write_text(HOUSE_TABLE.replace("input = 1.0", "input = 9.0"))

    assert UsageLogger("svc", storage_dir=storage).pricer.fingerprint() == first
    reset_plugin_manager()
    assert UsageLogger("svc", storage_dir=storage).pricer.fingerprint() != first
