"""Upload against the real services: dry run writes nothing, policies, re-uploads, pre-flight, all-or-nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, SQLModel

import models.tables  # noqa: F401  (registers every table)
from contracts.deploy import transact, vault_contract
from models.tables import Batch, Job
from producers import documents
from producers.upload import commit, enqueue_batch, plan
from producers.validation import validate_file
from tests.harness import write_csv
from workers.broker import queue_depths

PAUSED = "The contract is paused: no credential can be issued or revoked until it is unpaused."


def table_counts(engine) -> dict[str, int]:
    with Session(engine) as s:
        return {t.name: s.execute(select(func.count()).select_from(t)).scalar_one()
                for t in SQLModel.metadata.sorted_tables}


def document_files(p) -> list[str]:
    root = p.workdir / "documents"
    return sorted(str(f.relative_to(root)) for f in root.rglob("*")) if root.exists() else []


def head(path, rows: int, out):
    """The header and the first ``rows`` rows of a generated CSV (one line per row)."""
    out.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[: rows + 1]), encoding="utf-8")
    return out


def do_plan(p, path, **kw):
    return plan(path, filename=path.name, institution=None, settings=p.settings(), engine=p.engine, **kw)


def test_a_dry_run_writes_nothing_to_any_table_the_queue_or_the_document_store(make_pipeline, database_url, tmp_path):
    p = make_pipeline(database_url, block_time=None)
    path = write_csv(tmp_path / "list.csv", 120, seed=3, invalid_fraction=0.05)
    earlier = p.upload(head(path, 30, tmp_path / "earlier.csv"))  # the first 30 rows: uploaded before
    tables, depth, files = table_counts(p.engine), queue_depths(p.queue), document_files(p)
    assert tables["jobs"] == earlier.written > 0 and depth["ready"] == 1

    report, staged = do_plan(p, path, stage=False)

    assert (report.total_rows, report.invalid, report.duplicate, report.already_issued) == (120, 6, earlier.written, 0)
    assert report.new == 120 - 6 - earlier.written and report.dry_run and report.batch_id is None
    assert report.problems == [] and report.warnings == []
    assert {e.line for e in report.errors} == {e.line for e in report.errors if 2 <= e.line <= 121}
    assert all(s.reason.startswith("was uploaded before (batch 1)") for s in report.skipped)
    assert table_counts(p.engine) == tables, "a dry run wrote to the database"
    assert queue_depths(p.queue) == depth, "a dry run published messages"
    assert document_files(p) == files, "a dry run wrote documents"


def test_reuploading_a_partly_issued_file_queues_only_the_new_rows(make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url)
    path = write_csv(tmp_path / "list.csv", 40, seed=5)
    first = p.upload(head(path, 20, tmp_path / "first.csv"))
    assert (first.new, first.queued) == (20, 20)
    rows, _, _ = validate_file(path)
    vault = vault_contract(p.chain.w3, p.env.vault_address)
    institution_key = p.chain.accounts[1].private_key  # the institution may issue for itself
    for r in rows.iloc[20:25].itertuples():  # issued on chain behind the pipeline's back
        transact(p.chain.w3, vault.functions.issueCredential(
            (r.institution, r.student_wallet, bytes.fromhex(r.fingerprint[2:]), "", "", 0)), institution_key,
                 gas=400_000)

    again = p.upload(path)

    assert (again.duplicate, again.already_issued, again.new, again.queued) == (20, 5, 15, 15)
    assert sorted(s.line for s in again.skipped) == list(range(2, 27))
    p.start("signer")
    p.start("consumer")
    assert p.wait_until_settled(35, timeout=120) == {"confirmed": 35}
    events = p.issued_events()
    assert len(events) == 40 and len({e["fingerprint"] for e in events}) == 40


def test_reject_on_invalid_writes_nothing_and_the_default_policy_queues_the_valid_rows(
        make_pipeline, database_url, tmp_path):
    p = make_pipeline(database_url, block_time=None)
    path = write_csv(tmp_path / "list.csv", 50, seed=9, invalid_fraction=0.1)
    before, depth = table_counts(p.engine), queue_depths(p.queue)

    rejected = commit(*do_plan(p, path), settings=p.settings(), engine=p.engine, reject_on_invalid=True)
    assert rejected.rejected and rejected.batch_id is None and rejected.queued == 0
    assert rejected.rejected_reason == ("5 invalid row(s) and the upload was asked to reject the whole file on any "
                                        "invalid row; nothing was written")
    assert table_counts(p.engine) == before and queue_depths(p.queue) == depth and document_files(p) == []

    queued = commit(*do_plan(p, path), settings=p.settings(), engine=p.engine)
    assert (queued.rejected, queued.invalid, queued.written, queued.queued) == (False, 5, 45, 45)
    with Session(p.engine) as s:
        assert s.execute(select(func.count()).select_from(Job).where(Job.state == "queued")).scalar_one() == 45
        batch = s.get(Batch, queued.batch_id)
        assert (batch.row_count, batch.invalid_count) == (45, 5)
    assert queue_depths(p.queue)["ready"] == 1  # 45 job ids in one message
    assert len(document_files(p)) == 1 + 45 and f"{queued.batch_id}" in document_files(p)


def test_the_preflight_reports_a_paused_contract_an_inactive_institution_and_a_signer_that_is_not_a_controller(
        make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, block_time=None)
    path = write_csv(tmp_path / "list.csv", 10, seed=2)
    w3, admin = p.chain.w3, p.env.admin_key
    vault = vault_contract(w3, p.env.vault_address)
    inst, signer = p.env.institution_address, p.env.signer_address
    cases = [
        (vault.functions.setPaused(True), vault.functions.setPaused(False), "ContractPaused", PAUSED),
        (vault.functions.upsertInstitution(inst, "Example University", False),
         vault.functions.upsertInstitution(inst, "Example University", True), "InstitutionInactive",
         f"Institution {inst} is deactivated, so it cannot issue credentials now."),
        (vault.functions.setInstitutionController(inst, signer, False),
         vault.functions.setInstitutionController(inst, signer, True), "UnauthorizedController",
         f"Account {signer} is not allowed to act for institution {inst}: it is neither the institution nor one "
         "of its enabled controllers."),
    ]
    before = table_counts(p.engine)
    for break_it, fix_it, code, message in cases:
        transact(w3, break_it, admin)
        report, staged = do_plan(p, path)
        assert report.problems == [{"institution": inst, "signer": signer, "code": code, "message": message}]
        assert report.new == 10 and report.blocked
        blocked = commit(report, staged, settings=p.settings(), engine=p.engine)
        assert blocked.rejected and blocked.rejected_reason == (
            f"the contract would refuse these credentials now ({message}); nothing was written")
        assert table_counts(p.engine) == before
        transact(w3, fix_it, admin)
    assert do_plan(p, path)[0].problems == []

    transact(w3, vault.functions.setPaused(True), admin)
    anyway = commit(*do_plan(p, path), settings=p.settings(), engine=p.engine, queue_while_blocked=True)
    assert (anyway.rejected, anyway.queued) == (False, 10)


def test_an_interrupted_commit_leaves_no_batch_jobs_or_documents(make_pipeline, database_url, tmp_path, monkeypatch):
    p = make_pipeline(database_url, block_time=None)
    path = write_csv(tmp_path / "list.csv", 30, seed=4)
    before = table_counts(p.engine)

    def interrupted(root, batch_id):
        raise KeyboardInterrupt  # Ctrl-C after every row and document was written, before the commit

    monkeypatch.setattr(documents, "publish", interrupted)
    with pytest.raises(KeyboardInterrupt):
        commit(*do_plan(p, path), settings=p.settings(), engine=p.engine)
    assert table_counts(p.engine) == before
    assert document_files(p) == []


def test_a_broker_failure_while_publishing_leaves_jobs_that_requeue_publishes(make_pipeline, sqlite_url, tmp_path,
                                                                             monkeypatch):
    from workers.actors import publish_jobs

    p = make_pipeline(sqlite_url, block_time=None)
    path = write_csv(tmp_path / "list.csv", 30, seed=6)
    monkeypatch.setattr("producers.upload.PUBLISH_SLICE", 10)
    calls = []

    def broker_dies_after_one_slice(ids, *, queue_name):
        if calls:
            raise ConnectionError("RabbitMQ went away")
        calls.append(ids)
        return publish_jobs(ids, queue_name=queue_name)

    with pytest.raises(ConnectionError):
        commit(*do_plan(p, path), settings=p.settings(), engine=p.engine, publish=broker_dies_after_one_slice)
    assert p.counts() == {"queued": 10, "validated": 20}
    assert len(document_files(p)) == 31  # the batch directory and its 30 documents are complete

    assert enqueue_batch(1, settings=p.settings(), engine=p.engine, include_queued=True) == 30  # `blockproof requeue 1`
    assert p.counts() == {"queued": 30}
    assert queue_depths(p.queue)["ready"] == 1 + 3
