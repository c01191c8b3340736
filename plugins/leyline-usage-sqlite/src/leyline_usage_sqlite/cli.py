"""The ``leyline-usage-sqlite`` command: maintenance of the SQLite mirror."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from leyline_usage import ConfigError
from leyline_usage.config import config_path, parse_config
from leyline_usage.paths import default_storage_dir
from leyline_usage.reader import service_logs

from leyline_usage_sqlite import __version__
from leyline_usage_sqlite.database import SchemaVersionError
from leyline_usage_sqlite.plugin import read_settings
from leyline_usage_sqlite.rebuild import RebuildResult, rebuild

PROGRAM = "leyline-usage-sqlite"


class CommandError(Exception):
    """A command failure and its exit code: 2 for bad usage, else 1."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An argument parser that reports bad usage on one line with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for every subcommand."""
    parser = _Parser(
        prog=PROGRAM,
        description="Maintain the SQLite copy of leyline-usage logs.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser
    )
    commands.required = True
    command = commands.add_parser(
        "rebuild",
        help="replace the database's entries with those in the JSONL logs",
        description="Replace the database's entries with those in the JSONL "
        "logs of a storage directory, in one transaction. Loggers may keep "
        "writing meanwhile.",
    )
    command.add_argument(
        "--dir",
        type=Path,
        metavar="STORAGE_DIR",
        help="directory of the service logs "
        "(default: $LEYLINE_USAGE_DIR or ~/.claude/leyline/usage)",
    )
    command.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="database file (default: 'path' in the config file's "
        "[plugins.sqlite] table, else STORAGE_DIR/usage.sqlite3)",
    )
    command.set_defaults(run=run_rebuild)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command and return its exit code: 0 success, 1 failure, 2 bad usage."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except CommandError as exc:
        return _fail(str(exc), exc.status)
    except (ConfigError, OSError) as exc:
        return _fail(str(exc), 1)
    return status


def run_rebuild(args: argparse.Namespace) -> int:
    """Rebuild the database and print what was written."""
    storage_dir: Path = (args.dir or default_storage_dir()).expanduser()
    if not storage_dir.is_dir():
        problem = "not found" if not storage_dir.exists() else "not a directory"
        raise CommandError(
            f"storage directory {storage_dir}: {problem}: "
            "pass --dir or set LEYLINE_USAGE_DIR",
            status=2,
        )
    logs = service_logs(storage_dir)
    if not logs:
        raise CommandError(
            f"no service logs (*.jsonl) in {storage_dir}: nothing to rebuild from"
        )
    database = args.db.expanduser() if args.db else _configured_database(storage_dir)
    try:
        result = rebuild(database, logs)
    except SchemaVersionError as exc:
        raise CommandError(str(exc)) from exc
    except sqlite3.Error as exc:
        raise CommandError(f"{database}: {exc}") from exc
    print(describe(result))
    return 0


def describe(result: RebuildResult) -> str:
    """Return the one-line summary that ``rebuild`` prints."""
    text = (
        f"wrote {_count(result.entries, 'entry', 'entries')} to {result.database} "
        f"from {_count(result.logs, 'log', 'logs')}"
    )
    if result.skipped_lines:
        lines = _count(result.skipped_lines, "line", "lines")
        text += f"; skipped {lines} that are not an entry"
    if result.duplicates:
        entries = _count(result.duplicates, "entry", "entries")
        text += f"; left out {entries} whose id an earlier line already had"
    return text


def _configured_database(storage_dir: Path) -> Path:
    settings = read_settings(parse_config(config_path()))
    if settings.error is not None:
        raise CommandError(settings.error)
    return settings.database(storage_dir)


def _count(number: int, singular: str, plural: str) -> str:
    return f"{number:,} {singular if number == 1 else plural}"


def _fail(message: str, status: int) -> int:
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)
    return status
