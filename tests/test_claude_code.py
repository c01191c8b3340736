"""Importing Claude Code transcripts: deduplication, totals and idempotence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import CLAUDE_CODE_SAMPLES

from leyline_usage import UsageLogger
from leyline_usage.importers.claude_code import import_transcripts

SAMPLE_CALLS = 325
SAMPLE_COST = 23.23


def test_sample_import_totals(storage: Path) -> None:
    logger = UsageLogger("claude-code", storage_dir=storage)

    result = import_transcripts(logger, [CLAUDE_CODE_SAMPLES])
    summary = logger.get_usage_summary(days=100_000)

    assert result.calls == SAMPLE_CALLS
    assert result.added == SAMPLE_CALLS
    assert summary["total_operations"] == SAMPLE_CALLS
    assert round(summary["estimated_cost"], 2) == SAMPLE_COST
    assert summary["unpriced_operations"] == 0


def test_second_import_adds_nothing(storage: Path) -> None:
    logger = UsageLogger("claude-code", storage_dir=storage)
    import_transcripts(logger, [CLAUDE_CODE_SAMPLES])
    before = (storage / "claude-code.jsonl").read_bytes()

    again = import_transcripts(logger, [CLAUDE_CODE_SAMPLES])

    assert again.added == 0
    assert again.already_present == SAMPLE_CALLS
    assert (storage / "claude-code.jsonl").read_bytes() == before


def test_streamed_duplicates_keep_largest_output(storage: Path, tmp_path: Path) -> None:
    def record(output_tokens: int) -> str:
        return json.dumps({
            "type": "assistant", "sessionId": "abc", "requestId": "req_1",
            "timestamp": "2026-02-10T21:11:59.186Z",
            "message": {"id": "msg_1", "model": "claude-opus-4-6", "usage": {
                "input_tokens": 3, "output_tokens": output_tokens,
                "cache_read_input_tokens": 100, "cache_creation_input_tokens": 50,
                "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 30},
            }},
        })  # fmt: skip

    transcript = tmp_path / "t.jsonl"
    lines = [record(1), record(250), record(7), '{"type": "user"}', "not json"]
    transcript.write_text("\n".join(lines) + "\n")
    logger = UsageLogger("claude-code", storage_dir=storage)

    result = import_transcripts(logger, [transcript])

    assert result.calls == 1
    assert result.skipped_lines == 1
    (entry,) = logger.iter_entries()
    assert entry["output_tokens"] == 250
    assert entry["session_id"] == "abc"
    assert entry["timestamp"] == "2026-02-10T21:11:59.186000Z"
    assert entry["cache_write_5m_tokens"] == 20
    assert entry["cache_write_1h_tokens"] == 30
    assert entry["tokens"] == 3 + 250 + 100 + 50
    expected = (3 * 5 + 250 * 25 + 100 * 0.5 + 20 * 6.25 + 30 * 10) / 1e6
    assert entry["cost_usd"] == pytest.approx(expected)


def test_sessions_keep_claude_code_ids(storage: Path) -> None:
    logger = UsageLogger("claude-code", storage_dir=storage)

    import_transcripts(logger, [CLAUDE_CODE_SAMPLES])

    sessions = {s["session_id"] for s in logger.list_sessions()}
    assert "258c7280-ae70-4798-800f-63464d01a85d" in sessions
    assert "4d5611e5-241a-462a-8d15-5122611a9569" in sessions


def test_subagent_files_are_included(storage: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(CLAUDE_CODE_SAMPLES / "4d5611e5-241a-462a-8d15-5122611a9569", copy)
    logger = UsageLogger("claude-code", storage_dir=storage)

    result = import_transcripts(logger, [copy])

    assert result.files == 2
    assert result.calls > 0


def test_missing_path_raises(storage: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        import_transcripts(
            UsageLogger("claude-code", storage_dir=storage), [tmp_path / "nope"]
        )
