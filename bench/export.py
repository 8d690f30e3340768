#!/usr/bin/env python3
"""Results export: `blockproof export BATCH` (CSV) and `--zip` (documents) of a 100,000-row confirmed batch,
beside an export that loads the whole batch into memory first (pandas read_sql + to_csv), in the same run.

    .venv/bin/python bench/export.py [--rows 100000] [--db postgresql|sqlite] [--out PATH]
    .venv/bin/python bench/export.py --quick   # 2,000 rows: prints its table, writes only with --out

The batch is written straight into a fresh database (jobs confirmed, their CredentialIssued events stored, one in
a hundred revoked), as the pipeline would leave it. Each export runs as its own process; time is from launch to
exit, peak memory is that process's maximum RSS (wait4). Writes bench/results/export.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import fresh_database  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "export.md"
INSTITUTION = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
IN_MEMORY = """
import sys, pandas as pd
from sqlalchemy import create_engine
engine = create_engine(sys.argv[1])
frame = pd.read_sql("SELECT line, student_id, student_name, student_wallet, credential_id, fingerprint, tx_hash, "
                    "block_number, state FROM jobs WHERE batch_id = 1 ORDER BY id", engine)
frame["verification_link"] = "https://verify.example.edu/verify/" + frame["fingerprint"]
frame.to_csv(sys.argv[2], index=False)
"""


def populate(db_url: str, rows: int, documents_root: Path) -> int:
    """One confirmed batch of `rows` credentials with their events, and their documents in a directory store (the
    ZIP reads them there); returns the batch id."""
    import pandas as pd
    from eth_utils import keccak, to_checksum_address

    from models.db import engine_for, migrate
    from producers.canonical import canonical_json, credential_document
    from producers.documents import DirectoryStore

    store = DirectoryStore(documents_root)
    store.begin(1)

    migrate(db_url)
    engine = engine_for(db_url)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with engine.begin() as c:
        c.exec_driver_sql("INSERT INTO batches (id, filename, institution, base_uri, kind, row_count, invalid_count, "
                          "duplicate_count, paused, created_by, created_at) VALUES (1, 'bench.csv', "
                          f"'{INSTITUTION}', '', 'issue', {rows}, 0, 0, false, 'bench', '{now}')")
        for start in range(0, rows, 10_000):
            jobs, events = [], []
            for i in range(start, min(rows, start + 10_000)):
                wallet = to_checksum_address(keccak(f"wallet{i}".encode())[:20])
                doc = canonical_json(credential_document(
                    institution=INSTITUTION, student_id=f"S{i:07d}", student_name=f"Graduate Number {i}",
                    student_wallet=wallet, degree="Bachelor of Science", major="Computer Science",
                    graduation_date="2025-06-14"))
                fp, tx = "0x" + keccak(doc).hex(), "0x" + keccak(f"tx{i // 100}".encode()).hex()
                jobs.append((i + 1, 1, "issue", fp, i + 2, "confirmed", INSTITUTION, f"S{i:07d}",
                             f"Graduate Number {i}", wallet, "Bachelor of Science", "Computer Science", "2025-06-14",
                             0, fp, doc.decode(), f"{i + 2}.json", "", "", "", False, 0, i + 1, tx, 100 + i // 100,
                             now, now))
                events.append((i + 1, tx, i % 100, 100 + i // 100, "0x" + "00" * 32, fp, wallet, INSTITUTION, "",
                               "", 0, i % 100 == 0, 1_700_000_000 if i % 100 == 0 else None, None))
            marks = lambda n: ", ".join(["%s" if c.dialect.name == "postgresql" else "?"] * n)  # noqa: E731
            c.exec_driver_sql(
                "INSERT INTO jobs (id, batch_id, kind, idempotency_key, line, state, institution, student_id, "
                "student_name, student_wallet, degree, major, graduation_date, expires_at, fingerprint, document, "
                "metadata_suffix, revocation_reason, error_code, error_message, retryable, retries, credential_id, "
                f"tx_hash, block_number, created_at, updated_at) VALUES ({marks(27)})", jobs)
            c.exec_driver_sql(
                "INSERT INTO credential_events (credential_id, tx_hash, log_index, block_number, block_hash, "
                "fingerprint, student_wallet, institution, metadata_uri, encrypted_payload_uri, expires_at, revoked, "
                f"revoked_at, revocation_reason_hash) VALUES ({marks(14)})", events)
            store.write(1, pd.DataFrame({"line": [j[4] for j in jobs], "document": [j[15] for j in jobs]}))
    store.publish(1)
    with engine.begin() as c:
        c.exec_driver_sql("ANALYZE")  # the statistics autovacuum would have gathered by the time anyone exports
    engine.dispose()
    return 1


def timed(command: list[str], env: dict[str, str]) -> dict:
    """Launch to exit, and the process's own peak RSS (wait4 rusage: only this child)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=os.environ | env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{err}")
    return {"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    # PostgreSQL by default: the production database, and SQLite's own page cache (PRAGMA cache_size, 128 MiB in
    # models/db.py) would sit in the export's RSS and hide whether the export itself stays bounded
    ap.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--out", type=Path, help=f"default {RESULTS.relative_to(ROOT)}; none with --quick")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 2,000 rows")
    args = ap.parse_args(argv)
    if args.quick:
        args.rows = 2_000
    elif args.out is None:
        args.out = RESULTS
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    db_url, drop = fresh_database(args.db, work)
    try:
        t = time.perf_counter()
        batch = populate(db_url, args.rows, work / "documents")
        print(f"wrote a confirmed batch of {args.rows:,} rows in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        env = {"DATABASE_URL": db_url, "BLOCKPROOF_PUBLIC_URL": "https://verify.example.edu",
               "BLOCKPROOF_DOCUMENT_DIR": str(work / "documents")}
        cli = [sys.executable, "-m", "blockproof.cli", "export", str(batch)]
        results = {
            "csv": timed(cli + ["--out", str(work / "results.csv")], env) | {"bytes": (work / "results.csv").stat().st_size},
            "zip": timed(cli + ["--zip", "--out", str(work / "documents.zip")], env)
            | {"bytes": (work / "documents.zip").stat().st_size},
            "memory": timed([sys.executable, "-c", IN_MEMORY, db_url, str(work / "in-memory.csv")], env)
            | {"bytes": (work / "in-memory.csv").stat().st_size},
        }
    finally:
        drop()
    print(write_results(args, results))
    return 0


def write_results(args, r: dict) -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())

    def row(label: str, m: dict) -> str:
        return (f"| {label} | {args.rows:,} | **{m['seconds']:.1f} s** | {args.rows / m['seconds']:,.0f} | "
                f"{m['bytes'] / 2**20:.1f} MiB | **{m['peak_mib']:.0f} MiB** |")

    text = f"""# Results export benchmark

Command: `.venv/bin/python bench/export.py --rows {args.rows} --db {args.db}`
Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC · Machine: {cpu}, {os.cpu_count()} cores (shared),
Python {platform.python_version()} · Database: {args.db}

A confirmed batch of {args.rows:,} credentials (jobs and their CredentialIssued events, 1% revoked). Each export is
its own process, timed from launch to exit (Python start-up and migrations included); peak memory is that
process's maximum RSS. The CLI streams a page of 2,000 jobs at a time (keyset on the job id); the baseline reads
the whole batch into a pandas frame first.

| export | rows | time | rows/s | file | peak memory |
| --- | ---: | ---: | ---: | ---: | ---: |
{row("`blockproof export` (CSV, streamed)", r["csv"])}
{row("`blockproof export --zip` (documents, streamed)", r["zip"])}
{row("in memory: pandas `read_sql` + `to_csv` (baseline)", r["memory"])}
"""
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    sys.exit(main())
