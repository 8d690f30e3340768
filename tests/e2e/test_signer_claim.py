"""A job another process took between the signer's pre-flight and its signing (a second signer on the same
key, an operator's cancel) is never signed, broadcast or recorded again by this signer."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import Session

from chain.rpc import Rpc
from models.db import session_scope
from models.states import JobState
from models.tables import Job, JobTransition, TxAttempt
from models.transitions import transition_many
from tests.faults import rows_csv
from workers.signer.loop import Signer


class TakesJobsDuringPreflight(Rpc):
    """The real node; while the signer simulates, `take` runs, as another process would meanwhile."""

    def __init__(self, url: str, take):
        super().__init__(url)
        self.take, self.taken = take, False

    def batch(self, calls):
        if not self.taken and any(method == "eth_estimateGas" for method, _ in calls):
            self.taken = True
            self.take()
        return super().batch(calls)


def ready_jobs(p, csv) -> list[int]:
    report = p.upload(csv)
    with session_scope(p.engine) as s:
        ids = list(s.execute(select(Job.id).where(Job.batch_id == report.batch_id)).scalars())
        transition_many(s, ids, JobState.READY, "accepted by the signer")
    return ids


@pytest.mark.parametrize("taken", ["all", "some"])
def test_jobs_taken_by_another_process_during_preflight_are_not_signed_again(make_pipeline, database_url, tmp_path,
                                                                             taken):
    p = make_pipeline(database_url, block_time=None)
    p.chain.rpc("evm_setAutomine", False)
    ids = ready_jobs(p, rows_csv(tmp_path, 6, 931))
    stolen = ids if taken == "all" else ids[::2]

    def another_signer_takes_them():
        with session_scope(p.engine) as s:
            transition_many(s, stolen, JobState.CANCELLED, "taken elsewhere")

    signer = Signer(p.settings(), p.engine, private_key=p.env.signer_key, rpc=TakesJobsDuringPreflight(p.chain.rpc_url, another_signer_takes_them))
    signer.prepare()
    signer.step()
    assert signer.rpc.taken
    with Session(p.engine) as s:
        signed = s.execute(select(JobTransition.job_id).where(JobTransition.to_state == "submitted")).scalars().all()
        attempts = s.execute(select(TxAttempt)).scalars().all()
        states = dict(s.execute(select(Job.id, Job.state)).all())
    pending = p.chain.rpc("txpool_content")["pending"]
    pool = next((txs for sender, txs in pending.items() if sender.lower() == p.env.signer_address.lower()), {})
    assert not set(signed) & set(stolen), "a taken job got a history row for this signer's signing"
    assert all(states[i] == "cancelled" for i in stolen)
    if taken == "all":
        assert attempts == [] and pool == {}, "nothing is signed or broadcast for jobs this signer no longer owns"
    else:
        assert sorted(signed) == sorted(set(ids) - set(stolen))
        assert len(attempts) == 1 and len(pool) == 1
        assert all(states[i] == "submitted" for i in set(ids) - set(stolen))
