"""Mapping a CSV header to the canonical column names (aliases, synonyms, errors)."""
from __future__ import annotations

import re

from producers.records import CsvFileError

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
