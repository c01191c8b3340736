"""Hostile input: arguments, metadata and log bytes from a fuzzer, and planted files.

A ``log_usage`` call either appends exactly one JSON line that reads back as
what was passed, after the documented conversions, or raises ValueError or
TypeError and appends nothing. The conversions: values JSON cannot encode
become strings, as do integers outside the 64-bit range, NaN and infinities
become null, lone surrogates in any text become U+FFFD, non-string keys become
strings as orjson writes them, a reference cycle becomes ``"<cycle>"``, and the
built-in redaction enricher replaces the values of keys that name a credential.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import leyline_usage.session
from leyline_usage import StorageError, UsageLogger, hookimpl
from leyline_usage.plugins import FAILURES_FILE, plugin_manager
from leyline_usage.reader import ReadStats, iter_entries
from leyline_usage.redaction import REDACTED, is_secret_key

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
SURROGATE = re.compile("[\ud800-\udfff]")

# Characters: mostly any code point, with lone surrogates and NUL mixed in.
characters = st.one_of(
    st.characters(),
    st.characters(),
    st.characters(),
    st.integers(0xD800, 0xDFFF).map(chr),
    st.just("\0"),
)
texts = st.text(characters, max_size=40)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    texts,
)
# Keys that name no credential, so the built-in redaction enricher leaves their
# values alone. _mappings keeps them distinct once converted to strings.
keys = st.one_of(
    texts.filter(lambda key: not is_secret_key(key)),
    st.integers(),
)


def _clean(text: str) -> str:
    return SURROGATE.sub("\ufffd", text)


def _key_text(key: object) -> str:
    return _clean(key if isinstance(key, str) else str(key))


def _mappings(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[Any, Any]]:
    pairs = st.lists(
        st.tuples(keys, values), max_size=4, unique_by=lambda pair: _key_text(pair[0])
    )
    return pairs.map(dict)


values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        _mappings(children),
    ),
    max_leaves=20,
)
metadata_values = _mappings(values)


def _assert_stored(original: Any, stored: Any, where: str = "metadata") -> None:
    """Assert that ``stored`` is ``original`` after the documented conversions."""
    if isinstance(original, float) and not math.isfinite(original):
        assert stored is None, where
    elif isinstance(original, str):
        assert stored == _clean(original), where
    elif original is None or isinstance(original, bool):
        assert stored is original, where
    elif isinstance(original, int) and not -(2**63) <= original < 2**64:
        assert stored == str(original), where
    elif isinstance(original, (int, float)):
        assert stored == original, where
        assert type(stored) is type(original), where
    elif isinstance(original, (list, tuple)):
        assert isinstance(stored, list), where
        assert len(stored) == len(original), where
        for index, (item, stored_item) in enumerate(zip(original, stored, strict=True)):
            _assert_stored(item, stored_item, f"{where}[{index}]")
    elif isinstance(original, dict):
        assert isinstance(stored, dict), where
        expected_keys = {_key_text(key): key for key in original}
        assert set(stored) == set(expected_keys), where
        for text, key in expected_keys.items():
            _assert_stored(original[key], stored[text], f"{where}[{text!r}]")
    else:
        raise AssertionError(f"{where}: no expectation for {type(original)}")


@pytest.fixture
def fuzz_logger(storage: Path) -> UsageLogger:
    """One logger for all examples of a test, so every example appends to one log."""
    return UsageLogger("fuzz", storage_dir=storage)


def _log_bytes(logger: UsageLogger) -> bytes:
    try:
        return logger.log_file.read_bytes()
    except FileNotFoundError:
        return b""


def _appended_entry(logger: UsageLogger, before: bytes) -> dict[str, Any]:
    """Return the one entry appended since ``before``, checking it is one line."""
    after = _log_bytes(logger)
    assert after.startswith(before)
    added = after[len(before) :]
    assert added.endswith(b"\n")
    assert added.count(b"\n") == 1
    entry = orjson.loads(added)
    assert isinstance(entry, dict)
    return entry


# -- metadata ----------------------------------------------------------------


@FUZZ
@given(metadata=metadata_values)
def test_fuzzed_metadata_reads_back(
    fuzz_logger: UsageLogger, metadata: dict[Any, Any]
) -> None:
    before = _log_bytes(fuzz_logger)

    returned = fuzz_logger.log_usage("fuzz", metadata=metadata)

    assert returned is not None
    stored = _appended_entry(fuzz_logger, before)
    _assert_stored(metadata, stored["metadata"])
    assert stored["id"] == returned["id"]
    assert list(iter_entries([fuzz_logger.log_file]))[-1] == stored


def _assert_stored_with_cycles(
    original: Any, stored: Any, ancestors: frozenset[int], where: str
) -> None:
    if isinstance(original, (list, dict)) and id(original) in ancestors:
        assert stored == "<cycle>", where
        return
    inner = ancestors | {id(original)}
    if isinstance(original, list):
        assert isinstance(stored, list), where
        assert len(stored) == len(original), where
        for index, item in enumerate(original):
            _assert_stored_with_cycles(item, stored[index], inner, f"{where}[{index}]")
    elif isinstance(original, dict):
        assert isinstance(stored, dict), where
        assert set(stored) == {_key_text(key) for key in original}, where
        for key, item in original.items():
            text = _key_text(key)
            _assert_stored_with_cycles(item, stored[text], inner, f"{where}[{text!r}]")
    else:
        _assert_stored(original, stored, where)


def _containers(value: Any) -> Iterator[list[Any] | dict[Any, Any]]:
    if isinstance(value, (list, dict)):
        yield value
        for item in value.values() if isinstance(value, dict) else value:
            yield from _containers(item)


cyclic_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=3), _mappings(children)),
    max_leaves=12,
)


@FUZZ
@given(metadata=_mappings(cyclic_values), data=st.data())
def test_reference_cycles_become_markers(
    fuzz_logger: UsageLogger, metadata: dict[Any, Any], data: st.DataObject
) -> None:
    # Make one nested container refer back to itself or to one of its nested
    # ancestors. The metadata dict itself is left out, because enrichers get a
    # shallow copy of it, which moves a marker for it one level down.
    nested = list(_containers(metadata))[1:]
    assume(nested)
    holder = data.draw(st.sampled_from(nested))
    target = data.draw(st.sampled_from(nested[: nested.index(holder) + 1]))
    if isinstance(holder, list):
        holder.append(target)
    else:
        holder["\x00cycle"] = target
    if not _is_ancestor(target, holder, metadata):
        # A reference to an earlier sibling is shared, not cyclic.
        return
    before = _log_bytes(fuzz_logger)

    assert fuzz_logger.log_usage("cycle", metadata=metadata) is not None

    stored = _appended_entry(fuzz_logger, before)
    _assert_stored_with_cycles(metadata, stored["metadata"], frozenset(), "metadata")


def _is_ancestor(target: Any, holder: Any, root: Any) -> bool:
    """Return whether ``target`` lies on the path from ``root`` to ``holder``."""

    def path_to(node: Any, trail: list[Any]) -> list[Any] | None:
        if node is holder:
            return [*trail, node]
        if isinstance(node, (list, dict)) and all(node is not t for t in trail):
            items = node.values() if isinstance(node, dict) else node
            for item in items:
                found = path_to(item, [*trail, node])
                if found is not None:
                    return found
        return None

    path = path_to(root, []) or []
    return any(node is target for node in path)


def test_metadata_containing_itself_writes_one_line(storage: Path) -> None:
    metadata: dict[str, Any] = {"a": 1}
    metadata["self"] = metadata
    logger = UsageLogger("svc", storage_dir=storage)

    assert logger.log_usage("op", metadata=metadata) is not None

    (entry,) = iter_entries([logger.log_file])
    assert b'"<cycle>"' in _log_bytes(logger)
    assert entry["metadata"]["a"] == 1


def test_shared_reference_is_not_a_cycle(storage: Path) -> None:
    shared = [1, 2]
    logger = UsageLogger("svc", storage_dir=storage)

    # The surrogate forces the fallback encoder, which tracks cycles.
    logger.log_usage("op", metadata={"a": shared, "b": shared, "s": "\ud800"})

    stored = list(iter_entries([logger.log_file]))[-1]["metadata"]
    assert stored == {"a": [1, 2], "b": [1, 2], "s": "\ufffd"}


@pytest.mark.parametrize("depth", [100, 300])
def test_deep_nesting_writes_one_line(storage: Path, depth: int) -> None:
    nested: dict[str, Any] = {}
    innermost = nested
    for _ in range(depth):
        innermost["d"] = {}
        innermost = innermost["d"]
    innermost["s"] = "\ud800"
    logger = UsageLogger("svc", storage_dir=storage)

    assert logger.log_usage("deep", metadata=nested) is not None

    stored = list(iter_entries([logger.log_file]))[-1]["metadata"]
    levels = 0
    while isinstance(stored, dict):
        stored = stored["d"]
        levels += 1
    assert stored == "<too deep>"
    assert levels == 64


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (b"\xff\x00bytes", "\\xff\x00bytes"),
        ({3, 1, 2}, "[1, 2, 3]"),
        (Path("/tmp/x"), "/tmp/x"),
        (Decimal("1.10"), "1.10"),
        (frozenset(), "[]"),
    ],
    ids=["bytes", "set", "path", "decimal", "frozenset"],
)
@pytest.mark.parametrize("force_fallback", [False, True])
def test_unencodable_values_become_strings(
    storage: Path, value: object, text: str, force_fallback: bool
) -> None:
    metadata: dict[str, Any] = {"v": value}
    if force_fallback:
        metadata["s"] = "\udcff"
    logger = UsageLogger("svc", storage_dir=storage)

    logger.log_usage("op", metadata=metadata)
    with pytest.raises(TypeError, match="not JSON serializable"):
        UsageLogger("svc", storage_dir=storage, strict=True).log_usage(
            "op", metadata={"v": value}
        )

    entries = list(iter_entries([logger.log_file]))
    assert len(entries) == 1
    assert entries[0]["metadata"]["v"] == text


@pytest.mark.parametrize(
    "metadata",
    [
        {True: 1},
        {None: 1},
        {"x": math.nan},
        {"d": datetime.datetime(2025, 1, 1)},
    ],
    ids=["bool-key", "none-key", "nan", "datetime"],
)
def test_conversion_does_not_depend_on_other_values(
    storage: Path, metadata: dict[Any, Any]
) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    logger.log_usage("alone", metadata=metadata)
    logger.log_usage("beside", metadata={**metadata, "s": "\ud800"})

    alone, beside = (e["metadata"] for e in iter_entries([logger.log_file]))
    del beside["s"]
    assert alone == beside


def _nested(depth: int, innermost: dict[str, Any]) -> dict[str, Any]:
    metadata = innermost
    for _ in range(depth):
        metadata = {"d": metadata}
    return metadata


def _cyclic_credentials() -> dict[str, Any]:
    credentials: dict[str, Any] = {"password": "hunter2"}
    credentials["again"] = credentials
    return {"request": credentials}


@pytest.mark.parametrize(
    "metadata",
    [_nested(40, {"api_key": "hunter2"}), _cyclic_credentials()],
    ids=["nested-40", "cycle"],
)
def test_credentials_never_reach_the_log(
    storage: Path, metadata: dict[str, Any]
) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    logger.log_usage("op", metadata=metadata)

    line = _log_bytes(logger)
    assert line.count(b"\n") == 1
    assert b"hunter2" not in line
    assert REDACTED.encode() in line or b"<too deep>" in line


def _without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), f"duplicate keys {names}"
    return dict(pairs)


def test_colliding_keys_lose_no_value(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    try:
        logger.log_usage("op", metadata={1: "a", "1": "b"})
    except (ValueError, TypeError):
        assert _log_bytes(logger) == b""
        return

    line = _log_bytes(logger)
    metadata = json.loads(line, object_pairs_hook=_without_duplicate_keys)["metadata"]
    assert sorted(metadata.values()) == ["a", "b"]


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for this object")


def test_unprintable_metadata_value_does_not_escape(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    try:
        entry = logger.log_usage("op", metadata={"v": _Unprintable()})
    except TypeError:
        assert _log_bytes(logger) == b""
        return

    assert entry is not None
    assert len(list(iter_entries([logger.log_file]))) == 1


def test_huge_metadata_integer_is_stored(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    logger.log_usage("op", metadata={"n": 2**70})

    stored = list(iter_entries([logger.log_file]))[-1]["metadata"]["n"]
    assert stored == str(2**70)


# -- arguments ---------------------------------------------------------------

token_counts = st.one_of(
    st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.floats(),
    texts,
)
durations = st.one_of(
    st.floats(),
    st.integers(),
    st.booleans(),
    st.none(),
    texts,
)
operations = st.one_of(texts, st.none(), st.integers(), st.binary(max_size=8))


@FUZZ
@given(
    operation=operations,
    tokens=token_counts,
    input_tokens=token_counts,
    duration=durations,
    error_type=st.one_of(st.none(), texts),
    error_message=st.one_of(st.none(), texts),
    model=st.one_of(st.none(), texts),
)
def test_fuzzed_arguments_write_one_line_or_raise(
    fuzz_logger: UsageLogger,
    operation: Any,
    tokens: Any,
    input_tokens: Any,
    duration: Any,
    error_type: Any,
    error_message: Any,
    model: Any,
) -> None:
    before = _log_bytes(fuzz_logger)

    try:
        returned = fuzz_logger.log_usage(
            operation,
            tokens=tokens,
            duration=duration,
            error_type=error_type,
            error_message=error_message,
            model=model,
            input_tokens=input_tokens,
        )
    except (ValueError, TypeError):
        assert _log_bytes(fuzz_logger) == before
        return

    assert returned is not None
    stored = _appended_entry(fuzz_logger, before)
    assert stored["operation"] == _clean(operation)
    assert stored["duration_seconds"] == float(duration)
    assert stored["error_type"] == _optional_clean(error_type)
    assert stored["error_message"] == _optional_clean(error_message)
    assert stored.get("model") == _optional_clean(model)
    if tokens is not None:
        assert stored["tokens"] == tokens
    elif input_tokens is not None:
        assert stored["tokens"] == input_tokens


def _optional_clean(text: str | None) -> str | None:
    return None if text is None else _clean(text)


@pytest.mark.parametrize("field", ["operation", "error_type", "error_message", "model"])
def test_surrogates_in_text_fields_are_replaced(storage: Path, field: str) -> None:
    arguments: dict[str, Any] = {"operation": "op", field: "bad \udcff name"}
    logger = UsageLogger("svc", storage_dir=storage)

    logger.log_usage(**arguments)

    entry = list(iter_entries([logger.log_file]))[-1]
    assert entry[field] == "bad \ufffd name"


@pytest.mark.parametrize("argument", ["duration", "cost_usd"])
def test_huge_number_raises_value_error(storage: Path, argument: str) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    with pytest.raises(ValueError, match=argument.split("_")[0]):
        logger.log_usage("op", **{argument: 10**400})


@pytest.mark.parametrize("argument", ["tokens", "input_tokens"])
def test_token_count_beyond_64_bits_raises_value_error(
    storage: Path, argument: str
) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    with pytest.raises(ValueError, match=argument):
        logger.log_usage("op", **{argument: 2**64})


# -- size limit --------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True])
def test_oversized_entry_raises_and_writes_nothing(storage: Path, strict: bool) -> None:
    logger = UsageLogger(
        "svc", storage_dir=storage, strict=strict, max_entry_bytes=2000
    )
    logger.log_usage("small", metadata={"pad": "x" * 1000})
    before = _log_bytes(logger)

    with pytest.raises(ValueError) as raised:
        logger.log_usage("large", metadata={"pad": "x" * 3000})

    message = str(raised.value)
    assert "'large'" in message
    assert "over the limit of 2000" in message
    assert "max_entry_bytes" in message
    assert _log_bytes(logger) == before
    assert logger.dropped_entries == 0


def test_default_limit_rejects_two_megabytes(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage)

    with pytest.raises(ValueError, match="over the limit of 1048576"):
        logger.log_usage("huge", metadata={"pad": "x" * (2 << 20)})

    assert _log_bytes(logger) == b""


def test_oversized_entry_in_batch_writes_nothing(storage: Path) -> None:
    logger = UsageLogger("svc", storage_dir=storage, max_entry_bytes=2000)
    template = logger.log_usage("template")
    assert template is not None
    before = _log_bytes(logger)
    small = dict(template, id="small-1")
    large = dict(template, id="large-1", metadata={"pad": "x" * 3000})

    with pytest.raises(ValueError, match="over the limit"):
        logger.write_entries([small, large])

    assert _log_bytes(logger) == before
    # The lock was released: the next append goes through.
    assert logger.log_usage("after") is not None


# -- the reader --------------------------------------------------------------


def _read(content: bytes) -> tuple[list[dict[str, Any]], ReadStats]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "svc.jsonl"
        path.write_bytes(content)
        stats = ReadStats()
        return list(iter_entries([path], stats)), stats


@FUZZ
@given(content=st.binary(max_size=2000))
def test_reader_never_raises_on_bytes(content: bytes) -> None:
    entries, stats = _read(content)

    lines = content.count(b"\n") + (0 if content.endswith(b"\n") or not content else 1)
    assert stats.lines == lines
    assert stats.lines == len(entries) + stats.skipped_lines
    for entry in entries:
        assert type(entry) is dict
        assert type(entry["timestamp"]) is str


entry_lines = st.builds(
    lambda tokens, text: orjson.dumps(
        {"timestamp": "2025-12-05T10:30:00.000000Z", "tokens": tokens, "note": text},
        option=orjson.OPT_APPEND_NEWLINE,
    ),
    st.integers(0, 2**63),
    st.text(max_size=30),
)


@FUZZ
@given(
    pieces=st.lists(st.tuples(entry_lines, st.booleans(), st.floats(0, 1)), max_size=20)
)
def test_reader_skips_only_torn_lines(pieces: list[tuple[bytes, bool, float]]) -> None:
    # A torn line is a strict prefix of an entry line. The next writer starts a
    # fresh line after it, as Appender does.
    content = b""
    expected = []
    torn = 0
    for line, is_torn, fraction in pieces:
        if is_torn:
            content += line[: int(fraction * (len(line) - 2))] + b"\n"
            torn += 1
        else:
            content += line
            expected.append(orjson.loads(line))

    entries, stats = _read(content)

    assert entries == expected
    assert stats.skipped_lines == torn


# -- planted files -----------------------------------------------------------


def test_files_are_owner_only_under_open_umask(storage: Path) -> None:
    old_umask = os.umask(0)
    try:
        UsageLogger("svc", storage_dir=storage).log_usage("op")
    finally:
        os.umask(old_umask)

    assert stat.S_IMODE(storage.stat().st_mode) == 0o700
    for name in ("svc.jsonl", "svc.jsonl.lock", "svc_session.json"):
        assert stat.S_IMODE((storage / name).stat().st_mode) == 0o600, name


def test_symlinked_storage_directory_is_rejected(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)

    logger = UsageLogger("svc", storage_dir=link)
    assert logger.log_usage("op") is None
    assert logger.dropped_entries == 1
    with pytest.raises(StorageError) as raised:
        UsageLogger("svc", storage_dir=link, strict=True).log_usage("op")

    assert raised.value.path == link
    assert os.listdir(real) == []


def test_symlink_planted_at_session_while_running(
    storage: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leyline_usage.session, "ACTIVITY_REFRESH_SECONDS", 0.0)
    logger = UsageLogger("svc", storage_dir=storage)
    logger.log_usage("before")
    target = tmp_path / "target"
    target.write_text("do not touch\n")
    session_file = storage / "svc_session.json"
    session_file.unlink()
    session_file.symlink_to(target)

    logger.log_usage("after")

    assert target.read_text() == "do not touch\n"
    operations = [e["operation"] for e in iter_entries([logger.log_file])]
    assert operations == ["before", "after"]


def test_reader_rejects_symlinked_log(storage: Path, tmp_path: Path) -> None:
    storage.mkdir(mode=0o700)
    target = tmp_path / "target.jsonl"
    target.write_bytes(b'{"timestamp": "2025-12-05T10:30:00Z", "operation": "x"}\n')
    (storage / "svc.jsonl").symlink_to(target)

    with pytest.raises(OSError):
        list(iter_entries([storage / "svc.jsonl"]))


class _FailingEnricher:
    @hookimpl
    def leyline_usage_enrich(
        self, entry: dict[str, Any], metadata: dict[str, Any]
    ) -> None:
        raise RuntimeError("enricher failed")


def test_plugin_failure_record_rejects_symlink(storage: Path, tmp_path: Path) -> None:
    storage.mkdir(mode=0o700)
    target = tmp_path / "target"
    target.write_text("do not touch\n")
    (storage / FAILURES_FILE).symlink_to(target)
    manager = plugin_manager()
    plugin = _FailingEnricher()
    manager.register(plugin, name="failing-enricher")
    try:
        entry = UsageLogger("svc", storage_dir=storage).log_usage("op")
    finally:
        manager.unregister(plugin)

    assert entry is not None
    assert target.read_text() == "do not touch\n"
