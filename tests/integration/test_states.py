"""The job state machine: one table of allowed transitions, enforced and recorded."""
from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select
from sqlmodel import Session

from models.db import engine_for, migrate
from models.states import ALLOWED, TERMINAL, IllegalTransition, JobState, check_transition
from models.tables import Batch, Job, JobTransition
from models.transitions import transition, transition_many


def test_every_state_has_an_entry_and_only_person_or_chain_paths_leave_terminal_states():
    assert set(ALLOWED) == set(JobState)
    assert ALLOWED[JobState.FAILED] == {JobState.QUEUED, JobState.CONFIRMED, JobState.CANCELLED}
    assert ALLOWED[JobState.DEAD] == {JobState.QUEUED, JobState.CONFIRMED, JobState.CANCELLED}
    assert ALLOWED[JobState.CONFIRMED] == {JobState.MINED, JobState.SUBMITTED}  # only a reorg
    assert ALLOWED[JobState.CANCELLED] == {JobState.CONFIRMED}  # only the chain


def test_only_jobs_no_transaction_carries_can_be_cancelled():
    sources = {state for state, targets in ALLOWED.items() if JobState.CANCELLED in targets}
    assert JobState.SUBMITTED not in sources and JobState.MINED not in sources
    assert sources == {JobState.VALIDATED, JobState.QUEUED, JobState.READY, JobState.RETRYING, JobState.FAILED,
                       JobState.DEAD}


def test_a_job_cannot_skip_the_chain_to_become_confirmed_from_validated():
    with pytest.raises(IllegalTransition):
        check_transition(JobState.VALIDATED, JobState.CONFIRMED)
    with pytest.raises(IllegalTransition):
        check_transition(JobState.CONFIRMED, JobState.FAILED)


def test_there_is_a_path_from_validated_to_every_terminal_state():
    reachable, frontier = {JobState.VALIDATED}, [JobState.VALIDATED]
    while frontier:
        for nxt in ALLOWED[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert TERMINAL <= reachable


@pytest.fixture
def session(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    with Session(engine_for(url)) as s:
        s.add(Batch(id=1, filename="f.csv", institution="0x" + "1" * 40))
        for i in range(1, 4):
            s.add(Job(id=i, batch_id=1, idempotency_key=f"k{i}", institution="0x" + "1" * 40, state="queued"))
        s.commit()
        yield s


def test_transition_many_moves_only_jobs_whose_state_allows_it_and_records_history(session):
    session.get(Job, 3).state = "confirmed"
    session.commit()
    moved = transition_many(session, [1, 2, 3], JobState.READY, "accepted")
    session.commit()
    assert sorted(moved.moved) == [1, 2]
    assert moved.skipped == (3,), "the move it could not make is reported"
    assert dataclasses.asdict(moved) == {"moved": moved.moved, "skipped": (3,)}, "a plain value: copies, compares"
    with pytest.raises(dataclasses.FrozenInstanceError):
        moved.skipped = ()  # type: ignore[misc]
    assert session.get(Job, 3).state == "confirmed"
    history = session.execute(select(JobTransition).order_by(JobTransition.job_id)).scalars().all()
    assert [(h.job_id, h.from_state, h.to_state, h.reason) for h in history] == [
        (1, "queued", "ready", "accepted"), (2, "queued", "ready", "accepted")]


def test_transition_refuses_an_illegal_change_and_writes_nothing(session):
    job = session.get(Job, 1)
    with pytest.raises(IllegalTransition):
        transition(session, job, JobState.MINED)
    session.rollback()
    assert session.get(Job, 1).state == "queued"
    assert session.execute(select(JobTransition)).first() is None


def test_a_transaction_and_an_attempt_move_only_as_their_tables_allow():
    from models.states import ATTEMPT_ALLOWED, TX_ALLOWED, AttemptStatus, TxStatus
    from models.tables import ChainTransaction, TxAttempt
    from models.transitions import move_attempt, move_tx

    assert set(TX_ALLOWED) == set(TxStatus) and set(ATTEMPT_ALLOWED) == set(AttemptStatus)
    tx = ChainTransaction(signer="0x" + "1" * 40, nonce=0, kind="issue_batch", to_address="0x" + "2" * 40, data="0x",
                          gas_limit=21_000, status=TxStatus.PENDING.value)
    move_tx(tx, TxStatus.MINED)
    move_tx(tx, TxStatus.PENDING)  # a reorg removed its block
    move_tx(tx, TxStatus.SUPERSEDED)
    with pytest.raises(IllegalTransition):
        move_tx(tx, TxStatus.MINED)  # a superseded nonce never comes back as ours
    attempt = TxAttempt(transaction_id=1, tx_hash="0x", raw="0x", max_fee_per_gas=1, max_priority_fee_per_gas=1,
                        status=AttemptStatus.BROADCAST.value)
    move_attempt(attempt, AttemptStatus.REPLACED)
    with pytest.raises(IllegalTransition):
        move_attempt(attempt, AttemptStatus.SIGNED)  # signed bytes are never un-sent
