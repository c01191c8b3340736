"""Maintenance commands: prune old segments and verify the hash chain."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from leyline_usage.chain import prune_keeping_anchor, verify_chain
from leyline_usage.cli._output import emit
from leyline_usage.paths import default_storage_dir, validate_service_name
from leyline_usage.segments import parse_duration

_DIR_HELP = "storage directory (default: $LEYLINE_USAGE_DIR or ~/.claude/leyline/usage)"


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register the prune and verify subcommands."""
    prune = commands.add_parser(
        "prune", help="delete rotated segments older than a limit"
    )
    prune.add_argument("service", help="service name")
    prune.add_argument(
        "--older-than",
        required=True,
        help="age of segments to delete, e.g. 90d, 12h (units s, m, h, d, w)",
    )
    prune.add_argument("--dir", type=Path, help=_DIR_HELP)
    prune.add_argument("--json", action="store_true", help="print JSON")
    prune.set_defaults(run=run_prune)

    verify = commands.add_parser("verify", help="check a service's hash chain")
    verify.add_argument("service", help="service name")
    verify.add_argument("--dir", type=Path, help=_DIR_HELP)
    verify.add_argument("--json", action="store_true", help="print JSON")
    verify.set_defaults(run=run_verify)


def _log_path(args: argparse.Namespace) -> Path:
    directory: Path = args.dir or default_storage_dir()
    return directory / f"{validate_service_name(args.service)}.jsonl"


def run_prune(args: argparse.Namespace) -> int:
    """Delete the service's segments rotated longer ago than ``--older-than``."""
    older_than = parse_duration(args.older_than)
    removed = prune_keeping_anchor(_log_path(args), older_than)
    if args.json:
        emit({"removed": [str(path) for path in removed]}, "json")
    else:
        print(f"removed {len(removed)} segment(s) older than {args.older_than}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """Check the hash chain; exit 1 at the first line that does not follow."""
    report = verify_chain(_log_path(args))
    if report.ok and report.chained == 0:
        # Nothing was checked; an "ok" would read as a clean bill of health.
        report.problem = (
            f"no chained entries in {report.files} file(s) of {args.service!r}: "
            "log with chain=True (or chain = true in the config file) to use verify"
        )
    if args.json:
        emit(report.as_dict(), "json")
    elif report.ok:
        print(
            f"ok: {report.chained} chained entries in {report.files} file(s) "
            f"follow each other unchanged"
        )
    else:
        print(f"FAILED: {report.problem}")
    return 0 if report.ok else 1
