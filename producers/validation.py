"""Validating a graduation list: per-field rules, canonical documents, fingerprints, duplicates.

Works chunk by chunk (vectorised with pandas where it matters) so a million-row file is
validated in bounded memory; only a compact array of fingerprints spans the whole file.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from producers.hashing import keccak

from producers.columns import (  # noqa: F401  (field rules re-exported for callers)
    MAX_LENGTH, REQUIRED, CONTROL, check_address, check_expiry, check_graduation_date, control_reason,
    date_reading, parse_date, to_checksum,
)
from producers.csv_reader import iter_raw_chunks
from producers.records import CsvFileError, RowError
from producers.salt import salt

COLUMNS = REQUIRED  # ("student_id", "student_name", "student_wallet", "degree", "major", "graduation_date")
ROW_COLUMNS = ["line", *COLUMNS, "institution", "expires_at", "document", "fingerprint"]
def _map_unique(values: pd.Series, func) -> tuple[pd.Series, pd.Series]:
    """Apply ``func`` (-> (result, reason)) once per distinct value; two aligned Series."""
    results = {v: func(v) for v in pd.unique(values)}
    first = values.map({v: r[0] for v, r in results.items()}).astype(object)
    return first, values.map({v: r[1] for v, r in results.items()}).astype(object)


def _json_string(s: pd.Series) -> pd.Series:
    """JCS string literal for text already free of control characters (only \\ and " need escaping)."""
    return '"' + s.str.replace("\\", "\\\\", regex=False).str.replace('"', '\\"', regex=False) + '"'


def _documents(v: pd.DataFrame, secret: bytes | None = None) -> pd.Series:
    """canonical_json(credential_document(..., secret=secret)) for every row, built column-wise (keys pre-sorted;
    a version 2 document's "salt" sorts between "major" and "studentId")."""
    expires = np.where(v["expires_at"] != 0, ',"expiresAt":' + v["expires_at"].astype(str), "")
    head = ('{"degree":' + _json_string(v["degree"]) + expires + ',"graduationDate":"' + v["graduation_date"]
            + '","institution":"' + v["institution"] + '","major":' + _json_string(v["major"]))
    tail = (',"studentId":' + _json_string(v["student_id"]) + ',"studentName":'
            + _json_string(v["student_name"]) + ',"studentWallet":"' + v["student_wallet"]
            + '","type":"BlockProofCredential","version":' + ("1}" if secret is None else "2}"))
    if secret is None:
        return head + tail
    unsalted = head + tail
    salts = [salt(secret, d.encode("utf-8")) for d in unsalted]
    return head + pd.Series([',"salt":"' + s + '"' for s in salts], index=v.index, dtype=object) + tail


@dataclass
class ValidatedChunk:
    rows: pd.DataFrame   # valid rows only, columns ROW_COLUMNS
    errors: list[RowError]
    data_rows: int = 0   # data rows read in this chunk (valid + invalid)
    readings: list[tuple[int, str, str, str]] = field(default_factory=list)  # (line, field, value, reading)


class DateReadings:
    """NN/NN/YYYY dates of valid rows that were read the only way they can be (a number above 12 is not a month),
    summarised as one warning per column and reading, so the user can check that the reading was meant."""

    SHOWN_LINES = 10

    def __init__(self):
        self._seen: dict[tuple[str, str], list] = {}  # (field, reading) -> [count, first (line, value), lines]

    def add(self, readings: list[tuple[int, str, str, str]]) -> None:
        for line, column, value, reading in readings:
            entry = self._seen.setdefault((column, reading), [0, (line, value), []])
            entry[0] += 1
            if len(entry[2]) <= self.SHOWN_LINES:
                entry[2].append(line)

    def warnings(self) -> list[str]:
        out = []
        for (column, reading), (count, (line, value), lines) in self._seen.items():
            text = (f'Line {line}, {column} "{value}" was read as {parse_date(value)[0].isoformat()} ({reading}, '
                    f"the only possible reading)")
            if count > 1:
                more = ", ".join(map(str, lines[1 : self.SHOWN_LINES + 1])) + (", …" if count > self.SHOWN_LINES + 1 else "")
                one = count == 2
                text += (f"; so {'was' if one else 'were'} {count - 1:,} more {column} value{'' if one else 's'} "
                         f"written {reading} (line{'' if one else 's'} {more})")
            out.append(text + ". Write dates as YYYY-MM-DD to leave no doubt.")
        return out


class _Validator:
    def __init__(self, institution: str | None, today: dt.date, secret: bytes | None = None):
        self.today, self.institution, self.secret = today, None, secret
        if institution is not None:
            self.institution, reason = check_address(institution.strip())
            if reason:
                raise CsvFileError(f'The institution address "{institution}" {reason}.')
        self.prefix = np.empty(0, np.uint64)    # first 8 bytes of each fingerprint seen, sorted
        self.digest = np.empty(0, "S32")        # the full fingerprints, same order
        self.first_line = np.empty(0, np.int64)

    def chunk(self, f: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple], list[tuple]]:
        reasons, values = {}, {}
        for col in COLUMNS:
            s = f[col]
            reason = pd.Series(np.where(s == "", "is required", None), index=f.index, dtype=object)
            todo = reason.isna()
            if col in MAX_LENGTH:
                ctrl = todo & s.str.contains(CONTROL)
                reason[ctrl] = s[ctrl].map(control_reason)
                lengths = s.str.len()
                long = todo & ~ctrl & (lengths > MAX_LENGTH[col])
                reason[long] = lengths[long].map(lambda n, m=MAX_LENGTH[col]: f"is too long ({n} characters, at most {m})")
                values[col] = s
            else:
                check = check_address if col == "student_wallet" else (lambda v: check_graduation_date(v, self.today))
                values[col], reason[todo] = _map_unique(s[todo], check)
            reasons[col] = reason
        self._institution(f, reasons, values)
        if "expires_at" in f:
            s = f["expires_at"]
            values["expires_at"] = pd.Series(0, index=f.index, dtype=object)
            reason = pd.Series(None, index=f.index, dtype=object)
            given = s != ""
            values["expires_at"][given], reason[given] = _map_unique(s[given], lambda v: check_expiry(v, self.today))
            reasons["expires_at"] = reason
        else:
            values["expires_at"] = pd.Series(0, index=f.index, dtype=object)
        errors = [(line, col, value, why) for col, reason in reasons.items()
                  for line, value, why in zip(f["line"][reason.notna()], f[col][reason.notna()] if col in f
                                              else [""] * int(reason.notna().sum()), reason[reason.notna()])]
        ok = ~pd.concat(reasons, axis=1).notna().any(axis=1)
        readings = self._readings(f, ok)
        v = pd.DataFrame({"line": f["line"][ok], **{k: s.reindex(f.index)[ok] for k, s in values.items()}})
        v["expires_at"] = v["expires_at"].astype("int64")
        v["document"] = _documents(v, self.secret)
        digests = [keccak(d.encode("utf-8")) for d in v["document"]]
        v["fingerprint"] = ["0x" + d.hex() for d in digests]
        keep = self._deduplicate(v, digests, errors)
        if readings and not keep.all():
            kept = set(v["line"][keep].tolist())
            readings = [r for r in readings if r[0] in kept]
        return v[keep][ROW_COLUMNS].reset_index(drop=True), errors, readings

    @staticmethod
    def _readings(f: pd.DataFrame, ok: pd.Series) -> list[tuple[int, str, str, str]]:
        found = []
        for col in ("graduation_date", "expires_at"):
            if col not in f:
                continue
            s = f[col][ok]
            read = s.map({v: date_reading(v) for v in pd.unique(s)})
            found += [(int(line), col, value, reading) for line, value, reading in
                      zip(f["line"][ok][read != ""], s[read != ""], read[read != ""])]
        return found

    def _institution(self, f, reasons, values) -> None:
        kw = self.institution
        if "institution" not in f:
            if kw is None:
                raise CsvFileError("No institution given: add an institution column or pass the institution address.")
            values["institution"] = pd.Series(kw, index=f.index, dtype=object)
            return
        s = f["institution"]
        given = s != ""
        reason = pd.Series(None if kw else "is required", index=f.index, dtype=object)
        reason[given] = None
        norm = pd.Series(kw, index=f.index, dtype=object)
        norm[given], reason[given] = _map_unique(s[given], check_address)
        if kw:
            differs = given & reason.isna() & (norm != kw)
            reason[differs] = f"does not match the institution given for the upload ({kw})"
        reasons["institution"], values["institution"] = reason, norm

    def _deduplicate(self, v: pd.DataFrame, digests: list[bytes], errors: list) -> np.ndarray:
        if not digests:
            return np.zeros(0, bool)
        lines = v["line"].to_numpy(np.int64)
        full = np.array(digests, dtype="S32")
        prefix = np.frombuffer(b"".join(digests), dtype=">u8").reshape(-1, 4)[:, 0].astype(np.uint64)
        pos = np.minimum(np.searchsorted(self.prefix, prefix), max(len(self.prefix) - 1, 0))
        seen = (self.prefix[pos] == prefix) & (self.digest[pos] == full) if len(self.prefix) else np.zeros(len(lines), bool)
        first_in_chunk = v.groupby("fingerprint", sort=False)["line"].transform("min").to_numpy(np.int64)
        original = np.where(seen, self.first_line[pos] if len(self.prefix) else 0, first_in_chunk)
        duplicate = original != lines
        errors.extend((int(line), "", "", f"duplicate of line {o}") for line, o in zip(lines[duplicate], original[duplicate]))
        new = ~duplicate & ~seen
        order = np.argsort(prefix[new], kind="stable")
        at = np.searchsorted(self.prefix, prefix[new][order])
        self.prefix = np.insert(self.prefix, at, prefix[new][order])
        self.digest = np.insert(self.digest, at, full[new][order])
        self.first_line = np.insert(self.first_line, at, lines[new][order])
        return ~duplicate


def iter_validated_chunks(source, *, institution: str | None = None, today: dt.date | None = None,
                          chunk_rows: int = 20_000, secret: bytes | None = None) -> Iterator[ValidatedChunk]:
    """Stream ``source`` (path, bytes or binary file) as validated chunks; CsvFileError for file-level problems.
    With the institution's ``secret`` the documents are version 2 (private fingerprints)."""
    validator = _Validator(institution, today or dt.datetime.now(dt.timezone.utc).date(), secret)
    for raw in iter_raw_chunks(source, chunk_rows):
        rows, found, readings = validator.chunk(raw.frame)
        errors = raw.errors + [RowError(int(line), col, str(value), why) for line, col, value, why in found]
        order = {c: i for i, c in enumerate(["", *COLUMNS, "institution", "expires_at"])}
        errors.sort(key=lambda e: (e.line, order.get(e.field, 99)))
        readings.sort()
        yield ValidatedChunk(rows, errors, raw.rows, readings)


def validate_file(source, *, institution: str | None = None, today: dt.date | None = None,
                  secret: bytes | None = None) -> tuple[pd.DataFrame, list[RowError], int]:
    """(all valid rows, all errors, number of data rows) for the whole file."""
    frames, errors, total = [], [], 0
    for chunk in iter_validated_chunks(source, institution=institution, today=today, secret=secret):
        frames.append(chunk.rows)
        errors.extend(chunk.errors)
        total += chunk.data_rows
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ROW_COLUMNS)
    return rows, errors, total
