"""A person's retry checks the chain first: a job already on chain is confirmed from its event, never re-sent."""
from __future__ import annotations

from sqlalchemy import func, select, update
from sqlmodel import Session

from models.states import JobState
from models.tables import ChainTransaction, Job
from models.transitions import transition_many
from producers.retry import retry_jobs
from tests.harness import write_csv


def test_retrying_a_failed_job_whose_credential_is_on_chain_confirms_it_without_sending_anything(
        make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url)
    p.start("signer")
    p.start("consumer")
    report = p.upload(write_csv(tmp_path / "five.csv", 5, seed=3))
    p.wait_until_settled(report.new)
    with Session(p.engine) as s:
        job_id = s.execute(select(Job.id).order_by(Job.id)).scalars().first()
        # the record of its event was lost (say, the job was failed by a person before the event arrived)
        transition_many(s, [job_id], JobState.SUBMITTED, "test set-up")
        transition_many(s, [job_id], JobState.FAILED, "test set-up", error_code="Reverted", error_message="x")
        s.execute(update(Job).where(Job.id == job_id).values(credential_id=None, block_number=None))
        s.commit()
        txs_before = s.execute(select(func.count()).select_from(ChainTransaction)).scalar_one()
    first = retry_jobs([job_id], settings=p.settings(), engine=p.engine)
    second = retry_jobs([job_id], settings=p.settings(), engine=p.engine)
    assert first.already_on_chain == [job_id] and first.requeued == []
    assert second.requeued == []
    p.wait_until_settled(report.new, terminal=[JobState.CONFIRMED])
    with Session(p.engine) as s:
        assert s.execute(select(func.count()).select_from(ChainTransaction)).scalar_one() == txs_before
    p.assert_exactly_once(report.new)
