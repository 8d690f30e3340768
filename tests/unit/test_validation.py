"""Row validation: every rule and its exact message, institutions, duplicates, chunking, memory."""
import csv
import datetime as dt
import io
from pathlib import Path

import pytest
import rfc8785

from examples.generate import generate
from producers.canonical import credential_document, fingerprint
from producers.records import CsvFileError, RowError
from producers.validation import ROW_COLUMNS, DateReadings, iter_validated_chunks, validate_file

TODAY = dt.date(2026, 1, 15)
INST = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
W1 = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
W2 = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
BASE = {"student_id": "S1", "student_name": "Ana García", "student_wallet": W1, "degree": "Bachelor of Science",
        "major": "Physics", "graduation_date": "2025-06-14"}
ROOT = Path(__file__).resolve().parents[2]


def make_csv(*rows: dict) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def run(*rows: dict, institution=INST, **kw):
    return validate_file(make_csv(*rows), institution=institution, today=TODAY, **kw)


def messages(**override) -> list[str]:
    _, errors, _ = run({**BASE, **override})
    return [e.message for e in errors]


def value_of(column, **override):
    rows, errors, _ = run({**BASE, **override})
    assert errors == []
    return rows.loc[0, column]


@pytest.mark.parametrize("field", list(BASE))
def test_required_fields(field):
    assert messages(**{field: "  "}) == [f'Line 2, {field} "": is required.']


def test_lowercase_and_uppercase_wallets_are_accepted_and_checksummed():
    assert value_of("student_wallet", student_wallet=W1.lower()) == W1
    assert value_of("student_wallet", student_wallet="0X" + W1[2:].upper()) == W1


@pytest.mark.parametrize("wallet,reason", [
    ("0x3c44CdDdB6a900fa2b585dd299e03d12FA4293BC", f"checksum is wrong; did you mean {W1}?"),
    ("0x0000000000000000000000000000000000000000", "is the zero address"),
    ("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293B", "is not an Ethereum address"),
    ("3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "is not an Ethereum address"),
    ("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BG", "is not an Ethereum address"),
    ("alice.eth", "is not an Ethereum address"),
])
def test_bad_wallets(wallet, reason):
    assert messages(student_wallet=wallet) == [f'Line 2, student_wallet "{wallet}": {reason}' + ("" if reason.endswith("?") else ".")]


def test_bad_checksum_message_names_the_corrected_address():
    assert messages(student_wallet="0x3c44CdDdB6a900fa2b585dd299e03d12FA4293BC") == [
        'Line 2, student_wallet "0x3c44CdDdB6a900fa2b585dd299e03d12FA4293BC": checksum is wrong; '
        'did you mean 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC?']


@pytest.mark.parametrize("text,iso", [
    ("2025-06-14", "2025-06-14"), ("2025-6-4", "2025-06-04"), ("2025/06/14", "2025-06-14"),
    ("14.06.2025", "2025-06-14"), ("14 June 2025", "2025-06-14"), ("14 Jun 2025", "2025-06-14"),
    ("June 14, 2025", "2025-06-14"), ("Jun 14 2025", "2025-06-14"), ("14-Jun-2025", "2025-06-14"),
    ("14th June 2025", "2025-06-14"), ("Sept. 1, 2025", "2025-09-01"), ("1900-01-01", "1900-01-01"),
    ("2027-01-15", "2027-01-15"), ("2025-06-14 00:00:00", "2025-06-14"), ("2025-06-14T00:00", "2025-06-14"),
])
def test_accepted_dates(text, iso):
    assert value_of("graduation_date", graduation_date=text) == iso


@pytest.mark.parametrize("text,reason", [
    ("06-07-2025", "is ambiguous (day/month gives 2025-07-06, month/day gives 2025-06-07); use YYYY-MM-DD"),
    ("13/13/2026", "is not a valid date (13 cannot be a month); use YYYY-MM-DD"),
    ("13/14/2026", "is not a valid date (neither 13 nor 14 can be a month); use YYYY-MM-DD"),
    ("31/02/2026", "is not a real date"), ("00/05/2026", "is not a real date"),
    ("15/06/26", "has a two-digit year (which century?); use YYYY-MM-DD"),
    ("2023-02-30", "is not a real date"), ("31.04.2025", "is not a real date"),
    ("30 February 2024", "is not a real date"), ("2025-13-01", "is not a real date"),
    ("next June", "is not a date; use YYYY-MM-DD"), ("14 Juin 2025", "is not a date; use YYYY-MM-DD"),
    ("20250614", "is not a date; use YYYY-MM-DD"), ("2025-06-14 13:30", "is not a date; use YYYY-MM-DD"),
    ("1899-12-31", "is before 1900-01-01"),
    ("2027-01-16", "is more than one year after today (2026-01-15)"),
])
def test_rejected_dates(text, reason):
    assert messages(graduation_date=text) == [f'Line 2, graduation_date "{text}": {reason}.']


@pytest.mark.parametrize("text,iso,reading", [
    ("15/06/2026", "2026-06-15", "day/month/year"), ("15-06-2026", "2026-06-15", "day/month/year"),
    ("06/15/2026", "2026-06-15", "month/day/year"), ("05/05/2026", "2026-05-05", None),
])
def test_a_slashed_date_with_only_one_possible_reading_is_accepted_and_the_reading_is_named(text, iso, reading):
    chunks = list(iter_validated_chunks(make_csv({**BASE, "graduation_date": text}, {**BASE, "student_id": "S2",
                                        "graduation_date": text}), institution=INST, today=TODAY))
    summary = DateReadings()
    for chunk in chunks:
        summary.add(chunk.readings)
    assert [c.errors for c in chunks] == [[]] and chunks[0].rows["graduation_date"].tolist() == [iso, iso]
    if reading is None:  # both readings are the same day
        assert summary.warnings() == []
    else:
        assert summary.warnings() == [
            f'Line 2, graduation_date "{text}" was read as {iso} ({reading}, the only possible reading); so was 1 more '
            f"graduation_date value written {reading} (line 3). Write dates as YYYY-MM-DD to leave no doubt."]


@pytest.mark.parametrize("text,seconds", [("2030-01-01", 1893456000), ("1893456000", 1893456000),
                                          ("1 January 2030", 1893456000), ("", 0)])
def test_expiry_accepted(text, seconds):
    assert value_of("expires_at", expires_at=text) == seconds


@pytest.mark.parametrize("text,reason", [
    ("2026-01-15", "must be after today (2026-01-15)"), ("1000", "must be after today (2026-01-15)"),
    ("soon", "is not a date or a Unix timestamp; use YYYY-MM-DD"),
    ("99999999999999999999", "is not a date or a Unix timestamp; use YYYY-MM-DD"),
    ("2030-02-30", "is not a real date"),
])
def test_expiry_rejected(text, reason):
    assert messages(expires_at=text) == [f'Line 2, expires_at "{text}": {reason}.']


@pytest.mark.parametrize("field,limit", [("student_id", 64), ("student_name", 200), ("degree", 200), ("major", 200)])
def test_over_long_fields(field, limit):
    assert value_of(field, **{field: "é" * limit}) == "é" * limit  # characters, not bytes
    long = "x" * (limit + 1)
    shown = f'"{long}"' if len(long) <= 80 else f'"{long[:60]}…" ({len(long)} characters)'
    assert messages(**{field: long}) == [f"Line 2, {field} {shown}: is too long ({limit + 1} characters, at most {limit})."]


@pytest.mark.parametrize("char", ["\t", "\n", "\x07", "\x7f", "\u2028"])
def test_control_characters(char):
    name = f"Ana{char}Lee"
    assert messages(student_name=name) == [
        f'Line 2, student_name "{name}": contains a control character (U+{ord(char):04X}).']


def test_every_problem_of_a_row_is_reported_in_column_order():
    assert messages(student_id="", student_wallet="0x0", graduation_date="2023-02-30") == [
        'Line 2, student_id "": is required.',
        'Line 2, student_wallet "0x0": is not an Ethereum address.',
        'Line 2, graduation_date "2023-02-30": is not a real date.']


def test_institution_from_neither_keyword_nor_column():
    with pytest.raises(CsvFileError) as info:
        run(BASE, institution=None)
    assert str(info.value) == "No institution given: add an institution column or pass the institution address."


def test_invalid_institution_keyword():
    with pytest.raises(CsvFileError) as info:
        run(BASE, institution="0x12")
    assert str(info.value) == 'The institution address "0x12" is not an Ethereum address.'


def test_institution_column_and_keyword():
    rows, errors, _ = run({**BASE, "institution": ""}, {**BASE, "student_id": "S2", "institution": INST.lower()},
                          {**BASE, "student_id": "S3", "institution": W2})
    assert rows["institution"].tolist() == [INST, INST]
    assert [e.message for e in errors] == [
        f'Line 4, institution "{W2}": does not match the institution given for the upload ({INST}).']


def test_institution_column_only():
    rows, errors, _ = run({**BASE, "institution": INST.lower()}, {**BASE, "student_id": "S2", "institution": ""},
                          institution=None)
    assert rows["institution"].tolist() == [INST]
    assert [e.message for e in errors] == ['Line 3, institution "": is required.']


def test_duplicates_inside_the_file():
    same_but_messier = {**BASE, "student_wallet": W1.lower(), "graduation_date": "14 June 2025"}
    rows, errors, total = run(BASE, {**BASE, "student_id": "S2"}, BASE, same_but_messier)
    assert total == 4 and rows["line"].tolist() == [2, 3]
    assert [e.message for e in errors] == ["Line 4: duplicate of line 2.", "Line 5: duplicate of line 2."]
    assert errors[0] == RowError(4, "", "", "duplicate of line 2")


def test_duplicates_across_chunks():
    rows = [{**BASE, "student_id": f"S{i}"} for i in range(7)] + [{**BASE, "student_id": "S1"}, {**BASE, "student_id": "S6"}]
    chunks = list(iter_validated_chunks(make_csv(*rows), institution=INST, today=TODAY, chunk_rows=2))
    assert len(chunks) == 5 and sum(c.data_rows for c in chunks) == 9
    errors = [e.message for c in chunks for e in c.errors]
    assert errors == ["Line 9: duplicate of line 3.", "Line 10: duplicate of line 8."]
    assert sum(len(c.rows) for c in chunks) == 7


def test_valid_rows_carry_document_and_fingerprint():
    rows, _, _ = run({**BASE, "expires_at": "2030-01-01"}, {**BASE, "student_id": "S2", "expires_at": ""})
    assert list(rows.columns) == ROW_COLUMNS
    for row in rows.itertuples():
        doc = credential_document(institution=row.institution, student_id=row.student_id,
                                  student_name=row.student_name, student_wallet=row.student_wallet,
                                  degree=row.degree, major=row.major, graduation_date=row.graduation_date,
                                  expires_at=row.expires_at)
        assert row.document == rfc8785.dumps(doc).decode("utf-8")
        assert row.fingerprint == fingerprint(doc)
    assert rows["expires_at"].tolist() == [1893456000, 0]
    assert str(rows["line"].dtype) == "int64" and str(rows["expires_at"].dtype) == "int64"


def test_file_errors_come_before_anything_is_yielded():
    chunks = iter_validated_chunks(make_csv(BASE), institution=None, today=TODAY)
    with pytest.raises(CsvFileError):
        next(chunks)


def test_example_file_is_valid():
    rows, errors, total = validate_file(ROOT / "examples" / "graduates.csv", today=TODAY)
    assert (len(rows), errors, total) == (1000, [], 1000)
    assert set(rows["institution"]) == {INST}
    assert rows["fingerprint"].is_unique
    assert rows["graduation_date"].str[:4].isin(["2025", "2026"]).all()


def test_generated_invalid_rows_are_all_caught():
    out = io.StringIO()
    bad = generate(3000, 0.05, 11, out)
    rows, errors, total = validate_file(out.getvalue().encode(), today=TODAY)
    assert total == 3000 and bad == 150
    assert len({e.line for e in errors}) == bad and len(rows) == 3000 - bad
