"""Plain records shared by the producer: a row-level error and a file-level error."""
from __future__ import annotations

from dataclasses import dataclass

SHOWN_VALUE = 80  # longer cells are shortened in messages (the error CSV and --json keep them whole)
SHOWN_HEAD = 60


def quoted(value: str) -> str:
    """A cell as a message quotes it: whole when short, else its start and its length."""
    if len(value) <= SHOWN_VALUE:
        return f'"{value}"'
    return f'"{value[:SHOWN_HEAD]}…" ({len(value):,} characters)'


@dataclass(frozen=True)
class RowError:
    """One problem with one field of one row.

    ``line`` is the line number a spreadsheet user sees (the header is line 1; a
    quoted field spanning several lines pushes later rows down accordingly).
    ``field`` is the canonical column name ("" when the problem concerns the whole
    row, e.g. a duplicate); ``value`` is the cell as read (whitespace stripped), whole
    (``message`` shortens a long one).
    """

    line: int
    field: str
    value: str
    reason: str

    @property
    def message(self) -> str:
        """The user-facing sentence, e.g. 'Line 7, student_wallet "0x12": is not an Ethereum address.'"""
        end = "" if self.reason.endswith((".", "?", "!")) else "."
        if not self.field:
            return f"Line {self.line}: {self.reason}{end}"
        return f"Line {self.line}, {self.field} {quoted(self.value)}: {self.reason}{end}"

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.message


class CsvFileError(Exception):
    """The file as a whole cannot be read (message is the user-facing sentence)."""

    @property
    def message(self) -> str:
        return str(self)
