"""Moving jobs between states: every change checked against models.states.ALLOWED and recorded."""
from __future__ import annotations

from typing import Iterable, Sequence

from sqlalchemy import insert, select, update
from sqlmodel import Session

from models.states import ALLOWED, JobState, check_transition, utcnow
from models.tables import Job, JobTransition


def sources_of(target: JobState) -> list[str]:
    return [s.value for s, targets in ALLOWED.items() if target in targets]


def transition(session: Session, job: Job, target: JobState, reason: str = "", **fields) -> None:
    """Move one loaded job; raises IllegalTransition when the table forbids it."""
    check_transition(JobState(job.state), target)
    session.add(JobTransition(job_id=job.id, from_state=job.state, to_state=target.value, reason=reason))
    job.state = target.value
    job.updated_at = utcnow()
    for name, value in fields.items():
        setattr(job, name, value)
    session.add(job)


def transition_many(
    session: Session,
    job_ids: Sequence[int],
    target: JobState,
    reason: str = "",
    *,
    only_from: Iterable[JobState] | None = None,
    **fields,
) -> list[int]:
    """Move many jobs at once; jobs whose current state cannot reach `target` are left alone.

    Returns the ids that moved. One SELECT, one UPDATE and one INSERT per chunk.
    """
    allowed = set(sources_of(target))
    if only_from is not None:
        allowed &= {JobState(s).value for s in only_from}
    moved: list[int] = []
    now = utcnow()
    for start in range(0, len(job_ids), 900):
        chunk = list(job_ids[start : start + 900])
        rows = session.execute(
            select(Job.id, Job.state).where(Job.id.in_(chunk), Job.state.in_(allowed))
        ).all()
        if not rows:
            continue
        ids = [r.id for r in rows]
        session.execute(
            update(Job)
            .where(Job.id.in_(ids), Job.state.in_(allowed))
            .values(state=target.value, updated_at=now, **fields)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            insert(JobTransition),
            [
                {"job_id": r.id, "from_state": r.state, "to_state": target.value, "reason": reason, "at": now}
                for r in rows
            ],
        )
        moved.extend(ids)
    return moved


def transition_where(session: Session, condition, target: JobState, reason: str = "", *,
                     only_from: Iterable[JobState] | None = None, **fields) -> int:
    """Set-based transition of every job matching `condition` (no id lists): one INSERT…SELECT for the
    history and one UPDATE. For whole slices of a batch. Returns how many jobs moved."""
    from sqlalchemy import and_, literal

    allowed = set(sources_of(target))
    if only_from is not None:
        allowed &= {JobState(s).value for s in only_from}
    where = and_(condition, Job.state.in_(allowed))
    now = utcnow()
    columns = JobTransition.__table__.c
    session.execute(insert(JobTransition).from_select(
        ["job_id", "from_state", "to_state", "reason", "at"],
        select(Job.id, Job.state, literal(target.value, columns.to_state.type), literal(reason, columns.reason.type),
               literal(now, columns.at.type)).where(where)))
    result = session.execute(update(Job).where(where).values(state=target.value, updated_at=now, **fields)
                             .execution_options(synchronize_session=False))
    return result.rowcount
