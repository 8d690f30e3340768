"""Holds are per cause: an institution the contract refuses holds only its own jobs, never another
institution's; an operator pauses, resumes and cancels a batch from the command line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import select
from sqlmodel import Session

from blockproof.settings import PROJECT_ROOT
from contracts.deploy import configure_institution
from models.tables import Alert, Job, JobTransition
from tests.faults import FAST_SIGNER, assert_invariants, rows_csv, wait_for


def batch_counts(p, batch_id: int) -> dict[str, int]:
    with Session(p.engine) as s:
        counts: dict[str, int] = {}
        for job in s.execute(select(Job).where(Job.batch_id == batch_id)).scalars():
            counts[job.state] = counts.get(job.state, 0) + 1
        return counts


def open_alerts(p, kind: str) -> list[Alert]:
    with Session(p.engine) as s:
        return list(s.execute(select(Alert).where(Alert.kind == kind, Alert.resolved_at == None)).scalars())  # noqa: E711


def cli(p, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blockproof.cli", *args], cwd=PROJECT_ROOT,
                          env=os.environ | p.env_vars(), capture_output=True, text=True, timeout=120)


def test_an_unregistered_institution_holds_only_its_own_jobs_and_issues_once_registered(
        make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER))
    stranger = p.chain.accounts[5].address
    p.start("consumer")
    p.start("signer")
    blocked = p.upload(_csv_for(tmp_path / "stranger.csv", 20, 921, stranger), queue_while_blocked=True)
    assert blocked.new == 20
    [alert] = wait_for(lambda: open_alerts(p, "institution_on_hold"), 60, what="the institution's hold")
    assert alert.subject == stranger
    valid = p.upload(rows_csv(tmp_path, 20, 922))
    wait_for(lambda: batch_counts(p, valid.batch_id).get("confirmed") == 20, 120,
             what="the registered institution's batch, while the other one is held")
    assert batch_counts(p, blocked.batch_id).get("confirmed") is None
    status = json.loads(cli(p, "status", "--json").stdout)
    held = next(b for b in status["batches"] if b["id"] == blocked.batch_id)
    assert held["on_hold"] and next(b for b in status["batches"] if b["id"] == valid.batch_id)["on_hold"] == ""

    configure_institution(p.chain.w3, p.env.vault_address, admin_key=p.env.admin_key, institution=stranger,
                          name="Late University", controllers=[p.env.signer_address])
    p.wait_until_settled(40, timeout=120)
    wait_for(lambda: not open_alerts(p, "institution_on_hold"), 30, what="the hold to be lifted")
    assert_invariants(p, 40)


def _csv_for(path, rows: int, seed: int, institution: str):
    subprocess.run([sys.executable, str(PROJECT_ROOT / "examples" / "generate.py"), "--rows", str(rows), "--seed",
                    str(seed), "--institution", institution, "--out", str(path)], check=True, cwd=PROJECT_ROOT)
    return path


def test_pause_resume_and_cancel_from_the_command_line(make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER))
    p.start("consumer")
    first = p.upload(rows_csv(tmp_path, 10, 923))
    second = p.upload(rows_csv(tmp_path, 10, 924))
    assert cli(p, "pause", str(first.batch_id)).returncode == 0
    out = cli(p, "status").stdout
    assert "PAUSED" in next(line for line in out.splitlines() if line.startswith(f"batch {first.batch_id:>5}"))
    cancelled = cli(p, "cancel", str(second.batch_id))
    assert cancelled.returncode == 0 and "10 job(s) cancelled" in cancelled.stderr
    p.start("signer")
    wait_for(lambda: batch_counts(p, first.batch_id).get("ready") == 10, 60, what="the paused batch's jobs to wait")
    assert batch_counts(p, second.batch_id) == {"cancelled": 10}
    assert "10 cancelled" in cli(p, "status", str(second.batch_id)).stdout
    assert cli(p, "resume", str(first.batch_id)).returncode == 0
    p.wait_until_settled(20, timeout=120)
    assert batch_counts(p, first.batch_id) == {"confirmed": 10}
    assert_invariants(p, 10)
    with Session(p.engine) as s:
        moves = s.execute(select(JobTransition.to_state).join(Job, Job.id == JobTransition.job_id)
                          .where(Job.batch_id == second.batch_id)).scalars().all()
    assert "submitted" not in moves and moves.count("cancelled") == 10
    assert cli(p, "cancel", "999").returncode == 2
