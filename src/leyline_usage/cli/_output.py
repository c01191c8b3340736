"""Rendering for the CLI: aligned tables for people, JSON and CSV for programs."""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import orjson

Column = tuple[str, str]  # (key in the row, heading)


def emit(
    data: Any,
    fmt: str,
    rows: Sequence[Mapping[str, Any]] | None = None,
    columns: Sequence[Column] = (),
    out: TextIO | None = None,
) -> None:
    """Write ``data`` as JSON, or ``rows`` as CSV or as a table."""
    out = out or sys.stdout
    if fmt == "json":
        out.write(
            orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode() + "\n"
        )
        return
    rows = rows if rows is not None else []
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([key for key, _ in columns])
        for row in rows:
            writer.writerow([_csv_cell(row.get(key)) for key, _ in columns])
        return
    write_table(rows, columns, out)


def write_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], out: TextIO
) -> None:
    """Write ``rows`` as a left-aligned text table, numbers aligned right."""
    cells = [[format_cell(row.get(key)) for key, _ in columns] for row in rows]
    headings = [heading for _, heading in columns]
    widths = [
        max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headings)
    ]
    numeric = [
        all(
            isinstance(row.get(key), (int, float)) or row.get(key) is None
            for row in rows
        )
        and bool(rows)
        for key, _ in columns
    ]
    out.write(_join(headings, widths, numeric) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row_cells in cells:
        out.write(_join(row_cells, widths, numeric) + "\n")


def format_cell(value: Any) -> str:
    """Format one value for a table."""
    if value is None:
        return "-"
    if value is True:
        return "ok"
    if value is False:
        return "FAIL"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return "" if value is None else value


def _join(values: Sequence[str], widths: Sequence[int], numeric: Sequence[bool]) -> str:
    parts = [
        v.rjust(w) if n else v.ljust(w)
        for v, w, n in zip(values, widths, numeric, strict=True)
    ]
    return "  ".join(parts).rstrip()
