"""What `blockproof upload` tells a person or a script about bad input: dates, file-level errors in --json and
--errors-out, long values. Dry runs without a chain or broker (a real SQLite database)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from producers.error_report import read_error_report

HEADER = "student_id,student_name,student_wallet,degree,major,graduation_date,institution\n"
INSTITUTION = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def row(n: int, *, name: str = "Ada Lovelace", date: str = "2025-06-14") -> str:
    return f"S{n},{name},0x{n:040x},BSc,CS,{date},{INSTITUTION}\n"


def upload(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKPROOF_") and k != "DATABASE_URL"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'blockproof.db'}"
    return subprocess.run([sys.executable, "-m", "blockproof.cli", "upload", *map(str, args)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_day_month_date_with_one_possible_reading_is_accepted_with_a_warning_and_13_13_is_called_invalid(tmp_path):
    path = tmp_path / "dates.csv"
    path.write_text(HEADER + row(1, date="15/06/2025") + row(2, date="13/13/2025") + row(3, date="05/06/2025"))

    proc = upload(tmp_path, path, "--dry-run", "--no-chain-check", "--json")

    assert proc.returncode == 3, proc.stderr
    assert ('warning: Line 2, graduation_date "15/06/2025" was read as 2025-06-15 (day/month/year, the only possible '
            'reading). Write dates as YYYY-MM-DD to leave no doubt.') in proc.stderr
    assert ('Line 3, graduation_date "13/13/2025": is not a valid date (13 cannot be a month); use YYYY-MM-DD.'
            in proc.stderr)
    assert ('Line 4, graduation_date "05/06/2025": is ambiguous (day/month gives 2025-06-05, month/day gives '
            '2025-05-06); use YYYY-MM-DD.') in proc.stderr
    assert "ambiguous" not in proc.stderr.split("Line 3")[0]
    report = json.loads(proc.stdout)
    assert (report["new"], report["invalid"]) == (1, 2)


def test_a_file_that_cannot_be_read_is_reported_in_json_on_stdout_and_in_the_errors_out_csv(tmp_path):
    cases = {"empty.csv": ("", "The file is empty."),
             "columns.csv": ("name,wallet\nAda,0x1\n", "Missing required column(s): student_id, degree, major, "
                                                        "graduation_date. Found columns: name, wallet.")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        out = tmp_path / f"{name}.errors.csv"
        proc = upload(tmp_path, tmp_path / name, "--json", "--errors-out", out)
        assert proc.returncode == 3, proc.stderr
        assert f"error: {message}" in proc.stderr
        assert json.loads(proc.stdout) == {"filename": name, "written": 0, "queued": 0, "error": message}
        assert read_error_report(out) == [{"line": "", "field": "", "value": "", "reason": message}]

    missing = upload(tmp_path, tmp_path / "nope.csv", "--json")
    assert missing.returncode == 2
    assert json.loads(missing.stdout)["error"] == f"{tmp_path / 'nope.csv'} does not exist or is not a file"


def test_a_5000_character_value_is_shortened_in_messages_and_kept_whole_in_the_error_csv_and_json(tmp_path):
    long = "N" * 5000
    path = tmp_path / "long.csv"
    path.write_text(HEADER + row(1, name=long) + row(2))
    out = tmp_path / "errors.csv"

    proc = upload(tmp_path, path, "--dry-run", "--no-chain-check", "--json", "--errors-out", out)

    assert proc.returncode == 3, proc.stderr
    assert long not in proc.stderr and len(proc.stderr) < 2000
    assert (f'Line 2, student_name "{"N" * 60}…" (5,000 characters): is too long (5000 characters, at most 200).'
            in proc.stderr)
    [error] = json.loads(proc.stdout)["errors"]
    assert error["value"] == long and long not in error["message"]
    [written] = read_error_report(out)
    assert written["value"] == long and written["student_name"] == long
