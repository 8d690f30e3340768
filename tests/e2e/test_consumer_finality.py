"""BLOCKPROOF_FINALITY: the consumer confirms a job after N confirmations, or only once its block is at or below
the node's `safe` / `finalized` block. Real Anvil with `--slots-in-an-epoch 2`: safe = head - 2 and
finalized = head - 4."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import Session

from models.tables import ConsumerCheckpoint, Job, JobTransition
from tests.faults import wait_for
from tests.harness import write_csv
from workers.consumer.finality import confirmable_through

# blocks above the job's block the head must reach before it is confirmed, per mode (confirmations = 2)
NEEDED = {"confirmations": 1, "safe": 2, "finalized": 4}


def test_the_confirmable_block_follows_the_mode():
    assert confirmable_through("confirmations", head=100, confirmations=3, tagged_block=None) == 98
    assert confirmable_through("safe", head=100, confirmations=3, tagged_block=90) == 90
    assert confirmable_through("finalized", head=100, confirmations=3, tagged_block=None) == -1
    assert confirmable_through("safe", head=100, confirmations=3, tagged_block=120) == 100


def _jobs(p) -> list[Job]:
    with Session(p.engine) as s:
        return list(s.execute(select(Job).order_by(Job.id)).scalars())


def _history(p, job_id: int) -> list[tuple[str, str]]:
    with Session(p.engine) as s:
        return [(t.from_state, t.to_state) for t in s.execute(
            select(JobTransition).where(JobTransition.job_id == job_id).order_by(JobTransition.id)).scalars()]


def _consumer_saw(p, head: int) -> bool:
    with Session(p.engine) as s:
        cp = s.get(ConsumerCheckpoint, "vault-events")
        return cp is not None and cp.head_block >= head and cp.block_number >= head


def _pipeline(make_pipeline, url, mode):
    p = make_pipeline(url, block_time=None, extra_args=["--slots-in-an-epoch", "2"],
                      extra_env={"BLOCKPROOF_FINALITY": mode, "BLOCKPROOF_FINALITY_DEPTH": "16"})
    p.start("signer")
    p.start("consumer")
    return p


def _mined(p, tmp_path, rows=3, seed=5) -> int:
    p.upload(write_csv(tmp_path / f"rows{seed}.csv", rows, seed=seed))
    wait_for(lambda: {j.state for j in _jobs(p)} == {"mined"}, what="jobs mined")
    return _jobs(p)[0].block_number


@pytest.mark.parametrize("mode", ["confirmations", "safe", "finalized"])
def test_a_job_is_confirmed_only_once_its_block_is_final_in_the_chosen_mode(mode, make_pipeline, sqlite_url,
                                                                             tmp_path):
    p = _pipeline(make_pipeline, sqlite_url, mode)
    block = _mined(p, tmp_path)
    if NEEDED[mode] > 1:
        p.chain.mine(NEEDED[mode] - 1)  # one block short
        wait_for(lambda: _consumer_saw(p, block + NEEDED[mode] - 1), what="the consumer at the new head")
        assert {j.state for j in _jobs(p)} == {"mined"}, f"confirmed before its block was {mode}"
    p.chain.mine(1)
    wait_for(lambda: {j.state for j in _jobs(p)} == {"confirmed"}, what=f"jobs confirmed ({mode})")
    if mode != "confirmations":
        tagged = int(p.rpc.get_block(mode)["number"], 16)
        assert tagged >= block


def test_a_reorg_above_the_safe_block_never_confirmed_the_job_and_it_is_confirmed_after_it_comes_back(
        make_pipeline, database_url, tmp_path):
    p = _pipeline(make_pipeline, database_url, "safe")
    block = _mined(p, tmp_path)
    p.chain.mine(1)  # head = block + 1; safe = block - 1
    wait_for(lambda: _consumer_saw(p, block + 1), what="the consumer at the new head")
    assert {j.state for j in _jobs(p)} == {"mined"}
    p.chain.rpc("anvil_reorg", 2, [])  # the job's block and the one above it: both above the safe block
    wait_for(lambda: all(("mined", "submitted") in _history(p, j.id) for j in _jobs(p)), what="jobs rolled back")
    wait_for(lambda: {j.state for j in _jobs(p)} == {"mined"}, what="the re-broadcast issuance mined")
    p.chain.mine(2)
    wait_for(lambda: {j.state for j in _jobs(p)} == {"confirmed"}, what="jobs confirmed after the reorg")
    for job in _jobs(p):
        path = _history(p, job.id)
        assert path.count(("mined", "confirmed")) == 1 and path.index(("mined", "confirmed")) > \
            path.index(("mined", "submitted")), path
    p.assert_exactly_once(3)
