"""UsageLogger.track as a context manager and decorator, sync and async."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from leyline_usage import UsageLogger


def test_context_manager_logs_success(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    with logger.track("summarize", model="claude-opus-4-6") as tracked:
        time.sleep(0.02)
        tracked.usage = {"input_tokens": 100, "output_tokens": 10}
        tracked.metadata["files"] = 2

    entry = tracked.entry
    assert entry is not None
    assert entry["success"] is True
    assert entry["duration_seconds"] >= 0.02
    assert entry["tokens"] == 110
    assert entry["metadata"] == {"files": 2}
    assert entry["cost_usd"] > 0


def test_context_manager_logs_failure_and_reraises(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    with (
        pytest.raises(TimeoutError, match="too slow"),
        logger.track("fetch") as tracked,
    ):
        raise TimeoutError("too slow")

    assert tracked.entry is not None
    assert tracked.entry["success"] is False
    assert tracked.entry["error_type"] == "TimeoutError"
    assert tracked.entry["error_message"] == "too slow"


def test_decorator_takes_usage_from_response(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    @logger.track("complete")
    def complete(prompt: str) -> SimpleNamespace:
        usage = SimpleNamespace(input_tokens=7, output_tokens=3)
        return SimpleNamespace(usage=usage, model="claude-sonnet-4-5", text=prompt)

    response = complete("hi")
    complete("again")

    assert response.text == "hi"
    entries = list(logger.iter_entries())
    assert [e["tokens"] for e in entries] == [10, 10]
    assert entries[0]["model"] == "claude-sonnet-4-5"
    assert complete.__name__ == "complete"


def test_decorator_failure_reraises(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    @logger.track("parse")
    def parse() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        parse()

    (entry,) = logger.iter_entries()
    assert entry["error_type"] == "KeyError"


def test_async_decorator_and_context(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    @logger.track("fetch")
    async def fetch(n: int) -> dict[str, object]:
        await asyncio.sleep(0.01)
        return {
            "usage": {"prompt_tokens": n, "completion_tokens": 1},
            "model": "gpt-4o",
        }

    async def main() -> None:
        await asyncio.gather(fetch(5), fetch(6))
        async with logger.track("block") as tracked:
            tracked.tokens = 9
        with pytest.raises(ValueError):
            async with logger.track("bad"):
                raise ValueError("no")

    asyncio.run(main())

    entries = list(logger.iter_entries())
    assert sorted(e["tokens"] for e in entries if e["operation"] == "fetch") == [6, 7]
    assert [e["tokens"] for e in entries if e["operation"] == "block"] == [9]
    assert [e["success"] for e in entries if e["operation"] == "bad"] == [False]
    assert all(
        e["duration_seconds"] >= 0.01 for e in entries if e["operation"] == "fetch"
    )


def test_invalid_tracked_usage_does_not_hide_block_error(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    with (
        pytest.raises(RuntimeError, match="real problem"),
        logger.track("op") as tracked,
    ):
        tracked.tokens = -5
        raise RuntimeError("real problem")
