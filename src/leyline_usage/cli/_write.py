"""Commands that add entries: log and import."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from leyline_usage.cli._output import emit
from leyline_usage.importers.claude_code import DEFAULT_SERVICE, import_transcripts
from leyline_usage.logger import UsageLogger

_DIR_HELP = "storage directory (default: $LEYLINE_USAGE_DIR or ~/.claude/leyline/usage)"


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register the log and import subcommands."""
    log = commands.add_parser("log", help="log one operation")
    log.add_argument("service", help="service name, e.g. my-plugin")
    log.add_argument("operation", help="operation name, e.g. summarize")
    log.add_argument(
        "--tokens", type=int, help="total tokens (default: the sum of the breakdown)"
    )
    log.add_argument(
        "--input", dest="input_tokens", type=int, help="uncached input tokens"
    )
    log.add_argument("--output", dest="output_tokens", type=int, help="output tokens")
    log.add_argument(
        "--cache-read",
        dest="cache_read_tokens",
        type=int,
        help="cached input tokens read",
    )
    log.add_argument(
        "--cache-write-5m",
        dest="cache_write_5m_tokens",
        type=int,
        help="tokens written to a 5-minute cache",
    )
    log.add_argument(
        "--cache-write-1h",
        dest="cache_write_1h_tokens",
        type=int,
        help="tokens written to a 1-hour cache",
    )
    log.add_argument("--model", help="model id, e.g. claude-sonnet-4-5")
    log.add_argument("--duration", type=float, default=0.0, help="duration in seconds")
    log.add_argument(
        "--failed", action="store_true", help="mark the operation as failed"
    )
    log.add_argument(
        "--error-type", help="exception or error class name (implies --failed)"
    )
    log.add_argument("--error-message", help="error text (implies --failed)")
    log.add_argument("--metadata", help="a JSON object of extra fields")
    log.add_argument(
        "--session-id", help="log into this session instead of the current one"
    )
    log.add_argument("--dir", type=Path, help=_DIR_HELP)
    log.add_argument(
        "--json", action="store_true", help="print the logged entry as JSON"
    )
    log.set_defaults(run=run_log)

    importer = commands.add_parser(
        "import", help="import usage from another tool's records"
    )
    importer.add_argument("source", choices=["claude-code"], help="record format")
    importer.add_argument(
        "paths", nargs="+", type=Path, help="transcript files or directories"
    )
    importer.add_argument(
        "--service",
        default=DEFAULT_SERVICE,
        help=f"service to log into (default: {DEFAULT_SERVICE})",
    )
    importer.add_argument("--dir", type=Path, help=_DIR_HELP)
    importer.add_argument(
        "--json", action="store_true", help="print the import counts as JSON"
    )
    importer.set_defaults(run=run_import)


def run_log(args: argparse.Namespace) -> int:
    """Log one operation from the command line."""
    metadata = _parse_metadata(args.metadata)
    failed = (
        args.failed or args.error_type is not None or args.error_message is not None
    )
    # Strict, so that a storage failure is the command's one error line.
    logger = UsageLogger(args.service, storage_dir=args.dir, strict=True)
    entry = logger.log_usage(
        args.operation,
        tokens=args.tokens,
        success=not failed,
        duration=args.duration,
        error_type=args.error_type,
        error_message=args.error_message,
        metadata=metadata,
        model=args.model,
        input_tokens=args.input_tokens,
        output_tokens=args.output_tokens,
        cache_read_tokens=args.cache_read_tokens,
        cache_write_5m_tokens=args.cache_write_5m_tokens,
        cache_write_1h_tokens=args.cache_write_1h_tokens,
        session_id=args.session_id,
    )
    if entry is None:
        print(
            f"leyline-usage: error: entry not written to {logger.log_file}",
            file=sys.stderr,
        )
        return 1
    if args.json:
        emit(entry, "json")
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Import Claude Code transcripts into a service log."""
    logger = UsageLogger(args.service, storage_dir=args.dir, strict=True)
    result = import_transcripts(logger, args.paths)
    counts = {
        "files": result.files,
        "api_calls": result.calls,
        "added": result.added,
        "already_present": result.already_present,
        "sessions": len(result.sessions),
        "skipped_lines": result.skipped_lines,
        "log_file": str(logger.log_file),
    }
    if args.json:
        emit(counts, "json")
    else:
        print(
            f"imported {result.added} API call(s) from {result.files} file(s) into "
            f"{logger.log_file} ({result.already_present} already present, "
            f"{len(result.sessions)} session(s), "
            f"{result.skipped_lines} unreadable line(s))"
        )
    return 0


def _parse_metadata(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"--metadata {text!r} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(
            f"--metadata must be a JSON object like '{{\"files\": 3}}', got {text!r}"
        )
    return value
