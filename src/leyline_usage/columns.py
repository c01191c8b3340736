"""Index a chunk of log lines column by column, without a dict per entry.

Building an index parses every line once. Parsing each line into a dict and
adding it to its totals field by field costs a few microseconds of Python per
entry. Here msgspec decodes each line into a small typed record, skipping the
keys no total needs (metadata, messages, ids), and the totals are sums over
columns, which run in C.

This path only takes chunks whose totals it computes exactly as the per-line
path does: every line must decode into a record whose fields have the types
the totals expect. Anything else (a blank or broken line, text where a count
should be, bytes that are not UTF-8) makes :func:`chunk_totals` return None,
and the caller parses that chunk line by line instead.

NOTE: msgspec checks the syntax of the values it skips but not their range.
A line with a number beyond the range of a double in a skipped key (say
``"metadata": {"x": 1e400}``) is counted here, while orjson, and so the
per-line path and a full scan, rejects it. leyline-usage never writes such a
number; a line from another tool can hold one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate, compress, groupby
from operator import attrgetter, itemgetter, not_
from typing import Annotated, Any

import msgspec
import orjson

from leyline_usage.query import Pricer, Totals

# orjson reads integers from -2**63 to 2**64 - 1 as int and larger ones as
# float, which no total counts. msgspec bounds must fit in 64 signed bits, so
# the rare count from 2**63 up sends its chunk to the per-line path.
_Count = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]

# Hour buckets are keyed by the first 13 characters of the timestamp.
_HOUR = slice(0, 13)


class _Record(msgspec.Struct, gc=False):
    """The fields of an entry that the index totals; other keys are skipped."""

    timestamp: str
    session_id: str
    service: str
    tokens: _Count
    success: bool
    duration_seconds: float
    model: str | None = None
    # A count written as null fails the decode and sends its chunk to the
    # per-line path, so the sums below need no test for None.
    input_tokens: _Count = 0
    output_tokens: _Count = 0
    cache_read_tokens: _Count = 0
    cache_write_tokens: _Count = 0
    cost_usd: float | None = None


_decode = msgspec.json.Decoder(_Record).decode
# orjson's limit on nesting.
_ORJSON_DEPTH = 1024
_KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
_column = {
    name: attrgetter(name)
    for name in (
        "timestamp", "session_id", "service", "tokens", "success",
        "duration_seconds", "model", "cost_usd", *_KINDS,
    )
}  # fmt: skip


@dataclass
class ChunkTotals:
    """The totals, hour spans and failed-line offsets of one chunk."""

    # Totals per (hour, session id, service).
    groups: dict[tuple[str, str, str], Totals]
    # Per hour, the byte offsets of its first line's start and last line's end.
    spans: dict[str, list[int]]
    # Byte offsets of the failed entries' lines.
    errors: list[int]
    lines: int
    skipped: int = 0


def chunk_totals(data: bytes, base: int, pricer: Pricer) -> ChunkTotals | None:
    """Return the totals of the complete lines in ``data``, or None to parse per line.

    ``data`` ends with a newline and starts at byte ``base`` of its log.
    Entries without a stored cost are priced by ``pricer``.
    """
    lines = data.split(b"\n")
    lines.pop()
    return lines_totals(lines, base, pricer, ascii_only=data.isascii())


def lines_totals(
    lines: list[bytes], base: int, pricer: Pricer, *, ascii_only: bool
) -> ChunkTotals | None:
    """Return the totals of ``lines`` (no newlines), or None to parse them per line.

    The lines are consecutive and the first starts at byte ``base``. Pass
    ``ascii_only=True`` only if every byte of them is known to be ASCII.
    """
    if not lines:
        return ChunkTotals({}, {}, [], 0)
    # msgspec skips strings without checking their UTF-8, while orjson
    # rejects the whole line. Newlines keep a sequence cut at the end of one
    # line from being completed by the next.
    if not ascii_only:
        try:
            b"\n".join(lines).decode()
        except UnicodeDecodeError:
            return None
    # orjson rejects nesting deeper than 1024 levels, msgspec only at the
    # interpreter's recursion limit. Each level takes two bytes of a line.
    if sys.getrecursionlimit() > _ORJSON_DEPTH and max(map(len, lines)) >= (
        2 * _ORJSON_DEPTH
    ):
        return None
    try:
        # One decode per line: decoding the chunk at once would read newlines
        # as whitespace, so two objects on one line could make up for a
        # blank line.
        records = list(map(_decode, lines))
    except (msgspec.DecodeError, RecursionError):
        return None

    # starts[i] is where line i begins and starts[i + 1] where it ends.
    starts = list(accumulate(map((1).__add__, map(len, lines)), initial=base))
    stamps = list(map(_column["timestamp"], records))
    sessions = list(map(_column["session_id"], records))
    services = list(map(_column["service"], records))
    successes = list(map(_column["success"], records))
    costs, priced = _costs(records, lines, pricer)
    labels = _labels(records)

    groups: dict[tuple[str, str, str], Totals] = {}
    spans: dict[str, list[int]] = {}
    if services.count(services[0]) == len(services):
        run_ends = _run_ends(sessions)
    else:
        run_ends = _run_ends(sessions, services)
    first = 0
    for end in run_ends:
        for last, hour, low, high in _hour_runs(stamps, first, end):
            key = (hour, sessions[first], services[first])
            totals = groups.get(key)
            if totals is None:
                totals = groups[key] = Totals()
            _add_run(
                totals, records[first:last], low, high, successes[first:last],
                costs[first:last], priced[first:last], labels[first:last],
            )  # fmt: skip
            span = spans.get(hour)
            if span is None:
                spans[hour] = [starts[first], starts[last]]
            else:
                span[1] = starts[last]
            first = last
    errors = list(compress(starts, map(not_, successes)))
    return ChunkTotals(groups, spans, errors, len(lines))


def _run_ends(*columns: list[str]) -> list[int]:
    """Return where each run of rows equal in every column ends, in order."""
    ends = set()
    for column in columns:
        position = 0
        for _, run in groupby(column):
            position += len(list(run))
            ends.add(position)
    return sorted(ends)


def _hour_runs(
    stamps: list[str], first: int, end: int
) -> Iterator[tuple[int, str, str, str]]:
    """Split rows ``first`` to ``end`` into runs of one hour, in order.

    Yield each run's end, its hour and its earliest and latest timestamps.
    """
    run = stamps[first:end]
    low, high = min(run), max(run)
    hour = low[_HOUR]
    # Any text between two that share their first 13 characters shares them
    # too. So when the earliest and latest are of one hour, all the run is.
    if high[_HOUR] == hour:
        yield end, hour, low, high
        return
    for hour, group in groupby(run, key=itemgetter(_HOUR)):
        part = list(group)
        first += len(part)
        yield first, hour, min(part), max(part)


def _labels(records: list[_Record]) -> list[str]:
    """Return each entry's model as summaries label it."""
    labels: list[str | None] = list(map(_column["model"], records))
    for missing in (None, ""):
        for position in _positions(labels, missing):
            labels[position] = "(unknown)"
    return labels  # type: ignore[return-value]


def _positions(values: list[Any], target: object) -> Iterator[int]:
    """Yield the positions of ``target`` in ``values``, found by C-level search."""
    position = -1
    while True:
        try:
            position = values.index(target, position + 1)
        except ValueError:
            return
        yield position


def _costs(
    records: list[_Record], lines: list[bytes], pricer: Pricer
) -> tuple[list[float], list[bool]]:
    """Return each entry's cost and whether it was priced (not a fallback estimate).

    A stored cost is taken as is. An entry without one gets the fallback rate
    if it names no model, or a model the price tables lack on its day. Any
    other entry is priced from its full line, as the per-line path does.
    """
    fallback_per_token = pricer.fallback_per_token
    never_priced = pricer.never_priced
    costs: list[float | None] = list(map(_column["cost_usd"], records))
    priced = [True] * len(costs)
    for position in _positions(costs, None):
        record = records[position]
        model = record.model
        if model is None or never_priced(model, record.timestamp[:10]):
            costs[position] = record.tokens * fallback_per_token
            priced[position] = False
        else:
            costs[position], priced[position] = pricer.price(
                orjson.loads(lines[position])
            )
    return costs, priced  # type: ignore[return-value]


def _add_run(
    totals: Totals,
    records: list[_Record],
    low: str,
    high: str,
    successes: list[bool],
    costs: list[float],
    priced: list[bool],
    labels: list[str],
) -> None:
    """Add a run of entries of one hour, session and service to ``totals``.

    ``low`` and ``high`` are the run's earliest and latest timestamps.
    """
    count = len(records)
    totals.operations += count
    totals.successes += successes.count(True)
    totals.tokens += sum(map(_column["tokens"], records))
    totals.duration += sum(map(_column["duration_seconds"], records))
    by_kind = totals.by_kind
    for kind in _KINDS:
        by_kind[kind] += sum(map(_column[kind], records))
    run_cost = sum(costs)
    totals.cost += run_cost
    totals.unpriced += count - priced.count(True)
    by_model = totals.cost_by_model
    if labels.count(labels[0]) == count:
        by_model[labels[0]] = by_model.get(labels[0], 0.0) + run_cost
    else:
        get = by_model.get
        for label, cost in zip(labels, costs, strict=True):
            by_model[label] = get(label, 0.0) + cost
    if totals.first is None or low < totals.first:
        totals.first = low
    if totals.last is None or high > totals.last:
        totals.last = high
