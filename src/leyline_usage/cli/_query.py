"""Query commands: recent, summary, errors, sessions and session."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from leyline_usage.cli._output import Column, emit, write_table
from leyline_usage.entry import Entry
from leyline_usage.index import failures_of, sessions_of, summary_of
from leyline_usage.paths import default_storage_dir
from leyline_usage.plugins import plugin_manager
from leyline_usage.query import (
    DEFAULT_FALLBACK_RATE,
    Pricer,
    cutoff_timestamp,
    session_stats_dict,
    session_totals,
    since,
)
from leyline_usage.reader import ReadStats, iter_entries, service_logs

OPERATION_COLUMNS: list[Column] = [
    ("timestamp", "TIME (UTC)"),
    ("service", "SERVICE"),
    ("session_id", "SESSION"),
    ("operation", "OPERATION"),
    ("model", "MODEL"),
    ("tokens", "TOKENS"),
    ("cost_usd", "COST $"),
    ("duration_seconds", "SECONDS"),
    ("success", "STATUS"),
]
ERROR_COLUMNS: list[Column] = [
    ("timestamp", "TIME (UTC)"),
    ("service", "SERVICE"),
    ("operation", "OPERATION"),
    ("error_type", "ERROR"),
    ("error_message", "MESSAGE"),
]
SESSION_COLUMNS: list[Column] = [
    ("session_id", "SESSION"),
    ("services", "SERVICES"),
    ("first_timestamp", "STARTED (UTC)"),
    ("last_timestamp", "LAST (UTC)"),
    ("total_operations", "OPS"),
    ("failed_operations", "FAILED"),
    ("total_tokens", "TOKENS"),
    ("estimated_cost", "COST $"),
]


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register the query subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir",
        type=Path,
        help="storage directory (default: $LEYLINE_USAGE_DIR or "
        "~/.claude/leyline/usage)",
    )
    common.add_argument(
        "-s",
        "--service",
        action="append",
        help="only this service; repeat for several (default: all)",
    )
    formats = common.add_mutually_exclusive_group()
    formats.add_argument(
        "--json", dest="format", action="store_const", const="json", help="print JSON"
    )
    formats.add_argument(
        "--csv", dest="format", action="store_const", const="csv", help="print CSV"
    )
    common.set_defaults(format="table")
    # Summaries price entries of models missing from every table at a flat rate.
    priced = argparse.ArgumentParser(add_help=False)
    priced.add_argument(
        "--fallback-rate",
        help="USD per million tokens for unpriced models "
        "(default: the config file's, else 0.50)",
    )

    recent = commands.add_parser(
        "recent", parents=[common], help="operations of the last hours"
    )
    recent.add_argument(
        "--hours", type=float, default=24.0, help="how far back, in hours (default: 24)"
    )
    recent.add_argument(
        "--limit",
        type=int,
        default=50,
        help="show only the newest N; 0 shows all (default: 50)",
    )
    recent.set_defaults(run=run_recent)

    summary = commands.add_parser(
        "summary", parents=[common, priced], help="totals over the last days"
    )
    summary.add_argument(
        "--days", type=float, default=7.0, help="how far back, in days (default: 7)"
    )
    summary.add_argument(
        "--all", action="store_true", help="every entry, however old (overrides --days)"
    )
    summary.set_defaults(run=run_summary)

    errors = commands.add_parser(
        "errors", parents=[common], help="the most recent failed operations"
    )
    errors.add_argument("--count", type=int, default=10, help="how many (default: 10)")
    errors.set_defaults(run=run_errors)

    sessions = commands.add_parser(
        "sessions", parents=[common, priced], help="every session with its totals"
    )
    sessions.set_defaults(run=run_sessions)

    session = commands.add_parser(
        "session", parents=[common, priced], help="one session's totals and operations"
    )
    session.add_argument(
        "session_id", nargs="?", help="session id (default: the most recent session)"
    )
    session.set_defaults(run=run_session)


def _pricer(args: argparse.Namespace) -> Pricer:
    rate = getattr(args, "fallback_rate", None) or plugin_manager().config.fallback_rate
    return Pricer(DEFAULT_FALLBACK_RATE if rate is None else rate)


def _logs(args: argparse.Namespace) -> list[Path]:
    directory = args.dir or default_storage_dir()
    logs = service_logs(directory, args.service)
    for service in args.service or ():
        if not any(path.exists() for path in service_logs(directory, [service])):
            print(
                f"note: no log for service {service!r} in {directory}", file=sys.stderr
            )
    return logs


def _entries(args: argparse.Namespace, stats: ReadStats) -> Iterator[Entry]:
    return iter_entries(_logs(args), stats)


def _report_skipped(stats: ReadStats) -> None:
    if stats.skipped_lines:
        print(
            f"note: skipped {stats.skipped_lines} unreadable line(s)", file=sys.stderr
        )


def run_recent(args: argparse.Namespace) -> int:
    """Print the operations of the last ``--hours`` hours."""
    _require_non_negative("--hours", args.hours)
    _require_non_negative("--limit", args.limit)
    stats = ReadStats()
    rows = list(since(_entries(args, stats), cutoff_timestamp(args.hours * 3600)))
    rows.sort(key=lambda entry: entry["timestamp"])
    if args.limit:
        rows = rows[-args.limit :]
    emit(rows, args.format, rows, OPERATION_COLUMNS)
    _report_skipped(stats)
    return 0


def run_summary(args: argparse.Namespace) -> int:
    """Print totals over the last ``--days`` days."""
    _require_non_negative("--days", args.days)
    cutoff = "" if args.all else cutoff_timestamp(args.days * 86400)
    totals, skipped = summary_of(_logs(args), cutoff, _pricer(args))
    summary = totals.as_dict()
    summary["skipped_lines"] = skipped
    summary["days"] = None if args.all else args.days
    if args.format == "table" and summary["days"] is not None:
        summary["days"] = f"{args.days:g}"
    rows = [
        {"metric": k, "value": v} for k, v in summary.items() if k != "cost_by_model"
    ]
    if args.format != "table":
        rows += [
            {"metric": f"cost_usd[{m}]", "value": c}
            for m, c in summary["cost_by_model"].items()
        ]
        emit(summary, args.format, rows, [("metric", "METRIC"), ("value", "VALUE")])
        return 0
    write_table(_readable(rows), [("metric", "METRIC"), ("value", "VALUE")], sys.stdout)
    if summary["cost_by_model"]:
        print()
        models = [
            {"model": model, "cost": _money(cost)}
            for model, cost in summary["cost_by_model"].items()
        ]
        write_table(models, [("model", "MODEL"), ("cost", "COST $")], sys.stdout)
    return 0


def _readable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Format money, rates and durations in summary rows for people."""
    formats: dict[str, Callable[[Any], str]] = {
        "estimated_cost": lambda cost: f"${_money(cost)}",
        "success_rate": "{:.1%}".format,
        "total_duration": "{:,.1f} s".format,
        "wall_seconds": "{:,.1f} s".format,
        "services": ",".join,
    }
    return [
        dict(row, value=formats[row["metric"]](row["value"]))
        if row["metric"] in formats and row["value"] is not None
        else row
        for row in rows
    ]


def _money(amount: float) -> str:
    """Format US dollars: cents, or more decimals for amounts under a dollar."""
    if amount == 0 or abs(round(amount, 2)) >= 1:
        return f"{amount:,.2f}"
    if round(amount, 4):
        return f"{amount:.4f}"
    return f"{amount:.6f}"


def run_errors(args: argparse.Namespace) -> int:
    """Print the most recent failed operations, newest first."""
    _require_non_negative("--count", args.count)
    rows = failures_of(_logs(args), args.count, _pricer(args))
    emit(rows, args.format, rows, ERROR_COLUMNS)
    return 0


def run_sessions(args: argparse.Namespace) -> int:
    """Print every session with its totals, oldest first."""
    merged = sessions_of(_logs(args), _pricer(args))
    sessions = [
        session_stats_dict(session_id, found.totals, found.services)
        for session_id, found in merged.items()
    ]
    rows = [dict(s, services=",".join(s["services"])) for s in sessions]
    emit(sessions, args.format, rows, SESSION_COLUMNS)
    return 0


def run_session(args: argparse.Namespace) -> int:
    """Print one session's totals and its operations."""
    stats = ReadStats()
    entries = list(_entries(args, stats))
    target = args.session_id or _latest_session(entries)
    if target is None:
        raise ValueError(
            "no sessions found; pass --dir or --service to choose the logs"
        )
    operations = [e for e in entries if e.get("session_id") == target]
    if not operations:
        raise ValueError(
            f"session {target!r} not found; list sessions with 'leyline-usage sessions'"
        )
    totals = session_totals(operations, _pricer(args))[target]
    if args.format == "json":
        emit({**totals, "operations": operations}, "json")
    elif args.format == "csv":
        emit(None, "csv", operations, OPERATION_COLUMNS)
    else:
        rows = [
            {"metric": k, "value": v} for k, v in totals.items() if k != "cost_by_model"
        ]
        write_table(
            _readable(rows), [("metric", "METRIC"), ("value", "VALUE")], sys.stdout
        )
        print()
        write_table(operations, OPERATION_COLUMNS, sys.stdout)
    _report_skipped(stats)
    return 0


def _latest_session(entries: list[Entry]) -> str | None:
    latest = max(entries, key=lambda entry: entry["timestamp"], default=None)
    return None if latest is None else str(latest.get("session_id"))


def _require_non_negative(option: str, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{option} must be zero or more, got {value}")
