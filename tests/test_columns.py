"""The column-wise index build agrees with the line-by-line one on any input."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_index import assert_same, full_scan
from test_queries import make_random_log

from leyline_usage import UsageLogger, index
from leyline_usage.columns import ChunkTotals, chunk_totals
from leyline_usage.index import load_index
from leyline_usage.query import Pricer


def canonical_lines(storage: Path) -> list[bytes]:
    """Lines written by log_usage: several sessions, models known and not, failures."""
    make_random_log(storage, 40)
    logger = UsageLogger("svc", storage_dir=storage, session_id="session_nested")
    logger.log_usage(
        "plan",
        model="claude-sonnet-4-5",
        input_tokens=10,
        metadata={"git": {"branch": "main", "dirty": False}, "n": [1, 2]},
    )
    logger.log_usage("plan", tokens=77, metadata={"note": "ünïcode ✓"})
    logger.log_usage("plan", model="claude-opus-4-6", input_tokens=5, cost_usd=0.25)
    return (storage / "svc.jsonl").read_bytes().splitlines()  # fmt: skip


def _base(**changes: Any) -> bytes:
    entry: dict[str, Any] = {
        "timestamp": "2026-01-02T03:04:05.000006Z",
        "session_id": "session_odd",
        "service": "svc",
        "operation": "read",
        "tokens": 30,
        "success": True,
        "duration_seconds": 1.5,
        "error_type": None,
        "error_message": None,
        "metadata": {},
        "model": "claude-sonnet-4-5",
        "input_tokens": 10,
        "output_tokens": 20,
    }
    entry.update(changes)
    return orjson.dumps({k: v for k, v in entry.items() if v is not ...})


# Lines other tools, crashes or hand edits leave behind. Each either decodes to
# the same values in both paths or sends its chunk to the line-by-line path.
ODD_LINES = [
    b"",
    b"   ",
    b"not json",
    b"[1, 2, 3]",
    b'{"timestamp": 5}',
    _base(tokens=1.0),
    _base(tokens=True),
    _base(tokens="30"),
    _base(tokens=2**63),
    _base(input_tokens=2**64 - 1),
    b'{"timestamp":"2026-01-02T03:04:05Z","session_id":"s","service":"svc",'
    b'"tokens":100000000000000000000000,"success":true,"duration_seconds":1}',
    _base(cost_usd=1),
    _base(cost_usd="1.5"),
    _base(model=""),
    _base(model=None, cost_usd=None),
    _base(model="mystery-model"),
    _base(session_id=...),
    _base(session_id=None),
    _base(success=None),
    _base(duration_seconds=3),
    _base(output_tokens=None),
    _base(metadata={"deep": [[[["x"]]]]}),
    _base()[:-1] + b',"tokens":999}',
    _base() + b"\r",
    b"  " + _base().replace(b'":', b'": '),
    _base(metadata={"k": "XX"}).replace(b"XX", b"\xff\xfe"),
    _base(error_message="x").replace(b'"x"', b'"\\ud800"'),
    _base(metadata="[" * 2000 + "]" * 2000).replace(b'"[', b"[").replace(b']"', b"]"),
    _base()[:-20],
    _base() + b" " + _base(),
    # The original logger's line format: ten keys, no model or breakdown.
    b'{"timestamp": "2025-06-01T10:00:00.000001", "session_id": "session_1", '
    b'"service": "svc", "operation": "op", "tokens": 42, "success": false, '
    b'"duration_seconds": 0.5, "error_type": "ValueError", "error_message": "bad", '
    b'"metadata": {}}',
]


def line_by_line(data: bytes, base: int) -> ChunkTotals:
    return index._line_totals(data.split(b"\n")[:-1], base, Pricer())


# Sums rounded to six decimals may differ by one unit when added in another
# order, plus the float error of the subtraction.
ROUNDING = 2e-6


def assert_same_totals(fast: ChunkTotals, slow: ChunkTotals) -> None:
    assert fast.lines == slow.lines
    assert fast.skipped == slow.skipped
    assert fast.errors == slow.errors
    assert fast.spans == slow.spans
    assert list(fast.groups) == list(slow.groups)
    for key, totals in slow.groups.items():
        expected = totals.as_dict()
        found = fast.groups[key].as_dict()
        for name in ("estimated_cost", "total_duration"):
            assert found.pop(name) == pytest.approx(expected.pop(name), abs=ROUNDING)
        for model, cost in expected.pop("cost_by_model").items():
            assert found["cost_by_model"].pop(model) == pytest.approx(
                cost, abs=ROUNDING
            )
        assert found.pop("cost_by_model") == {}
        assert found == expected


def test_canonical_chunk_takes_column_path(storage: Path) -> None:
    lines = canonical_lines(storage)
    data = b"\n".join(lines) + b"\n"

    fast = chunk_totals(data, 1000, Pricer())

    assert fast is not None
    assert_same_totals(fast, line_by_line(data, 1000))
    assert fast.lines == len(lines)


@pytest.mark.parametrize("odd", ODD_LINES, ids=range(len(ODD_LINES)))
def test_odd_line_gives_same_totals(storage: Path, odd: bytes) -> None:
    lines = canonical_lines(storage)
    data = b"\n".join([*lines[:20], odd, *lines[20:]]) + b"\n"

    fast = chunk_totals(data, 0, Pricer())

    if fast is not None:
        assert_same_totals(fast, line_by_line(data, 0))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_line_mix_gives_same_totals(storage: Path, data: st.DataObject) -> None:
    if not (storage / "svc.jsonl").exists():
        canonical_lines(storage)
    pool = (storage / "svc.jsonl").read_bytes().splitlines() + ODD_LINES
    chosen = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=30))
    # Cut a byte out of one line now and then, as a torn write would.
    if data.draw(st.booleans()):
        position = data.draw(st.integers(0, len(chosen) - 1))
        line = chosen[position]
        cut = data.draw(st.integers(0, max(len(line) - 1, 0)))
        chosen[position] = line[:cut] + line[cut + 1 :]
    chunk = b"\n".join(chosen) + b"\n"

    fast = chunk_totals(chunk, 7, Pricer())

    if fast is not None:
        assert_same_totals(fast, line_by_line(chunk, 7))


def test_runs_across_hours_out_of_order() -> None:
    # One session's entries step back and forth over an hour boundary, as
    # writers in several processes can leave them, and a second service
    # shares the chunk.
    stamps = ["2026-01-02T03:59:59.9", "2026-01-02T04:00:00.1"] * 3
    chosen = [_base(timestamp=stamp, tokens=n) for n, stamp in enumerate(stamps)]
    chosen.insert(3, _base(service="other", timestamp="2026-01-02T03:59:59.5"))
    chosen.append(_base(timestamp="2026-01-02T04:00:00", duration_seconds=0.25))
    chosen.append(_base(timestamp="2026-01-02T04"))
    chunk = b"\n".join(chosen) + b"\n"

    fast = chunk_totals(chunk, 5, Pricer())

    assert fast is not None
    assert_same_totals(fast, line_by_line(chunk, 5))
    assert set(fast.spans) == {"2026-01-02T03", "2026-01-02T04"}


def test_reads_cut_anywhere_give_same_index(
    storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reads of 7 bytes cut lines and multibyte characters at every place,
    # and the index must still match a full scan.
    make_random_log(storage, 30)
    logger = UsageLogger("svc", storage_dir=storage)
    logger.log_usage("plan", tokens=5, metadata={"note": "ünïcode ✓ 日本語"})
    logger.log_usage("plan", tokens=6, success=False, error_message="ошибка")
    with logger.log_file.open("ab") as log:
        log.write(_base(metadata={"k": "XX"}).replace(b"XX", b"\xff\xfe") + b"\n")
    expected = full_scan(logger.log_file)
    monkeypatch.setattr(index, "_CHUNK", 7)
    index.forget_recent()

    assert_same(logger, expected)
    assert load_index(logger.log_file, Pricer()).skipped_lines == 1


def test_two_objects_with_blank_line_rejected(storage: Path) -> None:
    lines = canonical_lines(storage)
    # As many lines as objects, so only a per-line decode detects them.
    data = b"\n".join([*lines, _base() + b" " + _base(), b""]) + b"\n"

    fast = chunk_totals(data, 0, Pricer())

    assert fast is None


def test_deep_nesting_raised_recursion_limit(storage: Path) -> None:
    lines = canonical_lines(storage)
    deep = _base()[:-1] + b',"extra":' + b"[" * 1024 + b"]" * 1024 + b"}"
    data = b"\n".join([*lines, deep]) + b"\n"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(5000)
    try:
        fast = chunk_totals(data, 0, Pricer())
    finally:
        sys.setrecursionlimit(limit)

    assert fast is None
    assert line_by_line(data, 0).skipped == 1


def test_unknown_model_never_priced() -> None:
    pricer = Pricer()

    assert pricer.never_priced("mystery-model", "2026-01-02")
    assert not pricer.never_priced("claude-sonnet-4-5", "2026-01-02")


def forks_in(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the forks the index build makes from here on."""
    forks: list[int] = []
    real_fork = os.fork

    def counting_fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(index.os, "fork", counting_fork)
    monkeypatch.setattr(index, "_may_fork", lambda: True)
    monkeypatch.setattr(index, "PARALLEL_BYTES", 1)
    return forks


def split_log(
    storage: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[UsageLogger, dict[str, Any], list[int]]:
    """Log 300 entries and make the next index build fork a helper."""
    make_random_log(storage, 300)
    logger = UsageLogger("svc", storage_dir=storage)
    return logger, full_scan(logger.log_file), forks_in(monkeypatch)


def test_split_build_matches_full_scan(
    storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_random_log(storage, 400)
    logger = UsageLogger("svc", storage_dir=storage)
    expected = full_scan(logger.log_file)
    sequential = load_index(logger.log_file, Pricer())
    index.index_path(logger.log_file).unlink()
    index.forget_recent()
    forks = forks_in(monkeypatch)

    assert_same(logger, expected)

    assert len(forks) == 1
    index.forget_recent()
    split = load_index(logger.log_file, Pricer())
    assert split.offset == sequential.offset == logger.log_file.stat().st_size
    assert split.errors == sequential.errors
    assert split.lines == sequential.lines
    assert {h: (b.start, b.end) for h, b in split.hours.items()} == {
        h: (b.start, b.end) for h, b in sequential.hours.items()
    }


def test_failed_helper_work_falls_back(
    storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, expected, forks = split_log(storage, monkeypatch)
    # Runs in the forked helper: it dies before sending anything.
    monkeypatch.setattr(index, "_index_for_parent", lambda *args: os._exit(3))

    assert_same(logger, expected)

    assert len(forks) == 1


@pytest.mark.parametrize("payload", [b"[]", b"null", b"5", b'{"version": 1}'])
def test_wrong_shape_helper_payload_ignored(
    storage: Path, monkeypatch: pytest.MonkeyPatch, payload: bytes
) -> None:
    logger, expected, _ = split_log(storage, monkeypatch)

    def send_payload(writer: int, *args: Any) -> None:
        os.write(writer, payload)
        os._exit(0)

    monkeypatch.setattr(index, "_index_for_parent", send_payload)

    assert_same(logger, expected)


def test_helper_offset_outside_half_ignored(
    storage: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, expected, _ = split_log(storage, monkeypatch)

    def send_wrong_offset(writer: int, fd: int, start: int, *args: Any) -> None:
        part = index.LogIndex(offset=start - 1)
        os.write(writer, orjson.dumps(index._to_state(part)))
        os._exit(0)

    monkeypatch.setattr(index, "_index_for_parent", send_wrong_offset)

    assert_same(logger, expected)


def test_no_fork_while_other_threads_run() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not index._may_fork()
    finally:
        stop.set()
        thread.join()
