"""Reconciling jobs with the canonical chain's events: the only path to `confirmed`."""
from __future__ import annotations

from sqlalchemy import and_, func, select, update
from sqlmodel import Session

from models.states import JobState
from models.tables import CredentialEvent, Job, RevocationEvent
from models.transitions import transition_many

CONFIRMABLE = [JobState.QUEUED, JobState.READY, JobState.SUBMITTED, JobState.MINED,
               JobState.RETRYING, JobState.FAILED, JobState.DEAD]


def attach_issued(session: Session, events: list[dict]) -> None:
    """Give each job whose fingerprint appeared on chain its credential id, transaction and block."""
    by_fp = {e["fingerprint"]: e for e in events}
    fps = list(by_fp)
    for start in range(0, len(fps), 900):
        rows = session.execute(
            select(Job.id, Job.fingerprint, Job.state)
            .where(Job.kind == "issue", Job.fingerprint.in_(fps[start : start + 900]))
        ).all()
        for row in rows:
            e = by_fp[row.fingerprint]
            session.execute(update(Job).where(Job.id == row.id).values(
                credential_id=e["credential_id"], tx_hash=e["tx_hash"], block_number=e["block_number"]))
        submitted = [r.id for r in rows if r.state == JobState.SUBMITTED.value]
        transition_many(session, submitted, JobState.MINED, "event seen on chain", only_from=[JobState.SUBMITTED])


def attach_revoked(session: Session, events: list[dict]) -> None:
    for e in events:
        session.execute(update(CredentialEvent).where(CredentialEvent.credential_id == e["credential_id"]).values(
            revoked=True, revoked_at=e["revoked_at"], revocation_reason_hash=e["reason_hash"]))
        session.execute(update(Job).where(Job.kind == "revoke", Job.credential_id == e["credential_id"]).values(
            tx_hash=e["tx_hash"], block_number=e["block_number"]))


def confirm_deep_enough(session: Session, head: int, confirmations: int) -> int:
    """Jobs whose event is at least `confirmations` deep become confirmed."""
    deepest = head - confirmations + 1
    issue_ids = session.execute(
        select(Job.id).where(
            Job.kind == "issue", Job.state.in_([s.value for s in CONFIRMABLE]),
            Job.credential_id != None, Job.block_number <= deepest,  # noqa: E711
        )
    ).scalars().all()
    revoke_ids = session.execute(
        select(Job.id).join(RevocationEvent, and_(RevocationEvent.credential_id == Job.credential_id,
                                                  RevocationEvent.block_number <= deepest))
        .where(Job.kind == "revoke", Job.state.in_([s.value for s in CONFIRMABLE]))
    ).scalars().all()
    moved = transition_many(session, list(issue_ids), JobState.CONFIRMED, f"event {confirmations} blocks deep")
    moved += transition_many(session, list(revoke_ids), JobState.CONFIRMED, f"revocation {confirmations} blocks deep")
    return len(moved)


def roll_back_after(session: Session, ancestor: int) -> None:
    """A reorg removed everything after `ancestor`: jobs whose events were there go back to submitted."""
    ids = session.execute(
        select(Job.id).where(Job.block_number > ancestor, Job.state.in_([JobState.CONFIRMED.value, JobState.MINED.value]))
    ).scalars().all()
    transition_many(session, list(ids), JobState.SUBMITTED, f"reorg: blocks after {ancestor} were replaced")
    session.execute(update(Job).where(Job.kind == "issue", Job.block_number > ancestor)
                    .values(credential_id=None, block_number=None)
                    .execution_options(synchronize_session=False))
    session.execute(update(Job).where(Job.kind == "revoke", Job.block_number > ancestor).values(block_number=None))


def report(session: Session, head: int, missing_after: int) -> dict:
    """Mined jobs whose event never came, and events no job of ours explains."""
    stale = session.execute(
        select(Job.id, Job.tx_hash, Job.block_number).where(
            Job.kind == "issue", Job.state == JobState.MINED.value, Job.credential_id == None,  # noqa: E711
            Job.block_number <= head - missing_after)
    ).all()
    orphans = session.execute(
        select(CredentialEvent.credential_id, CredentialEvent.fingerprint, CredentialEvent.tx_hash)
        .outerjoin(Job, and_(Job.kind == "issue", Job.fingerprint == CredentialEvent.fingerprint))
        .where(Job.id == None)  # noqa: E711
        .order_by(CredentialEvent.credential_id).limit(1000)
    ).all()
    orphan_count = session.execute(
        select(func.count()).select_from(CredentialEvent)
        .outerjoin(Job, and_(Job.kind == "issue", Job.fingerprint == CredentialEvent.fingerprint))
        .where(Job.id == None)  # noqa: E711
    ).scalar_one()
    return {
        "mined_without_event": [dict(r._mapping) for r in stale],
        "events_without_job": [dict(r._mapping) for r in orphans],
        "events_without_job_count": orphan_count,
    }
