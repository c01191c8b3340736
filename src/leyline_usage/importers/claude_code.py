"""Import API usage from Claude Code transcripts (``~/.claude/projects/**/*.jsonl``).

Each assistant record carries ``message.usage`` for one API call. While a
response streams, Claude Code writes the same call on several lines that
repeat ``message.id`` and ``requestId``. The copy with the most output tokens
is the final one, so each call is counted once, from that copy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from leyline_usage.entry import Entry, breakdown_total
from leyline_usage.logger import UsageLogger

_log = logging.getLogger("leyline_usage")

DEFAULT_SERVICE = "claude-code"
# Claude Code writes this model name on messages it makes up itself (for
# example after an interrupted request); they are not API calls.
_SYNTHETIC_MODEL = "<synthetic>"


@dataclass
class ImportResult:
    """Counts of what one import read and wrote."""

    files: int = 0
    records: int = 0
    calls: int = 0
    added: int = 0
    skipped_lines: int = 0
    sessions: set[str] = field(default_factory=set)

    @property
    def already_present(self) -> int:
        """Calls that an earlier import had already logged."""
        return self.calls - self.added


def import_transcripts(
    logger: UsageLogger, paths: Iterable[Path | str]
) -> ImportResult:
    """Log every API call in the transcripts at ``paths`` (files or directories)."""
    result = ImportResult()
    calls: dict[tuple[str, str], dict[str, Any]] = {}
    for path in transcript_files(paths):
        result.files += 1
        for record in _assistant_records(path, result):
            key = (record["message"].get("id") or "", record.get("requestId") or "")
            kept = calls.get(key)
            if kept is None or _output_tokens(record) > _output_tokens(kept):
                calls[key] = record
    entries = [_to_entry(record, logger.service) for record in calls.values()]
    for entry in entries:
        logger.attach_cost(entry)
    entries.sort(key=lambda entry: entry["timestamp"])
    result.calls = len(entries)
    result.sessions = {entry["session_id"] for entry in entries}
    result.added = logger.write_entries(entries, skip_existing=True)
    return result


def transcript_files(paths: Iterable[Path | str]) -> Iterator[Path]:
    """Yield the ``.jsonl`` files at ``paths``, searching directories recursively."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.jsonl") if p.is_file())
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"transcript path not found: {path}")


def _assistant_records(path: Path, result: ImportResult) -> Iterator[dict[str, Any]]:
    with path.open("rb") as file:
        for line in file:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                result.skipped_lines += 1
                continue
            if not isinstance(record, dict) or record.get("type") != "assistant":
                continue
            message = record.get("message")
            if not isinstance(message, dict) or not isinstance(
                message.get("usage"), dict
            ):
                continue
            if message.get("model") == _SYNTHETIC_MODEL:
                continue
            if not isinstance(record.get("timestamp"), str):
                result.skipped_lines += 1
                continue
            result.records += 1
            yield record


def _output_tokens(record: dict[str, Any]) -> int:
    value = record["message"]["usage"].get("output_tokens")
    return value if isinstance(value, int) else 0


def _count(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and value > 0 else 0


def _to_entry(record: dict[str, Any], service: str) -> Entry:
    message = record["message"]
    usage = message["usage"]
    split = (
        usage.get("cache_creation")
        if isinstance(usage.get("cache_creation"), dict)
        else {}
    )
    counts = {
        "input_tokens": _count(usage, "input_tokens"),
        "output_tokens": _count(usage, "output_tokens"),
        "cache_read_tokens": _count(usage, "cache_read_input_tokens"),
        "cache_write_tokens": _count(usage, "cache_creation_input_tokens"),
        "cache_write_5m_tokens": _count(split, "ephemeral_5m_input_tokens"),
        "cache_write_1h_tokens": _count(split, "ephemeral_1h_input_tokens"),
    }
    counts["cache_write_tokens"] = max(
        counts["cache_write_tokens"],
        counts["cache_write_5m_tokens"] + counts["cache_write_1h_tokens"],
    )
    metadata = {
        "message_id": message.get("id"),
        "request_id": record.get("requestId"),
        "sidechain": bool(record.get("isSidechain")),
    }
    if record.get("agentId"):
        metadata["agent_id"] = record["agentId"]
    if record.get("version"):
        metadata["claude_code_version"] = record["version"]
    entry: Entry = {
        "timestamp": _normalize_timestamp(record["timestamp"]),
        "session_id": str(record.get("sessionId") or "unknown"),
        "service": service,
        "operation": "api_call",
        "tokens": breakdown_total(counts),
        "success": True,
        "duration_seconds": 0.0,
        "error_type": None,
        "error_message": None,
        "metadata": metadata,
        "model": str(message.get("model") or "unknown"),
        **{
            key: value
            for key, value in counts.items()
            if value or key in ("input_tokens", "output_tokens")
        },
        "id": f"claude-code:{metadata['request_id']}:{metadata['message_id']}",
    }
    return entry


def _normalize_timestamp(value: str) -> str:
    # Claude Code writes milliseconds ("...59.186Z"); the log uses microseconds
    # so that timestamps compare correctly as strings.
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
