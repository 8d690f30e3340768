"""Reading messy graduation-list CSV files: encodings, delimiters, Excel exports, headers, line numbers."""
import datetime as dt
import io

import pytest

from producers.columns import canonical_column, map_header
from producers.csv_reader import read_original_rows
from producers.records import CsvFileError, RowError
from producers.validation import validate_file

TODAY = dt.date(2026, 1, 15)
INST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
W1 = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
W2 = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
HEADER = "student_id,student_name,student_wallet,degree,major,graduation_date"


def validate(data, **kw):
    kw.setdefault("institution", INST)
    return validate_file(data, today=TODAY, **kw)


def file_error(data, **kw) -> str:
    with pytest.raises(CsvFileError) as info:
        validate(data, **kw)
    return str(info.value)


def test_excel_export_with_bom_crlf_quotes_and_trailing_empty_columns_and_rows():
    data = ('\ufeff"Student ID","Name","Wallet","Degree","Major","Graduation Date","Institution",""\r\n'
            f'"00123","Ana García","{W1}","Bachelor of Science","Physics","2025-06-14","{INST}",""\r\n'
            ',,,,,,,\r\n,,,,,,,\r\n').encode("utf-8")
    rows, errors, total = validate(data, institution=None)
    assert errors == [] and total == 1
    assert rows.loc[0, "student_id"] == "00123"  # leading zeros kept
    assert rows.loc[0, "student_name"] == "Ana García"
    assert rows.loc[0, "institution"] == INST and rows.loc[0, "line"] == 2


@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
def test_delimiter_is_sniffed_from_the_header(delimiter):
    lines = [HEADER.split(","), ["007", "Kim, Min-jun", W1, "BSc", "Physics", "2025-06-14"]]
    def quote(c: str) -> str:
        return f'"{c}"' if "," in c else c

    data = "\n".join(delimiter.join(quote(c) for c in line) for line in lines).encode()
    rows, errors, total = validate(b"\xef\xbb\xbf" + data)
    assert errors == [] and total == 1
    assert rows.loc[0, "student_name"] == "Kim, Min-jun" and rows.loc[0, "student_id"] == "007"


def test_header_aliases_case_spaces_dashes_and_synonyms():
    header = " Matriculation-Number ;FULL NAME; Ethereum_Address ;Award;Field of Study;Graduated On;expiry"
    data = f"{header}\nA1;Ana;{W1.lower()};MSc;Data Science;12 June 2025;2030-01-01\n".encode()
    rows, errors, _ = validate(data)
    assert errors == []
    row = rows.iloc[0]
    assert (row.student_id, row.student_wallet, row.degree, row.major, row.graduation_date) == (
        "A1", W1, "MSc", "Data Science", "2025-06-12")
    assert row.expires_at == 1893456000


@pytest.mark.parametrize("header,column", [
    ("wallet", "student_wallet"), ("ETH address", "student_wallet"), ("address", "student_wallet"),
    ("student", "student_name"), ("id", "student_id"), ("Student Number", "student_id"),
    ("program", "major"), ("programme", "major"), ("degree title", "degree"), ("date", "graduation_date"),
    ("graduation", "graduation_date"), ("institution address", "institution"), ("expires", "expires_at"),
    ("notes", None),
])
def test_synonyms(header, column):
    assert canonical_column(header) == column


def test_missing_columns_message():
    assert file_error(b"id,name,degree\n1,Ana,BSc\n") == (
        "Missing required column(s): student_wallet, major, graduation_date. Found columns: id, name, degree.")


def test_wrong_delimiter_shows_the_single_column_found():
    data = b"student_id student_name student_wallet degree major graduation_date\n1 Ana x BSc P 2025-01-01\n"
    assert file_error(data) == (
        "Missing required column(s): student_id, student_name, student_wallet, degree, major, graduation_date. "
        "Found columns: student_id student_name student_wallet degree major graduation_date.")


def test_two_headers_meaning_the_same_column_is_an_error():
    data = f"id,name,Wallet,degree,major,date,Address\n1,Ana,{W1},BSc,P,2025-01-01,{W1}\n".encode()
    assert file_error(data) == 'Columns "Wallet" and "Address" both mean student_wallet; remove or rename one of them.'
    with pytest.raises(CsvFileError):
        map_header(["id", "Student ID", "name", "wallet", "degree", "major", "date"])


def test_non_utf8_file():
    data = f"{HEADER}\n1,Ana,{W1},BSc,P,2025-01-01\n2,Garc\u00eda,{W2},BSc,P,2025-01-01\n".encode("latin-1")
    assert file_error(data) == ('The file is not UTF-8 text (byte 0xED on line 3 is not valid UTF-8); '
                                'save it as "CSV UTF-8" and upload it again.')


def test_non_utf8_byte_beyond_the_first_block_is_found_before_anything_is_yielded():
    good = f"1,Ana,{W1},BSc,P,2025-01-01\n".encode()
    data = HEADER.encode() + b"\n" + good * 40_000 + b"2,Jos\xe9,x,BSc,P,2025-01-01\n"
    assert "on line 40002 is not valid UTF-8" in file_error(data)


def test_utf16_file():
    data = (HEADER + "\n1,Ana,x,BSc,P,2025-01-01\n").encode("utf-16")
    assert file_error(data) == 'The file is UTF-16 text; save it as "CSV UTF-8" and upload it again.'


def test_binary_file():
    assert file_error(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR") == (
        "The file is not a CSV text file (it contains binary data).")


@pytest.mark.parametrize("data", [b"", b"\r\n\r\n   \n", b"\xef\xbb\xbf", b",,,\r\n,,,\r\n", b"\x0b\x0c\n"])
def test_empty_file(data):
    assert file_error(data) == "The file is empty."


@pytest.mark.parametrize("data", [HEADER.encode(), (HEADER + "\r\n").encode(), (HEADER + "\n,,,,,\n\n").encode()])
def test_header_only_file(data):
    assert file_error(data) == "The file has a header row but no data rows."


def test_quoted_newlines_shift_the_line_numbers_of_later_rows():
    data = (f"{HEADER},notes\n"
            f'1,Ana,{W1},BSc,Physics,2025-06-14,"first line\nsecond line\r\nthird line"\n'
            "\n"  # a blank line still counts
            f"2,Bob,0x123,BSc,Physics,2025-06-14,\n").encode()
    rows, errors, total = validate(data)
    assert rows["line"].tolist() == [2] and total == 2
    assert errors == [RowError(6, "student_wallet", "0x123", "is not an Ethereum address")]
    assert errors[0].message == 'Line 6, student_wallet "0x123": is not an Ethereum address.'


def test_row_with_too_many_fields():
    data = f"{HEADER}\n1,Ana,{W1},BSc,Physics,2025-06-14,extra,more\n".encode()
    _, errors, total = validate(data)
    assert total == 1
    assert errors == [RowError(2, "", f"1,Ana,{W1},BSc,Physics,2025-06-14,extra,more",
                               "has 8 fields but the header has 6")]
    assert errors[0].message == "Line 2: has 8 fields but the header has 6."


def test_unclosed_quote_is_reported_with_the_lines_it_swallowed():
    data = f'{HEADER}\n1,"Ana,{W1},BSc,Physics,2025-06-14\n2,Bob,{W2},BSc,Physics,2025-06-14\n'.encode()
    _, errors, total = validate(data)
    assert total == 1
    assert [e.message for e in errors] == [
        "Line 2: has 2 fields but the header has 6 (the row spans lines 2-3; check for an unclosed quotation mark)."]


def test_too_few_fields_are_padded_and_reported_as_missing():
    _, errors, _ = validate(f"{HEADER}\n1,Ana,{W1},BSc\n".encode())
    assert [e.message for e in errors] == ['Line 2, major "": is required.', 'Line 2, graduation_date "": is required.']


def test_surrounding_whitespace_is_stripped():
    data = f"  student_id , student_name ,student_wallet,degree,major,graduation_date\n  00123 ,  Ana Lee  , {W1} ,BSc, Physics ,2025-06-14 \n"
    rows, errors, _ = validate(data.encode())
    assert errors == []
    assert rows.loc[0, ["student_id", "student_name", "student_wallet", "major"]].tolist() == [
        "00123", "Ana Lee", W1, "Physics"]


class NonSeekable(io.RawIOBase):
    def __init__(self, data):
        self._inner = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        chunk = self._inner.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("kind", ["path", "bytes", "bytesio", "nonseekable", "consumed"])
def test_sources(tmp_path, kind):
    data = f"{HEADER}\n1,Ana,{W1},BSc,Physics,2025-06-14\n".encode()
    path = tmp_path / "list.csv"
    path.write_bytes(data)
    consumed = io.BytesIO(data)
    consumed.read()
    source = {"path": path, "bytes": data, "bytesio": io.BytesIO(data), "nonseekable": NonSeekable(data),
              "consumed": consumed}[kind]
    rows, errors, total = validate(source)
    assert (len(rows), errors, total) == (1, [], 1)


def test_missing_path_is_a_file_error(tmp_path):
    assert file_error(tmp_path / "nope.csv") == f"Cannot open {tmp_path / 'nope.csv'}: No such file or directory."


def test_read_original_rows():
    data = (f"ID,Name,Wallet,Degree,Major,Date,,Notes\n1,Ana,{W1},BSc,P,2025-06-14,,\"a\nb\"\n"
            f"2,=cmd(),bad,BSc,P,2025-06-14,,x\n").encode()
    original = read_original_rows(data, {4})
    assert original == {4: {"ID": "2", "Name": "=cmd()", "Wallet": "bad", "Degree": "BSc", "Major": "P",
                            "Date": "2025-06-14", "column 7": "", "Notes": "x"}}


from hypothesis import given, settings, strategies as st  # noqa: E402

csv_text = st.lists(st.sampled_from(list('ab0x;,\t|"\r\n .-/é') + [W1, "2025-06-14", "\x00", "\ufeff"]),
                    max_size=60).map("".join)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=300), csv_text.map(lambda t: (HEADER + "\n" + t).encode("utf-8"))))
def test_any_input_gives_rows_and_row_errors_or_a_file_error(data):
    try:
        rows, errors, total = validate(data)
    except CsvFileError as exc:
        assert str(exc).endswith(".")
        return
    assert len(rows) + len({e.line for e in errors}) == total
    assert all(e.line >= 2 for e in errors) and rows["line"].is_monotonic_increasing
