"""The downloadable error CSV: one row per problem, safe to open in a spreadsheet.

Every cell that a spreadsheet could treat as a formula (starting with = + - @, a tab or
a carriage return; OWASP "CSV injection") is prefixed with a single quote. Cells that
already start with a quote get one too, so ``read_error_report`` can remove exactly one
leading quote from any cell and recover the original text.
"""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable

from producers.records import RowError

BASE_COLUMNS = ["line", "field", "value", "reason"]
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r", "'")


def neutralise(cell) -> str:
    """The cell as text, prefixed with ' when a spreadsheet could run it as a formula."""
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(_DANGEROUS) else text


def restore(cell: str) -> str:
    """Undo ``neutralise``."""
    return cell[1:] if cell.startswith("'") else cell


def _label(column: str) -> str:
    """An original column named like a report column (e.g. a revocation list's "reason") is kept, renamed."""
    return f"{column} (in file)" if column in BASE_COLUMNS else column


def _columns(original_rows: dict[int, dict] | None) -> list[str]:
    extra: dict[str, None] = {}
    for row in (original_rows or {}).values():
        extra.update(dict.fromkeys(row))
    return list(extra)


def _write(errors: Iterable[RowError], stream, original_rows: dict[int, dict] | None, file_error: str) -> None:
    originals = _columns(original_rows)
    writer = csv.writer(stream, lineterminator="\r\n")
    writer.writerow([neutralise(c) for c in BASE_COLUMNS + [_label(c) for c in originals]])
    if file_error:
        writer.writerow(["", "", "", neutralise(file_error)])
    for e in errors:
        original = (original_rows or {}).get(e.line, {})
        cells = [e.line, e.field, e.value, e.reason] + [original.get(c, "") for c in originals]
        writer.writerow([neutralise(c) for c in cells])


def write_error_report(errors: list[RowError], out, *, original_rows: dict[int, dict] | None = None,
                       file_error: str = "") -> None:
    """Write ``errors`` as CSV to a path (UTF-8 with BOM, for Excel) or to an open text stream.

    Columns: line, field, value, reason, then the original row's columns when given
    (``original_rows`` maps a line number to {column name: cell}). ``file_error``: the file could not be
    read at all; it is the one row, with no line.
    """
    if isinstance(out, (str, os.PathLike)):
        with open(out, "w", encoding="utf-8-sig", newline="") as stream:
            _write(errors, stream, original_rows, file_error)
    else:
        _write(errors, out, original_rows, file_error)


def read_error_report(path) -> list[dict]:
    """The report's rows as dicts (cells restored, ``line`` as int). Accepts a path or text stream."""
    if isinstance(path, (str, os.PathLike)):
        with open(path, encoding="utf-8-sig", newline="") as stream:
            return read_error_report(stream)
    if isinstance(path, (bytes, bytearray)):
        return read_error_report(io.StringIO(bytes(path).decode("utf-8-sig"), newline=""))
    reader = csv.reader(path)
    header = [restore(c) for c in next(reader, [])]
    rows = []
    for cells in reader:
        row = dict(zip(header, (restore(c) for c in cells)))
        if row.get("line", "").isdigit():
            row["line"] = int(row["line"])
        rows.append(row)
    return rows
