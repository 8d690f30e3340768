"""Moving jobs between states: every change checked against models.states.ALLOWED and recorded."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import ColumnElement, insert, select, update
from sqlmodel import Session

from models.states import (ALLOWED, ATTEMPT_ALLOWED, TX_ALLOWED, AttemptStatus, JobState, TxStatus, check_move,
                           check_transition, utcnow)
from models.tables import ChainTransaction, Job, JobTransition, TxAttempt
from models.db import IN_LIST_CHUNK


def sources_of(target: JobState) -> list[str]:
    return [s.value for s, targets in ALLOWED.items() if target in targets]


def transition(session: Session, job: Job, target: JobState, reason: str = "", **fields: Any) -> None:
    """Move one loaded job; raises IllegalTransition when the table forbids it."""
    check_transition(JobState(job.state), target)
    session.add(JobTransition(job_id=job.id, from_state=job.state, to_state=target.value, reason=reason))
    job.state = target.value
    job.updated_at = utcnow()
    for name, value in fields.items():
        setattr(job, name, value)
    session.add(job)


def _allowed_sources(target: JobState, only_from: Iterable[JobState] | None) -> set[str]:
    allowed = set(sources_of(target))
    if only_from is not None:
        allowed &= {JobState(s).value for s in only_from}
    return allowed


def _record(session: Session, moved: list[int], before: dict[int, str], target: JobState, reason: str,
            now: datetime) -> None:
    if moved:
        session.execute(insert(JobTransition), [
            {"job_id": i, "from_state": before[i], "to_state": target.value, "reason": reason, "at": now} for i in moved])


@dataclass(frozen=True)
class Moved:
    """The ids that moved, and in `skipped` those asked for that did not (their state could not reach the
    target, or another process moved them first): a caller can say why, nothing is silently dropped."""

    moved: tuple[int, ...] = ()
    skipped: tuple[int, ...] = ()


def transition_many(
    session: Session,
    job_ids: Sequence[int],
    target: JobState,
    reason: str = "",
    *,
    only_from: Iterable[JobState] | None = None,
    **fields: Any,
) -> Moved:
    """Move many jobs at once; jobs whose current state cannot reach `target` are left alone (`.skipped`).

    Returns the ids that moved (`.moved`) and those that did not. History is written only for the rows the UPDATE really changed
    (UPDATE … RETURNING), so two workers racing to make the same move record it once.
    """
    allowed = _allowed_sources(target, only_from)
    moved: list[int] = []
    now = utcnow()
    for start in range(0, len(job_ids), IN_LIST_CHUNK):
        chunk = list(job_ids[start : start + IN_LIST_CHUNK])
        before: dict[int, str] = dict(session.execute(select(Job.id, Job.state).where(Job.id.in_(chunk), Job.state.in_(allowed))).all())
        if not before:
            continue
        changed = list(session.execute(
            update(Job).where(Job.id.in_(list(before)), Job.state.in_(allowed))
            .values(state=target.value, updated_at=now, **fields).returning(Job.id)
            .execution_options(synchronize_session=False)).scalars())
        _record(session, changed, before, target, reason, now)
        moved.extend(changed)
    done = set(moved)
    return Moved(tuple(moved), tuple(i for i in job_ids if i not in done))


def transition_where(session: Session, condition: ColumnElement[bool], target: JobState, reason: str = "", *,
                     only_from: Iterable[JobState] | None = None, **fields: Any) -> int:
    """Set-based transition of every job matching `condition` (no id lists; for whole slices of a batch).
    Returns how many jobs moved."""
    from sqlalchemy import and_

    allowed = _allowed_sources(target, only_from)
    where = and_(condition, Job.state.in_(allowed))
    now = utcnow()
    before: dict[int, str] = dict(session.execute(select(Job.id, Job.state).where(where)).all())
    changed = list(session.execute(
        update(Job).where(where).values(state=target.value, updated_at=now, **fields).returning(Job.id)
        .execution_options(synchronize_session=False)).scalars())
    _record(session, [i for i in changed if i in before], before, target, reason, now)
    return len(changed)


def claim_ready(session: Session, job_ids: Sequence[int]) -> set[int]:
    """READY → SUBMITTED for the jobs about to be signed, guarded so that a job another process took
    (a second signer on the key, an operator's cancel) is never signed again: only the returned ids
    were still ready. History comes with `link_submitted`, once the nonces are known."""
    claimed: set[int] = set()
    now = utcnow()
    for start in range(0, len(job_ids), IN_LIST_CHUNK):
        chunk = list(job_ids[start : start + IN_LIST_CHUNK])
        claimed.update(session.execute(
            update(Job).where(Job.id.in_(chunk), Job.state == JobState.READY.value)
            .values(state=JobState.SUBMITTED.value, updated_at=now).returning(Job.id)
            .execution_options(synchronize_session=False)).scalars())
    return claimed


def link_submitted(session: Session, signed: list[tuple[list[Job], ChainTransaction, TxAttempt]]) -> None:
    """Tie claimed jobs to their freshly signed transactions: one executemany UPDATE and one history INSERT
    for all of them, whatever the number of transactions (one per job on a contract without batch calls)."""
    from sqlalchemy import bindparam

    now = utcnow()
    rows = [{"jid": job.id, "tid": tx.id, "h": attempt.tx_hash, "nonce": tx.nonce}
            for jobs, tx, attempt in signed for job in jobs]
    if not rows:
        return
    session.execute(
        update(Job.__table__).where(Job.__table__.c.id == bindparam("jid"))
        .values(transaction_id=bindparam("tid"), tx_hash=bindparam("h")),
        rows)
    session.execute(insert(JobTransition), [
        {"job_id": r["jid"], "from_state": JobState.READY.value, "to_state": JobState.SUBMITTED.value,
         "reason": f"signed as nonce {r['nonce']}", "at": now} for r in rows])


def confirm_attached(session: Session, jobs: list[Job], *, deepest: int) -> list[int]:
    """Jobs given an event the consumer stored long ago (a person's retry found them on chain): confirmed
    at once when that event is deep enough, since the watermark has passed it already."""
    ids = [j.id for j in jobs if j.credential_id is not None and j.block_number is not None and j.block_number <= deepest]
    return list(transition_many(session, ids, JobState.CONFIRMED, "already on chain: its event is deep enough").moved)


def move_tx(tx: ChainTransaction, target: TxStatus) -> None:
    """The only place a transaction's status changes, checked against models.states.TX_ALLOWED."""
    check_move(TX_ALLOWED, tx.status, target)
    tx.status = target.value


def move_attempt(attempt: TxAttempt, target: AttemptStatus) -> None:
    """The only place an attempt's status changes, checked against models.states.ATTEMPT_ALLOWED."""
    check_move(ATTEMPT_ALLOWED, attempt.status, target)
    attempt.status = target.value
