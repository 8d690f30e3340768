"""The downloadable error CSV: round trip, original columns, formula injection neutralised."""
import csv
import io

from hypothesis import given, strategies as st

from producers.csv_reader import read_original_rows
from producers.error_report import read_error_report, write_error_report
from producers.records import RowError
from producers.validation import validate_file

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
ERRORS = [
    RowError(2, "student_name", '=HYPERLINK("http://evil.example","click")', "is too long (300 characters, at most 200)"),
    RowError(3, "student_wallet", "+0x12", "is not an Ethereum address"),
    RowError(4, "graduation_date", "-2025", "is not a date; use YYYY-MM-DD"),
    RowError(5, "degree", "@SUM(A1:A9)", "contains a control character (U+0009)"),
    RowError(6, "major", "\tTabbed", "x"),
    RowError(7, "major", "\rCR", "x"),
    RowError(8, "student_name", "'already quoted", "x"),
    RowError(9, "student_name", "multi\nline, with \"quotes\"", "x"),
    RowError(10, "", "", "duplicate of line 2"),
    RowError(11, "student_name", "Zoë 王芳", "x"),
]


def raw_cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_round_trip_through_a_file(tmp_path):
    path = tmp_path / "errors.csv"
    write_error_report(ERRORS, path)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel opens it as UTF-8
    rows = read_error_report(path)
    assert [RowError(r["line"], r["field"], r["value"], r["reason"]) for r in rows] == ERRORS


def test_formulas_are_neutralised():
    out = io.StringIO()
    write_error_report(ERRORS, out)
    cells = raw_cells(out.getvalue())
    assert cells[0] == ["line", "field", "value", "reason"]
    assert all(not cell.startswith(DANGEROUS) for row in cells for cell in row)
    assert cells[1][2] == "'=HYPERLINK(\"http://evil.example\",\"click\")"
    assert cells[2][2] == "'+0x12" and cells[3][2] == "'-2025" and cells[4][2] == "'@SUM(A1:A9)"
    assert cells[5][2] == "'\tTabbed" and cells[6][2] == "'\rCR" and cells[7][2] == "''already quoted"


def test_original_row_columns_are_appended_and_neutralised():
    data = ("ID,Name,Wallet,Degree,Major,Date,Institution\n"
            "1,=cmd|' /C calc'!A0,0x12,BSc,Physics,2025-06-14,0x70997970C51812dc3A010C7d01b50e0d17dc79C8\n").encode()
    _, errors, _ = validate_file(data)
    original = read_original_rows(data, {e.line for e in errors})
    out = io.StringIO()
    write_error_report(errors, out, original_rows=original)
    cells = raw_cells(out.getvalue())
    assert cells[0] == ["line", "field", "value", "reason", "ID", "Name", "Wallet", "Degree", "Major", "Date", "Institution"]
    assert cells[1][:4] == ["2", "student_wallet", "0x12", "is not an Ethereum address"]
    assert cells[1][5] == "'=cmd|' /C calc'!A0"
    back = read_error_report(io.StringIO(out.getvalue(), newline=""))
    assert back[0]["Name"] == "=cmd|' /C calc'!A0" and back[0]["line"] == 2


def test_empty_report_has_a_header():
    out = io.StringIO()
    write_error_report([], out)
    assert out.getvalue() == "line,field,value,reason\r\n"


@given(st.lists(st.builds(RowError, st.integers(1, 10**7), st.text(max_size=20), st.text(), st.text()), max_size=8),
       st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: k not in ("line", "field", "value", "reason")),
                       st.text(), max_size=3))
def test_any_text_round_trips_and_no_cell_can_start_a_formula(errors, original):
    out = io.StringIO()
    write_error_report(errors, out, original_rows={e.line: original for e in errors})
    assert all(not cell.startswith(DANGEROUS) for row in raw_cells(out.getvalue()) for cell in row)
    back = read_error_report(io.StringIO(out.getvalue(), newline=""))
    assert [RowError(r["line"], r["field"], r["value"], r["reason"]) for r in back] == errors
    assert all({k: r[k] for k in original} == original for r in back)
