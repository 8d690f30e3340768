"""Streaming, forgiving CSV reading: encoding checks, delimiter sniffing, exact line numbers."""
from __future__ import annotations

import codecs
import csv
import io
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pandas as pd

from producers.columns import map_header
from producers.records import CsvFileError, RowError

DELIMITERS = (",", ";", "\t", "|")
BLOCK = 1 << 20


def _open_binary(source):
    """(binary seekable file, close_when_done) for a path, bytes or binary file object."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source)), True
    if isinstance(source, (str, os.PathLike)):
        try:
            return open(source, "rb"), True
        except OSError as exc:
            raise CsvFileError(f"Cannot open {os.fspath(source)}: {exc.strerror}.") from exc
    if isinstance(source, io.TextIOBase):
        raise TypeError("pass a binary file object (open the file with 'rb')")
    if getattr(source, "seekable", lambda: False)():
        return source, False
    spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
    shutil.copyfileobj(source, spool, BLOCK)
    return spool, True


def _check_bytes(f) -> None:
    """File-level checks over the raw bytes: empty, UTF-16, binary, not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset, has_text, lines = 0, False, 1
    while True:
        block = f.read(BLOCK)
        if offset == 0 and block[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            raise CsvFileError("The file is UTF-16 text; save it as \"CSV UTF-8\" and upload it again.")
        if b"\x00" in block:
            raise CsvFileError("The file is not a CSV text file (it contains binary data).")
        buffered = decoder.getstate()[0]
        try:
            decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            line = lines + block[:max(exc.start - len(buffered), 0)].count(b"\n")
            bad = (buffered + block)[exc.start: exc.start + 1]
            raise CsvFileError(
                f"The file is not UTF-8 text (byte 0x{bad.hex().upper()} on line {line} is not valid UTF-8); "
                f"save it as \"CSV UTF-8\" and upload it again."
            ) from None
        if not block:
            break
        has_text = has_text or bool(block.replace(codecs.BOM_UTF8, b"").strip(b" \t\r\n,;|\""))
        lines += block.count(b"\n")
        offset += len(block)
    if not has_text:
        raise CsvFileError("The file is empty.")
    f.seek(0)


def sniff_delimiter(line: str) -> str:
    """The most frequent of , ; TAB | outside quotes in the header line (comma on a tie)."""
    outside = "".join(part for i, part in enumerate(line.split('"')) if i % 2 == 0)
    counts = {d: outside.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass
class RawChunk:
    frame: pd.DataFrame            # "line" + the mapped canonical columns, all strings
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0                  # data rows read (valid or not)


class CsvFile:
    """Context manager: ``with CsvFile(src) as f: f.header, f.header_line, f.rows()``."""

    def __init__(self, source):
        self.source = source

    def __enter__(self) -> "CsvFile":
        self._raw, self._close = _open_binary(self.source)
        try:
            self._raw.seek(0)  # always read from the start, also for a file object read before
            _check_bytes(self._raw)
            self._text = io.TextIOWrapper(self._raw, encoding="utf-8-sig", newline="")
            first = next((ln for ln in self._text if ln.strip()), "")
            self.delimiter = sniff_delimiter(first)
            self._text.seek(0)
            self._reader = csv.reader(self._text, delimiter=self.delimiter)
            self._last, self.header = 0, None
            for line, row in self._iter():
                self.header, self.header_line = [c.strip() for c in row], line
                break
            if self.header is None:
                raise CsvFileError("The file is empty.")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        text = getattr(self, "_text", None)
        if text is not None and not self._close:
            text.detach()
        elif text is not None:
            text.close()
        elif self._close:
            self._raw.close()

    def _iter(self) -> Iterator[tuple[int, list[str]]]:
        try:
            for row in self._reader:
                line, self._last = self._last + 1, self._reader.line_num
                if row and "".join(row).strip():
                    yield line, row
        except csv.Error as exc:
            raise CsvFileError(f"Line {self._last + 1} cannot be read ({exc}); "
                               f"check for an unclosed quotation mark.") from None

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(first line of the row, raw fields) for every non-blank data row."""
        return self._iter()


def _field_count_error(line: int, last: int, row: list[str], ncols: int, delimiter: str) -> RowError:
    fields = len(row)
    while fields and not row[fields - 1].strip():
        fields -= 1
    reason = f"has {fields} fields but the header has {ncols}"
    if last > line:
        reason += f" (the row spans lines {line}-{last}; check for an unclosed quotation mark)"
    return RowError(line, "", delimiter.join(row), reason)


def iter_raw_chunks(source, chunk_rows: int = 20_000) -> Iterator[RawChunk]:
    """Stream the file as DataFrames of stripped strings in canonical columns, plus structural errors."""
    with CsvFile(source) as f:
        mapping = map_header(f.header)
        ncols = len(f.header)
        names, indexes = list(mapping), list(mapping.values())
        total = 0
        while True:
            columns = {name: [] for name in ["line", *names]}
            errors, count = [], 0
            for line, row in f.rows():
                count += 1
                if (len(row) > ncols and "".join(row[ncols:]).strip()) or (len(row) < ncols and f._last > line):
                    errors.append(_field_count_error(line, f._last, row, ncols, f.delimiter))
                else:
                    columns["line"].append(line)
                    for name, i in zip(names, indexes):
                        columns[name].append(row[i].strip() if i < len(row) else "")
                if count >= chunk_rows:
                    break
            total += count
            if count == 0:
                if total == 0:
                    raise CsvFileError("The file has a header row but no data rows.")
                return
            frame = pd.DataFrame({k: pd.Series(v, dtype="int64" if k == "line" else object)
                                  for k, v in columns.items()})
            yield RawChunk(frame, errors, count)
            if count < chunk_rows:
                return


def read_original_rows(source, lines: Iterable[int]) -> dict[int, dict[str, str]]:
    """The original cells (keyed by the file's own header names) of the rows starting on ``lines``."""
    wanted, found = set(lines), {}
    with CsvFile(source) as f:
        names, seen = [], {}
        for i, name in enumerate(f.header):
            label = name or f"column {i + 1}"
            seen[label] = seen.get(label, 0) + 1
            names.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
        for line, row in f.rows():
            if line in wanted:
                found[line] = {n: (row[i] if i < len(row) else "") for i, n in enumerate(names)}
                if len(found) == len(wanted):
                    break
    return found
