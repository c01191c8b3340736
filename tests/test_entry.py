"""Entry validation, key order and JSON encoding through the public API."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pytest

from leyline_usage import UsageLogger
from leyline_usage.entry import BASE_KEYS


def logged_text(storage: Path, service: str = "svc") -> str:
    path = storage / f"{service}.jsonl"
    return path.read_text() if path.exists() else ""


def read_lines(storage: Path, service: str = "svc") -> list[dict[str, Any]]:
    text = (storage / f"{service}.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_first_ten_keys_match_original_format(storage: Path) -> None:
    UsageLogger("svc", storage_dir=storage).log_usage(
        "op", model="claude-opus-4-6", input_tokens=10, output_tokens=5
    )

    entry = read_lines(storage)[0]
    keys = list(entry)
    assert keys[:10] == list(BASE_KEYS)
    assert keys[10:] == ["model", "input_tokens", "output_tokens", "cost_usd", "id"]
    assert entry["timestamp"].endswith("Z")
    assert dt.datetime.fromisoformat(entry["timestamp"][:-1]).microsecond >= 0


def test_tokens_is_sum_of_breakdown(storage: Path) -> None:
    entry = UsageLogger("svc", storage_dir=storage).log_usage(
        "op",
        input_tokens=10,
        output_tokens=20,
        cache_read_tokens=30,
        cache_write_5m_tokens=4,
        cache_write_1h_tokens=6,
    )

    assert entry is not None
    assert entry["tokens"] == 70
    assert entry["cache_write_tokens"] == 10


def test_explicit_total_is_kept(storage: Path) -> None:
    entry = UsageLogger("svc", storage_dir=storage).log_usage(
        "op", tokens=500, output_tokens=20
    )

    assert entry is not None
    assert entry["tokens"] == 500


def test_legacy_positional_call_still_works(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    logger.log_usage("operation", 1000, True, 2.5, None, None, {"files": 3})

    entry = read_lines(storage)[0]
    assert entry["tokens"] == 1000
    assert entry["duration_seconds"] == 2.5
    assert entry["metadata"] == {"files": 3}


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"tokens": -1}, "tokens"),
        ({"tokens": 1.5}, "tokens"),
        ({"tokens": "10"}, "tokens"),
        ({"tokens": True}, "tokens"),
        ({"input_tokens": -5}, "input_tokens"),
        ({"output_tokens": 2.0}, "output_tokens"),
        (
            {"cache_read_tokens": None, "cache_write_1h_tokens": -1},
            "cache_write_1h_tokens",
        ),
        ({"duration": math.nan}, "duration"),
        ({"duration": math.inf}, "duration"),
        ({"duration": -0.5}, "duration"),
        ({"duration": "2s"}, "duration"),
        ({"success": "yes"}, "success"),
        ({"metadata": ["not", "a", "dict"]}, "metadata"),
        ({"model": ""}, "model"),
        ({"cost_usd": math.nan}, "cost_usd"),
        ({"cache_write_tokens": 1, "cache_write_5m_tokens": 5}, "cache_write_tokens"),
    ],
)
def test_invalid_argument_raises_and_writes_nothing(
    storage: Path, arguments: dict[str, Any], field: str
) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    with pytest.raises(ValueError, match=field):
        logger.log_usage("op", **arguments)

    assert logged_text(storage) == ""


@pytest.mark.parametrize("operation", ["", None, 42])
def test_invalid_operation_raises(storage: Path, operation: Any) -> None:
    with pytest.raises(ValueError, match="operation"):
        UsageLogger("svc", storage_dir=storage).log_usage(operation)


def test_unencodable_metadata_becomes_strings(storage: Path) -> None:
    class Custom:
        def __str__(self) -> str:
            return "custom-object"

    metadata = {
        "when": dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        "path": Path("/tmp/x"),
        "set": {3, 1},
        "bytes": b"\xffab",
        "object": Custom(),
        7: "int key",
        "nested": {"deep": [Path("a")]},
    }

    UsageLogger("svc", storage_dir=storage).log_usage("op", metadata=metadata)

    written = read_lines(storage)[0]["metadata"]
    assert written["when"].startswith("2025-01-02T03:04:05")
    assert written["path"] == "/tmp/x"
    assert written["set"] == "[1, 3]"
    assert written["bytes"] == "\\xffab"
    assert written["object"] == "custom-object"
    assert written["7"] == "int key"
    assert written["nested"] == {"deep": ["a"]}


@pytest.mark.parametrize(
    "value", [dt.datetime(2025, 1, 1), Path("/x"), {1}, b"x", object()]
)
def test_strict_rejects_unencodable_metadata(storage: Path, value: object) -> None:
    logger = UsageLogger("svc", storage_dir=storage, strict=True)

    with pytest.raises(TypeError, match="metadata value"):
        logger.log_usage("op", metadata={"value": value})

    assert logged_text(storage) == ""


def test_nan_in_metadata_never_reaches_file(storage: Path) -> None:
    UsageLogger("svc", storage_dir=storage).log_usage(
        "op", metadata={"a": math.nan, "b": [math.inf, -math.inf]}
    )

    text = (storage / "svc.jsonl").read_text()
    assert "NaN" not in text
    assert "Infinity" not in text
    assert json.loads(text)["metadata"] == {"a": None, "b": [None, None]}


def test_cyclic_and_surrogate_metadata_written_safely(storage: Path) -> None:
    cycle: dict[str, Any] = {"name": "loop"}
    cycle["self"] = cycle

    UsageLogger("svc", storage_dir=storage).log_usage(
        "op", metadata={"cycle": cycle, "text": "bad \udc80 surrogate"}
    )

    written = read_lines(storage)[0]["metadata"]
    assert written["cycle"] == {"name": "loop", "self": "<cycle>"}
    assert written["text"] == "bad \ufffd surrogate"


def test_oversized_entry_raises(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage, max_entry_bytes=1000)

    with pytest.raises(ValueError, match="over the limit of 1000"):
        logger.log_usage("op", metadata={"blob": "x" * 2000})

    assert logged_text(storage) == ""


def test_entry_ids_are_unique(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    for _ in range(500):
        logger.log_usage("op")

    ids = [entry["id"] for entry in read_lines(storage)]
    assert len(set(ids)) == 500


def test_unknown_model_is_not_priced_at_log_time(storage: Path) -> None:
    entry = UsageLogger("svc", storage_dir=storage).log_usage(
        "op", model="no-such-model", input_tokens=1000
    )

    assert entry is not None
    assert "cost_usd" not in entry


def test_known_model_is_priced(storage: Path) -> None:
    entry = UsageLogger("svc", storage_dir=storage).log_usage(
        "op", model="claude-opus-4-6", input_tokens=1_000_000, output_tokens=1_000_000
    )

    assert entry is not None
    assert entry["cost_usd"] == pytest.approx(30.0)
