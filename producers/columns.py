"""Mapping a CSV header to the canonical column names (aliases, synonyms, errors)."""
from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache

from producers.hashing import keccak

from producers.records import CsvFileError

MAX_LENGTH = {"student_id": 64, "student_name": 200, "degree": 200, "major": 200}
REQUIRED = ("student_id", "student_name", "student_wallet", "degree", "major", "graduation_date")
OPTIONAL = ("institution", "expires_at")

_SYNONYMS = {
    "student_id": ("student id", "id", "student number", "student no", "matriculation number",
                   "matriculation no", "matric number", "student identifier"),
    "student_name": ("student name", "name", "full name", "student", "graduate", "graduate name"),
    "student_wallet": ("student wallet", "wallet", "wallet address", "student wallet address", "eth address",
                       "ethereum address", "student address", "address"),
    "degree": ("degree", "degree title", "award", "qualification"),
    "major": ("major", "program", "programme", "field of study", "subject", "discipline"),
    "graduation_date": ("graduation date", "date", "graduated on", "graduation", "date of graduation",
                        "award date", "conferral date"),
    "institution": ("institution", "institution address", "issuer", "issuer address"),
    "expires_at": ("expires at", "expiry", "expires", "expiry date", "expiration", "expiration date",
                   "valid until"),
}
ALIASES = {alias: column for column, aliases in _SYNONYMS.items() for alias in aliases}
_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise_header(name: str) -> str:
    """Case-insensitive, surrounding spaces ignored, spaces / dashes / underscores equivalent."""
    return _SEPARATORS.sub(" ", name.replace("\ufeff", "")).strip().lower()


def canonical_column(name: str) -> str | None:
    """The canonical column a header cell means, or None when it is not one we use."""
    return ALIASES.get(normalise_header(name))


def map_header(header: list[str]) -> dict[str, int]:
    """Canonical column name -> index in the row, for the columns we use.

    Raises CsvFileError when a required column is missing or two headers mean the same column.
    """
    mapping: dict[str, int] = {}
    for index, cell in enumerate(header):
        column = canonical_column(cell)
        if column is None:
            continue
        if column in mapping:
            first = header[mapping[column]].strip()
            raise CsvFileError(
                f'Columns "{first}" and "{cell.strip()}" both mean {column}; '
                f"remove or rename one of them."
            )
        mapping[column] = index
    missing = [c for c in REQUIRED if c not in mapping]
    if missing:
        found = ", ".join(c.strip() for c in header if c.strip()) or "(none)"
        raise CsvFileError(f"Missing required column(s): {', '.join(missing)}. Found columns: {found}.")
    return mapping


# --- rules for the values of a column (pure functions; each returns (value, None) or (None, reason)) ---

EARLIEST = dt.date(1900, 1, 1)
_ADDRESS = re.compile(r"0[xX][0-9a-fA-F]{40}\Z")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_MONTHS = {m: i for i, names in enumerate(
    ["jan january", "feb february", "mar march", "apr april", "may", "jun june", "jul july",
     "aug august", "sep sept september", "oct october", "nov november", "dec december"], 1)
    for m in names.split()}
_NUMERIC = [  # (pattern, group order as (year, month, day))
    (re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]00:00(?::00(?:\.0+)?)?Z?)?\Z"), (1, 2, 3)),  # midnight ok
    (re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})\Z"), (1, 2, 3)),
    (re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})\Z"), (3, 2, 1)),
]
_DAY_MONTH = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?\.?[\s-]+([a-z]+)\.?,?[\s-]+(\d{4})\Z", re.I)
_MONTH_DAY = re.compile(r"([a-z]+)\.?[\s-]+(\d{1,2})(?:st|nd|rd|th)?,?[\s-]+(\d{4})\Z", re.I)
_SLASHED = re.compile(r"(\d{1,2})([/-])(\d{1,2})\2(\d{2,4})\Z")  # NN/NN/YYYY or NN-NN-YYYY: which is the month?
NOT_A_DATE = "is not a date; use YYYY-MM-DD"
NOT_REAL = "is not a real date"
DAY_FIRST, MONTH_FIRST = "day/month/year", "month/day/year"


def to_checksum(body: str) -> str:
    """EIP-55 checksum of 40 lowercase hex digits (same result as eth_utils.to_checksum_address, faster)."""
    digest = keccak(body.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if h >= "8" else c for c, h in zip(body, digest))


def check_address(value: str) -> tuple[str | None, str | None]:
    """(EIP-55 address, None) or (None, reason)."""
    if not _ADDRESS.match(value):
        return None, "is not an Ethereum address"
    body = value[2:]
    if not body.strip("0"):
        return None, "is the zero address"
    checksummed = to_checksum(body.lower())
    if body not in (body.lower(), body.upper()) and "0x" + body != checksummed:
        return None, f"checksum is wrong; did you mean {checksummed}?"
    return checksummed, None


def _slashed(first: int, second: int, year: str) -> tuple[tuple | None, str | None, str]:
    """((year, month, day), None, reading) or (None, reason, "") for NN/NN/YYYY. A number above 12 cannot be the
    month, so then only one reading is possible and it is taken (``reading`` names it); when both could be the
    month and the readings differ, the date is ambiguous."""
    if len(year) != 4:
        return None, ("has a two-digit year (which century?); use YYYY-MM-DD" if len(year) == 2 else NOT_A_DATE), ""
    y = int(year)
    if 0 in (first, second):
        return None, NOT_REAL, ""
    if first > 12 and second > 12:
        which = f"{first} cannot be a month" if first == second else f"neither {first} nor {second} can be a month"
        return None, f"is not a valid date ({which}); use YYYY-MM-DD", ""
    if first > 12:
        return (y, second, first), None, DAY_FIRST
    if second > 12:
        return (y, first, second), None, MONTH_FIRST
    if first == second:
        return (y, first, first), None, ""
    return None, (f"is ambiguous (day/month gives {y:04d}-{second:02d}-{first:02d}, month/day gives "
                  f"{y:04d}-{first:02d}-{second:02d}); use YYYY-MM-DD"), ""


@lru_cache(maxsize=65536)
def read_date(value: str) -> tuple[dt.date | None, str | None, str]:
    """(date, None, reading) or (None, reason, "") for the accepted date spellings; ``reading`` is DAY_FIRST or
    MONTH_FIRST when a NN/NN/YYYY date was read the only way it can be read (the caller says so), else ""."""
    parts, reading = None, ""
    for pattern, order in _NUMERIC:
        if m := pattern.match(value):
            parts = tuple(int(m.group(i)) for i in order)
    for pattern, (d, mo) in ((_DAY_MONTH, (1, 2)), (_MONTH_DAY, (2, 1))):
        if (m := pattern.match(value)) and m.group(mo).lower() in _MONTHS:
            parts = (int(m.group(3)), _MONTHS[m.group(mo).lower()], int(m.group(d)))
    if parts is None and (m := _SLASHED.match(value)):
        parts, reason, reading = _slashed(int(m.group(1)), int(m.group(3)), m.group(4))
        if reason:
            return None, reason, ""
    if parts is None:
        return None, NOT_A_DATE, ""
    try:
        return dt.date(*parts), None, reading
    except ValueError:
        return None, NOT_REAL, ""


def parse_date(value: str) -> tuple[dt.date | None, str | None]:
    """(date, None) or (None, reason) for the accepted date spellings."""
    date, reason, _ = read_date(value)
    return date, reason


def date_reading(value: str) -> str:
    """DAY_FIRST / MONTH_FIRST when ``value`` is a valid NN/NN/YYYY date with one possible reading, else ""."""
    return read_date(value)[2]


def check_graduation_date(value: str, today: dt.date) -> tuple[str | None, str | None]:
    date, reason = parse_date(value)
    if reason:
        return None, reason
    if date < EARLIEST:
        return None, "is before 1900-01-01"
    if date > _one_year_after(today):
        return None, f"is more than one year after today ({today.isoformat()})"
    return date.isoformat(), None


def check_expiry(value: str, today: dt.date) -> tuple[int | None, str | None]:
    """Unix seconds (a date means 00:00 UTC that day) that must fall after today."""
    try:
        if value.isdigit():
            seconds = int(value)
            date = dt.datetime.fromtimestamp(seconds, dt.timezone.utc).date()
        else:
            date, reason = parse_date(value)
            if reason:
                return None, "is not a date or a Unix timestamp; use YYYY-MM-DD" if reason == NOT_A_DATE else reason
            seconds = int(dt.datetime(date.year, date.month, date.day, tzinfo=dt.timezone.utc).timestamp())
    except (OverflowError, OSError, ValueError):
        return None, "is not a date or a Unix timestamp; use YYYY-MM-DD"
    if date <= today:
        return None, f"must be after today ({today.isoformat()})"
    return seconds, None


def _one_year_after(today: dt.date) -> dt.date:
    try:
        return today.replace(year=today.year + 1)
    except ValueError:  # 29 February
        return today.replace(year=today.year + 1, day=28)


def control_reason(value: str) -> str:
    return f"contains a control character (U+{ord(CONTROL.search(value).group()):04X})"
