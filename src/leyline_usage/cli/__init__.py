"""The ``leyline-usage`` command line (also installed as ``usage-logger``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from leyline_usage import __version__
from leyline_usage.cli import _admin, _maintenance, _query, _write
from leyline_usage.config import ConfigError
from leyline_usage.errors import PricingError, StorageError
from leyline_usage.plugins import plugin_manager

PROGRAM = "leyline-usage"


class _Parser(argparse.ArgumentParser):
    """An argument parser that reports bad usage on one line with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for every subcommand."""
    parser = _Parser(
        prog=PROGRAM,
        description="Session-aware usage logs for LLM tools: log, query and import.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser
    )
    commands.required = True
    _write.add_commands(commands)
    _query.add_commands(commands)
    _admin.add_commands(commands)
    _maintenance.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 success, 1 failure, 2 bad usage."""
    _show_library_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command != "config":
            # Every other command depends on the config's prices or plugins.
            _require_valid_config()
        status: int = args.run(args)
    except (ValueError, FileNotFoundError) as exc:
        if isinstance(exc, PricingError):
            return _fail(f"invalid pricing table: {exc}", 1)
        return _fail(str(exc), 2)
    except BrokenPipeError:  # pragma: no cover - output piped into head
        return 0
    except (StorageError, OSError) as exc:
        return _fail(str(exc), 1)
    return status


def _fail(message: str, status: int) -> int:
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)
    return status


def _show_library_warnings() -> None:
    # The library never configures logging; the CLI shows its warnings
    # (a dropped entry, a failing plugin) as one line each on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROGRAM}: %(levelname)s: %(message)s"))
    library_logger = logging.getLogger("leyline_usage")
    library_logger.addHandler(handler)
    library_logger.setLevel(logging.WARNING)


def _require_valid_config() -> None:
    error = plugin_manager().config.error
    if error is not None:
        raise ConfigError(f"{error} (check it with 'leyline-usage config check')")
