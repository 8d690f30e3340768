"""Reading a revocation list: credential ids or fingerprints, each with a reason.

Same robust reading as the graduation list (producers.csv_reader: UTF-8 with or without BOM,
, ; TAB | delimiters, quoted newlines, exact line numbers), its own header aliases and rules.
"""
from __future__ import annotations

import re

from producers.columns import normalise_header
from producers.csv_reader import CsvFile, _field_count_error
from producers.records import CsvFileError, RowError

MAX_REASON = 500
_SYNONYMS = {
    "credential_id": ("credential id", "credential", "credential no", "credential number", "id", "token id"),
    "fingerprint": ("fingerprint", "credential fingerprint", "hash", "credential hash", "document hash"),
    "reason": ("reason", "revocation reason", "reason for revocation", "why", "comment", "note", "notes"),
}
ALIASES = {alias: column for column, aliases in _SYNONYMS.items() for alias in aliases}
_FINGERPRINT = re.compile(r"0[xX][0-9a-fA-F]{64}\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")  # line breaks and tabs are fine in a reason


def map_revocation_header(header: list[str]) -> dict[str, int]:
    mapping: dict[str, int] = {}
    for index, cell in enumerate(header):
        column = ALIASES.get(normalise_header(cell))
        if column is None:
            continue
        if column in mapping:
            raise CsvFileError(f'Columns "{header[mapping[column]].strip()}" and "{cell.strip()}" both mean {column}; '
                               f"remove or rename one of them.")
        mapping[column] = index
    missing = [] if ("credential_id" in mapping or "fingerprint" in mapping) else ["credential_id or fingerprint"]
    missing += [] if "reason" in mapping else ["reason"]
    if missing:
        found = ", ".join(c.strip() for c in header if c.strip()) or "(none)"
        raise CsvFileError(f"Missing required column(s): {', '.join(missing)}. Found columns: {found}.")
    return mapping


def _check(line: int, cells: dict[str, str]) -> tuple[dict | None, list[RowError]]:
    errors: list[RowError] = []
    cid, fp, reason = cells.get("credential_id", ""), cells.get("fingerprint", ""), cells.get("reason", "")
    if not cid and not fp:
        errors.append(RowError(line, "credential_id" if "credential_id" in cells else "fingerprint", "",
                               "is required (a credential id or a fingerprint)"))
    if cid and not (cid.isdigit() and int(cid) > 0):
        errors.append(RowError(line, "credential_id", cid, "is not a credential id (a whole number from 1)"))
    if fp and not _FINGERPRINT.match(fp):
        errors.append(RowError(line, "fingerprint", fp, "is not a fingerprint (0x followed by 64 hex digits)"))
    if not reason:
        errors.append(RowError(line, "reason", "", "is required"))
    elif bad := _CONTROL.search(reason):
        errors.append(RowError(line, "reason", reason, f"contains a control character (U+{ord(bad.group()):04X})"))
    elif len(reason) > MAX_REASON:
        errors.append(RowError(line, "reason", reason[:40] + "…",
                               f"is too long ({len(reason)} characters, at most {MAX_REASON})"))
    if errors:
        return None, errors
    return {"line": line, "reason": reason, "credential_id": int(cid) if cid else None,
            "fingerprint": fp.lower() if fp else None}, []


def read_revocations(source) -> tuple[list[dict], list[RowError], int]:
    """(valid requests as dicts, row errors, data rows read). CsvFileError for file-level problems."""
    requests: list[dict] = []
    errors: list[RowError] = []
    first_line: dict[tuple, int] = {}
    total = 0
    with CsvFile(source) as f:
        mapping = map_revocation_header(f.header)
        ncols = len(f.header)
        for line, row in f.rows():
            total += 1
            if (len(row) > ncols and "".join(row[ncols:]).strip()) or (len(row) < ncols and f._last > line):
                errors.append(_field_count_error(line, f._last, row, ncols, f.delimiter))
                continue
            cells = {name: (row[i].strip() if i < len(row) else "") for name, i in mapping.items()}
            request, row_errors = _check(line, cells)
            errors.extend(row_errors)
            if request is None:
                continue
            key = ("id", request["credential_id"]) if request["credential_id"] else ("fp", request["fingerprint"])
            if key in first_line:
                errors.append(RowError(line, "", "", f"duplicate of line {first_line[key]}"))
                continue
            first_line[key] = line
            requests.append(request)
    if total == 0:
        raise CsvFileError("The file has a header row but no data rows.")
    return requests, errors, total
