"""Every CLI command end to end, each run as a separate process."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLAUDE_CODE_SAMPLES, ORIGINAL_FORMAT, run_cli

from leyline_usage.cli._query import _money


@pytest.fixture
def imported(storage: Path) -> Path:
    """A storage directory with the sample transcripts imported."""
    result = run_cli("import", "claude-code", CLAUDE_CODE_SAMPLES, "--dir", storage)
    assert result.returncode == 0, result.stderr
    return storage


def test_console_scripts_installed() -> None:
    bin_dir = Path(sys.executable).parent
    for name in ("leyline-usage", "usage-logger"):
        script = shutil.which(name, path=str(bin_dir)) or shutil.which(name)
        assert script is not None, name
        result = subprocess.run(
            [script, "--help"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0
        assert "summary" in result.stdout


def test_import_reports_counts(storage: Path) -> None:
    first = run_cli(
        "import", "claude-code", CLAUDE_CODE_SAMPLES, "--dir", storage, "--json"
    )
    second = run_cli(
        "import", "claude-code", CLAUDE_CODE_SAMPLES, "--dir", storage, "--json"
    )

    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["added"] == 325
    assert json.loads(second.stdout)["added"] == 0
    assert json.loads(second.stdout)["already_present"] == 325


def test_summary_json_total(imported: Path) -> None:
    result = run_cli("summary", "--dir", imported, "--days", "100000", "--json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["total_operations"] == 325
    assert round(summary["estimated_cost"], 2) == 23.23


def test_summary_table_for_people(imported: Path) -> None:
    result = run_cli("summary", "--dir", imported, "--days", "100000")

    assert result.returncode == 0, result.stderr
    assert "total_operations" in result.stdout
    assert "claude-opus-4-6" in result.stdout
    assert "23.23" in result.stdout


def test_log_then_recent(storage: Path) -> None:
    logged = run_cli(
        "log", "my-plugin", "summarize", "--model", "claude-opus-4-6",
        "--input", "1000", "--output", "200", "--duration", "1.5",
        "--metadata", '{"files": 3}', "--dir", storage, "--json",
    )  # fmt: skip
    recent = run_cli("recent", "--dir", storage, "--json")

    assert logged.returncode == 0, logged.stderr
    entry = json.loads(logged.stdout)
    assert entry["tokens"] == 1200
    assert entry["metadata"] == {"files": 3}
    assert [e["id"] for e in json.loads(recent.stdout)] == [entry["id"]]


def test_recent_csv(storage: Path) -> None:
    run_cli("log", "svc", "a", "--tokens", "5", "--dir", storage)
    run_cli("log", "svc", "b", "--tokens", "7", "--dir", storage)

    result = run_cli("recent", "--dir", storage, "--csv")

    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["operation"] for row in rows] == ["a", "b"]
    assert [row["tokens"] for row in rows] == ["5", "7"]


def test_errors_command(storage: Path) -> None:
    run_cli("log", "svc", "ok", "--dir", storage)
    run_cli(
        "log",
        "svc",
        "boom",
        "--error-type",
        "TimeoutError",
        "--error-message",
        "slow",
        "--dir",
        storage,
    )

    table = run_cli("errors", "--dir", storage)
    data = run_cli("errors", "--dir", storage, "--json")

    assert table.returncode == 0
    assert "TimeoutError" in table.stdout
    assert [e["operation"] for e in json.loads(data.stdout)] == ["boom"]


def test_sessions_and_session(imported: Path) -> None:
    listing = run_cli("sessions", "--dir", imported, "--json")
    sessions = json.loads(listing.stdout)
    first = sessions[0]["session_id"]

    one = run_cli("session", first, "--dir", imported, "--json")
    table = run_cli("session", "--dir", imported)

    assert listing.returncode == 0
    assert sum(s["total_operations"] for s in sessions) == 325
    detail = json.loads(one.stdout)
    assert detail["session_id"] == first
    assert len(detail["operations"]) == detail["total_operations"]
    assert table.returncode == 0
    assert "OPERATION" in table.stdout


def test_service_filter(storage: Path) -> None:
    run_cli("log", "alpha", "x", "--tokens", "1", "--dir", storage)
    run_cli("log", "beta", "y", "--tokens", "2", "--dir", storage)

    result = run_cli("summary", "--dir", storage, "--service", "beta", "--json")

    assert json.loads(result.stdout)["total_tokens"] == 2


def test_original_format_directory(storage: Path) -> None:
    shutil.copytree(ORIGINAL_FORMAT, storage)

    result = run_cli("summary", "--dir", storage, "--days", "100000", "--json")

    assert json.loads(result.stdout)["total_tokens"] == 7000


def test_storage_dir_from_environment(storage: Path) -> None:
    run_cli("log", "svc", "op", env={"LEYLINE_USAGE_DIR": str(storage)})

    assert (storage / "svc.jsonl").exists()


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        (["log", "../escape", "op"], "service name '../escape' is invalid"),
        (
            ["log", "svc", "op", "--tokens", "-3"],
            "tokens must be a non-negative integer",
        ),
        (["log", "svc", "op", "--metadata", "[1]"], "--metadata must be a JSON object"),
        (["log", "svc", "op", "--metadata", "{bad"], "is not valid JSON"),
        (["recent", "--hours", "-1"], "--hours must be zero or more"),
        (["summary", "--fallback-rate", "cheap"], "cheap"),
        (["session", "no-such-session"], "session 'no-such-session' not found"),
        (["frobnicate"], "invalid choice"),
        (["import", "claude-code", "/no/such/path"], "not found"),
    ],
)
def test_bad_usage_exits_2_with_one_line(
    storage: Path, arguments: list[str], needle: str
) -> None:
    if arguments[0] != "frobnicate":
        arguments = [*arguments, "--dir", str(storage)]

    result = run_cli(*arguments)

    assert result.returncode == 2
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_storage_failure_exits_1(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")

    result = run_cli("log", "svc", "op", "--dir", blocker / "sub")

    assert result.returncode == 1
    assert "error:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "command", ["log", "recent", "summary", "errors", "sessions", "session", "import"]
)
def test_every_command_has_help(command: str) -> None:
    result = run_cli(command, "--help")

    assert result.returncode == 0
    assert "--dir" in result.stdout


def test_prices_list_and_show() -> None:
    listing = run_cli("prices", "list", "--json")
    show = run_cli("prices", "show", "claude-sonnet-4-5-20250929")
    shown = run_cli("prices", "show", "claude-sonnet-4-5", "--json")

    models = {m["model"] for m in json.loads(listing.stdout)}
    assert {"claude-opus-4-6", "gpt-4o", "gemini-2.5-pro"} <= models
    assert show.returncode == 0
    assert "above 200,000 input tokens" in show.stdout
    data = json.loads(shown.stdout)
    assert data["periods"][0]["source"].startswith("https://")
    assert data["periods"][0]["tiers"][0]["above_input_tokens"] == 200000


def test_prices_cost_names_period_and_tier() -> None:
    base = run_cli(
        "prices",
        "cost",
        "claude-sonnet-4-5",
        "--input",
        "1000",
        "--output",
        "1000",
        "--json",
    )
    tiered = run_cli(
        "prices", "cost", "claude-sonnet-4-5", "--input", "150000", "--cache-read", "60000",
        "--output", "1000", "--at", "2026-01-15",
    )  # fmt: skip

    assert json.loads(base.stdout)["cost_usd"] == "0.018"
    assert json.loads(base.stdout)["tier_above_input_tokens"] is None
    assert tiered.returncode == 0
    assert "long-context tier above 200,000" in tiered.stdout
    assert "period from 2025-09-29" in tiered.stdout
    assert "anthropic.toml" in tiered.stdout


def test_prices_bad_input() -> None:
    unknown = run_cli("prices", "cost", "no-such-model", "--input", "5")
    negative = run_cli("prices", "cost", "claude-opus-4-6", "--input", "-5")
    bad_date = run_cli("prices", "cost", "claude-opus-4-6", "--at", "yesterday")

    assert unknown.returncode == 2
    assert "no-such-model" in unknown.stderr
    assert negative.returncode == 2
    assert "--input must be zero or more" in negative.stderr
    assert bad_date.returncode == 2
    assert "yesterday" in bad_date.stderr


def test_session_id_from_environment_across_processes(storage: Path) -> None:
    env = {"LEYLINE_SESSION_ID": "pipeline-42"}

    run_cli("log", "alpha", "fetch", "--dir", storage, env=env)
    run_cli("log", "beta", "rank", "--dir", storage, env=env)
    sessions = json.loads(run_cli("sessions", "--dir", storage, "--json").stdout)

    assert [s["session_id"] for s in sessions] == ["pipeline-42"]
    assert sessions[0]["services"] == ["alpha", "beta"]
    assert sessions[0]["total_operations"] == 2


def test_small_costs_keep_four_decimals(storage: Path) -> None:
    logged = run_cli(
        "log", "my-plugin", "plan", "--model", "claude-opus-4-6",
        "--input", "500", "--dir", storage,
    )  # fmt: skip
    assert logged.returncode == 0, logged.stderr

    result = run_cli("summary", "--dir", storage)

    assert result.returncode == 0, result.stderr
    assert "$0.0025" in result.stdout
    assert "$0.00 " not in result.stdout


def test_unknown_service_noted(storage: Path) -> None:
    logged = run_cli("log", "my-plugin", "plan", "--dir", storage)
    assert logged.returncode == 0, logged.stderr

    result = run_cli("errors", "--dir", storage, "--service", "no-such-service")

    assert result.returncode == 0, result.stderr
    assert "no log for service 'no-such-service'" in result.stderr


def test_session_table_lists_services_plainly(storage: Path) -> None:
    logged = run_cli("log", "my-plugin", "plan", "--dir", storage)
    assert logged.returncode == 0, logged.stderr

    result = run_cli("session", "--dir", storage)

    assert result.returncode == 0, result.stderr
    assert "my-plugin" in result.stdout
    assert "['my-plugin']" not in result.stdout


@pytest.mark.parametrize(
    ("amount", "text"),
    [(0.0, "0.00"), (1234.5, "1,234.50"), (0.99996, "1.00"), (0.0025, "0.0025"),
     (0.000007, "0.000007")],
)  # fmt: skip
def test_money_shows_small_amounts(amount: float, text: str) -> None:
    assert _money(amount) == text


def test_service_named_twice_counted_once(storage: Path) -> None:
    logged = run_cli("log", "my-plugin", "plan", "--tokens", "5", "--dir", storage)
    assert logged.returncode == 0, logged.stderr

    result = run_cli(
        "summary", "--dir", storage, "-s", "my-plugin", "-s", "my-plugin", "--json"
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["total_operations"] == 1
