"""The opt-in hash chain and leyline-usage verify."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import workers
from conftest import CLAUDE_CODE_SAMPLES, run_cli, run_writers

from leyline_usage import UsageLogger
from leyline_usage.chain import verify_chain
from leyline_usage.importers.claude_code import import_transcripts
from leyline_usage.segments import list_segments


def chained_log(storage: Path, count: int = 20, **options: object) -> UsageLogger:
    logger = UsageLogger("svc", storage_dir=storage, chain=True, **options)  # type: ignore[arg-type]
    for n in range(count):
        logger.log_usage("op", tokens=n)
    return logger


def rewrite_lines(path: Path, change: object) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(change(lines)))  # type: ignore[operator]


def test_untouched_log_verifies(storage: Path) -> None:
    logger = chained_log(storage)

    report = verify_chain(logger.log_file)
    result = run_cli("verify", "svc", "--dir", storage)

    assert report.ok
    assert report.chained == 20
    assert result.returncode == 0
    assert "ok: 20 chained entries" in result.stdout
    assert all(len(e["chain"]) == 32 for e in logger.iter_entries())


def altered(lines: list[bytes]) -> list[bytes]:
    lines[7] = lines[7].replace(b'"tokens":7', b'"tokens":700')
    return lines


def deleted(lines: list[bytes]) -> list[bytes]:
    return lines[:7] + lines[8:]


def inserted(lines: list[bytes]) -> list[bytes]:
    return lines[:7] + [lines[3]] + lines[7:]


def reordered(lines: list[bytes]) -> list[bytes]:
    return lines[:6] + [lines[7], lines[6]] + lines[8:]


@pytest.mark.parametrize(
    ("change", "first_bad_line"),
    [(altered, 9), (deleted, 8), (inserted, 8), (reordered, 7)],
)
def test_tampering_found_at_first_bad_line(
    storage: Path, change: object, first_bad_line: int
) -> None:
    logger = chained_log(storage)
    rewrite_lines(logger.log_file, change)

    report = verify_chain(logger.log_file)
    result = run_cli("verify", "svc", "--dir", storage, "--json")

    assert not report.ok
    assert report.line == first_bad_line
    assert result.returncode == 1
    assert json.loads(result.stdout)["line"] == first_bad_line


def test_entry_without_chain_inserted(storage: Path) -> None:
    logger = chained_log(storage, 5)
    UsageLogger("svc", storage_dir=storage, chain=False).log_usage("sneaky")
    logger.log_usage("after")

    report = verify_chain(logger.log_file)

    assert not report.ok
    assert report.line == 6
    assert "no chain" in (report.problem or "")


def test_unchained_history_then_chain(storage: Path) -> None:
    plain = UsageLogger("svc", storage_dir=storage)
    plain.log_usage("old")
    chained_log(storage, 3)

    report = verify_chain(plain.log_file)

    assert report.ok
    assert report.unchained == 1
    assert report.chained == 3


def test_torn_fragment_does_not_break_chain(storage: Path) -> None:
    logger = chained_log(storage, 3)
    with open(logger.log_file, "ab") as file:
        file.write(b'{"timestamp": "2025-')
    logger.log_usage("after")

    report = verify_chain(logger.log_file)

    assert report.ok
    assert report.unreadable == 1
    assert report.chained == 4


def test_chain_runs_across_rotation(storage: Path) -> None:
    logger = chained_log(storage, 120, rotate_bytes=3000)
    segments = list_segments(logger.log_file)
    assert len(segments) >= 3

    assert verify_chain(logger.log_file).ok

    middle = segments[1]
    lines = gzip.decompress(middle.read_bytes()).splitlines(keepends=True)
    del lines[0]
    middle.write_bytes(gzip.compress(b"".join(lines)))
    report = verify_chain(logger.log_file)
    assert not report.ok
    assert report.file == str(middle)
    assert report.line == 1


def test_deleted_segment_breaks_chain(storage: Path) -> None:
    logger = chained_log(storage, 120, rotate_bytes=3000)
    segments = list_segments(logger.log_file)

    segments[1].unlink()

    report = verify_chain(logger.log_file)
    assert not report.ok
    assert report.file == str(segments[2])


def test_concurrent_chained_writers(storage: Path) -> None:
    exit_codes = run_writers(workers.log_sequence_chained, storage, "svc", 4, 400)

    assert exit_codes == [0] * 4
    report = verify_chain(storage / "svc.jsonl")
    assert report.ok, report.problem
    assert report.chained == 1600


def test_batch_and_import_chain(storage: Path) -> None:
    logger = UsageLogger("claude-code", storage_dir=storage, chain=True)
    with logger.batch():
        for n in range(50):
            logger.log_usage("op", tokens=n)
    import_transcripts(logger, [CLAUDE_CODE_SAMPLES])
    logger.log_usage("last")

    report = verify_chain(logger.log_file)

    assert report.ok, report.problem
    assert report.chained == 50 + 325 + 1


def test_chain_from_config(
    storage: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[logging]\nchain = true\n")
    monkeypatch.setenv("LEYLINE_USAGE_CONFIG", str(config))

    entry = UsageLogger("svc", storage_dir=storage).log_usage("op")

    assert entry is not None
    assert "chain" in entry


def test_prune_keeps_the_chain_verifiable(storage: Path) -> None:
    logger = chained_log(storage, 120, rotate_bytes=3000)
    before = len(list_segments(logger.log_file))

    pruned = run_cli("prune", "svc", "--older-than", "0s", "--dir", storage)
    left = list_segments(logger.log_file)
    logger.log_usage("after-prune")
    report = verify_chain(logger.log_file)

    assert pruned.returncode == 0
    assert before >= 3
    assert left == []
    assert report.ok, report.problem
    assert (storage / "svc.jsonl.anchor").stat().st_mode & 0o777 == 0o600


def test_prune_then_tamper_still_found(storage: Path) -> None:
    logger = chained_log(storage, 120, rotate_bytes=3000)
    run_cli("prune", "svc", "--older-than", "0s", "--dir", storage)

    rewrite_lines(logger.log_file, lambda lines: lines[1:])

    assert not verify_chain(logger.log_file).ok


@pytest.mark.parametrize("service", ["plain", "missing"])
def test_verify_without_chained_entries_fails(storage: Path, service: str) -> None:
    UsageLogger("plain", storage_dir=storage).log_usage("op")

    result = run_cli("verify", service, "--dir", storage)

    assert result.returncode == 1
    assert "no chained entries" in result.stdout
