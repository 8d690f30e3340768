"""`blockproof upload` and `blockproof revoke --file` as a person or a script runs them: a subprocess with
the test pipeline's environment; exit codes, --json on stdout, messages on stderr, --errors-out."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from contracts.deploy import transact, vault_contract
from blockproof.settings import PROJECT_ROOT
from producers.error_report import read_error_report
from tests.harness import write_csv
from tests.e2e.test_upload import table_counts
from workers.broker import queue_depths


def run(p, *args, check_rc: int | None = None):
    proc = subprocess.run([sys.executable, "-m", "blockproof.cli", *map(str, args)], cwd=PROJECT_ROOT,
                          env=os.environ | p.env_vars(), capture_output=True, text=True, timeout=120)
    if check_rc is not None:
        assert proc.returncode == check_rc, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def test_upload_exit_codes_json_report_and_error_csv(make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, block_time=None)
    clean = write_csv(tmp_path / "clean.csv", 20, seed=21)
    messy = write_csv(tmp_path / "messy.csv", 40, seed=22, invalid_fraction=0.1)
    errors_csv = tmp_path / "errors.csv"
    before = table_counts(p.engine)

    dry = run(p, "upload", messy, "--dry-run", "--json", "--errors-out", errors_csv, check_rc=3)
    report = json.loads(dry.stdout)
    assert (report["total_rows"], report["invalid"], report["new"], report["dry_run"]) == (40, 4, 36, True)
    assert "40 rows: 36 new, 0 uploaded before, 0 already on chain, 4 invalid (dry run, nothing written)" in dry.stderr
    written = read_error_report(errors_csv)
    assert [r["line"] for r in written] == [e["line"] for e in report["errors"]]
    assert [r["reason"] for r in written] == [e["reason"] for e in report["errors"]]
    assert "student_name" in written[0] and "student_wallet" in written[0]  # the original row's columns follow
    assert table_counts(p.engine) == before

    rejected = run(p, "upload", messy, "--reject-on-invalid", check_rc=3)
    assert "rejected: 4 invalid row(s) and the upload was asked to reject the whole file" in rejected.stderr
    assert table_counts(p.engine) == before and rejected.stdout == ""

    partial = json.loads(run(p, "upload", messy, "--json", check_rc=4).stdout)
    assert (partial["written"], partial["queued"], partial["batch_ids"]) == (36, 36, [1])
    assert json.loads(run(p, "upload", clean, "--json", check_rc=0).stdout)["queued"] == 20
    again = run(p, "upload", clean, check_rc=0)
    assert "20 rows: 0 new, 20 uploaded before, 0 already on chain, 0 invalid (nothing new to queue)" in again.stderr
    assert queue_depths(p.queue)["ready"] == 2

    missing = run(p, "upload", tmp_path / "nope.csv", check_rc=2)
    assert missing.stderr.strip() == f"error: {tmp_path / 'nope.csv'} does not exist or is not a file"
    (tmp_path / "empty.csv").write_bytes(b"")
    assert run(p, "upload", tmp_path / "empty.csv", check_rc=3).stderr.strip() == "error: The file is empty."

    transact(p.chain.w3, vault_contract(p.chain.w3, p.env.vault_address).functions.setPaused(True), p.env.admin_key)
    fresh = write_csv(tmp_path / "fresh.csv", 5, seed=23)
    paused = run(p, "upload", fresh, check_rc=1)
    assert ("error: pre-flight (ContractPaused): The contract is paused: no credential can be issued or revoked "
            "until it is unpaused.") in paused.stderr
    assert "rejected: the contract would refuse these credentials now" in paused.stderr


def test_revoke_file_reports_each_bad_row_and_its_exit_code(make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, block_time=None)
    path = tmp_path / "revoke.csv"
    path.write_text("credential id,reason\n12,=HYPERLINK(\"x\")\nabc,typo\n", encoding="utf-8")
    errors_csv = tmp_path / "errors.csv"
    proc = run(p, "revoke", "--file", path, "--json", "--errors-out", errors_csv, check_rc=3)
    report = json.loads(proc.stdout)
    assert [e["message"] for e in report["errors"]] == [
        'Line 2, credential_id "12": is not a credential this system has seen on chain.',
        'Line 3, credential_id "abc": is not a credential id (a whole number from 1).']
    raw = errors_csv.read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in raw  # the original cell, neutralised for spreadsheets
    rows = read_error_report(errors_csv)
    assert rows[1]["reason"] == "is not a credential id (a whole number from 1)" and rows[1]["reason (in file)"] == "typo"
    assert run(p, "revoke", check_rc=2).stderr.strip() == "error: give a credential id (with --reason) or --file CSV, not both"
