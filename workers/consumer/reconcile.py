"""Reconciling jobs with the canonical chain's events: the only path to `confirmed`."""
from __future__ import annotations

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlmodel import Session

from models.states import JobKind, JobState, TxStatus
from workers.consumer import finality
from models.tables import ChainTransaction, CredentialEvent, IndexedBlock, Job, RevocationEvent
from models.transitions import transition_many
from models.db import IN_LIST_CHUNK

CONFIRMABLE = [JobState.QUEUED, JobState.READY, JobState.SUBMITTED, JobState.MINED,
               JobState.RETRYING, JobState.FAILED, JobState.DEAD]
ROLLED_BACK = [JobState.CONFIRMED.value, JobState.MINED.value]
CHUNK = IN_LIST_CHUNK


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def attach_issued(session: Session, events: list[dict]) -> None:
    """Give each job whose fingerprint appeared on chain its credential id, transaction and block;
    a submitted job becomes mined."""
    by_fp = {e["fingerprint"]: e for e in events}
    for fps in _chunks(list(by_fp)):
        rows = session.execute(
            select(Job.id, Job.fingerprint, Job.state).where(Job.kind == JobKind.ISSUE.value, Job.fingerprint.in_(fps))
        ).all()
        if not rows:
            continue
        session.execute(update(Job), [
            {"id": r.id, "credential_id": by_fp[r.fingerprint]["credential_id"],
             "tx_hash": by_fp[r.fingerprint]["tx_hash"], "block_number": by_fp[r.fingerprint]["block_number"]}
            for r in rows])
        submitted = [r.id for r in rows if r.state == JobState.SUBMITTED.value]
        transition_many(session, submitted, JobState.MINED, "event seen on chain", only_from=[JobState.SUBMITTED])


def attach_revoked(session: Session, events: list[dict]) -> None:
    """Mark each revoked credential, and give its revoke job the transaction and block."""
    if not events:
        return
    table = CredentialEvent.__table__
    session.execute(
        update(table).where(table.c.credential_id == bindparam("b_id"))
        .values(revoked=True, revoked_at=bindparam("b_at"), revocation_reason_hash=bindparam("b_reason")),
        [{"b_id": e["credential_id"], "b_at": e["revoked_at"], "b_reason": e["reason_hash"]} for e in events])
    by_id = {e["credential_id"]: e for e in events if "tx_hash" in e}
    for ids in _chunks(list(by_id)):
        rows = session.execute(
            select(Job.id, Job.credential_id, Job.state).where(Job.kind == JobKind.REVOKE.value, Job.credential_id.in_(ids))
        ).all()
        if not rows:
            continue
        session.execute(update(Job), [
            {"id": r.id, "tx_hash": by_id[r.credential_id]["tx_hash"],
             "block_number": by_id[r.credential_id]["block_number"]} for r in rows])
        submitted = [r.id for r in rows if r.state == JobState.SUBMITTED.value]
        transition_many(session, submitted, JobState.MINED, "revocation seen on chain",
                        only_from=[JobState.SUBMITTED])


def confirm_deep_enough(session: Session, cp, head: int, confirmations: int, *, through: int | None = None,
                        mode: str = "confirmations") -> int:
    """Jobs whose event has at least `confirmations` confirmations (its own block counts as one) become
    confirmed. Decided from the stored events, never from what the signer saw. Only events that became
    deep enough since the last call are looked at (the checkpoint's `confirmed_through` watermark), so the
    cost follows the new blocks, not the size of the history."""
    if through is None:
        through = head - confirmations + 1
    deepest = min(through, cp.block_number)  # never past what has been ingested
    since = cp.confirmed_through
    if deepest <= since:
        return 0
    states = [s.value for s in CONFIRMABLE]
    # two indexed lookups rather than a join: the planner's guesses go wrong while tables grow fast
    fingerprints = list(session.execute(select(CredentialEvent.fingerprint).where(
        CredentialEvent.block_number > since, CredentialEvent.block_number <= deepest)).scalars())
    issue_ids = []
    for chunk in _chunks(fingerprints):
        issue_ids += session.execute(select(Job.id).where(
            Job.kind == JobKind.ISSUE.value, Job.fingerprint.in_(chunk), Job.state.in_(states))).scalars().all()
    revoked = list(session.execute(select(RevocationEvent.credential_id).where(
        RevocationEvent.block_number > since, RevocationEvent.block_number <= deepest)).scalars())
    revoke_ids = []
    for chunk in _chunks(revoked):
        revoke_ids += session.execute(select(Job.id).where(
            Job.kind == JobKind.REVOKE.value, Job.credential_id.in_(chunk), Job.state.in_(states))).scalars().all()
    settled = dict(error_code="", error_message="", next_attempt_at=None)  # why it waited stays in its history
    issued = transition_many(session, sorted(set(issue_ids)), JobState.CONFIRMED, finality.reason(mode, confirmations),
                             **settled)
    revoked_jobs = transition_many(session, sorted(set(revoke_ids)), JobState.CONFIRMED,
                                   finality.reason(mode, confirmations, "revocation"), **settled)
    cp.confirmed_through = deepest
    session.add(cp)
    return len(issued.moved) + len(revoked_jobs.moved)


def confirm_late_matches(session: Session, cp) -> int:
    """Failed or dead jobs whose credential the chain already holds (a job written after its credential was
    issued, e.g. an upload whose on-chain check could not run, fails pre-flight as already issued): confirmed
    from the event the watermark has passed. Run with the periodic reconciliation, not on every poll."""
    stuck = dict(session.execute(select(Job.fingerprint, Job.id).where(
        Job.kind == JobKind.ISSUE.value, Job.state.in_([JobState.FAILED.value, JobState.DEAD.value]))).all())
    ids = []
    for chunk in _chunks(list(stuck)):
        for event in session.execute(select(CredentialEvent).where(
                CredentialEvent.fingerprint.in_(chunk), CredentialEvent.block_number <= cp.confirmed_through)).scalars():
            session.execute(update(Job).where(Job.id == stuck[event.fingerprint]).values(
                credential_id=event.credential_id, tx_hash=event.tx_hash, block_number=event.block_number))
            ids.append(stuck[event.fingerprint])
    return len(transition_many(session, sorted(ids), JobState.CONFIRMED, "its event was already deep enough").moved)


def forget_after(session: Session, ancestor: int) -> dict:
    """Everything ingested after block `ancestor` is no longer canonical: delete its events and block hashes,
    move the jobs they confirmed back to submitted, and un-revoke credentials whose revocation went away."""
    gone_fps = list(session.execute(
        select(CredentialEvent.fingerprint).where(CredentialEvent.block_number > ancestor)).scalars())
    gone_revocations = list(set(session.execute(
        select(RevocationEvent.credential_id).where(RevocationEvent.block_number > ancestor)).scalars()))
    session.execute(delete(CredentialEvent).where(CredentialEvent.block_number > ancestor))
    session.execute(delete(RevocationEvent).where(RevocationEvent.block_number > ancestor))
    session.execute(delete(IndexedBlock).where(IndexedBlock.number > ancestor))

    reason = f"reorg: blocks after {ancestor} were replaced"
    ids = set(session.execute(
        select(Job.id).where(Job.block_number > ancestor, Job.state.in_(ROLLED_BACK))).scalars())
    for fps in _chunks(gone_fps):
        ids |= set(session.execute(select(Job.id).where(
            Job.kind == JobKind.ISSUE.value, Job.fingerprint.in_(fps), Job.state.in_(ROLLED_BACK))).scalars())
    for cids in _chunks(gone_revocations):
        ids |= set(session.execute(select(Job.id).where(
            Job.kind == JobKind.REVOKE.value, Job.credential_id.in_(cids), Job.state.in_(ROLLED_BACK))).scalars())
    transition_many(session, sorted(ids), JobState.SUBMITTED, reason)
    for fps in _chunks(gone_fps):
        session.execute(update(Job).where(Job.kind == JobKind.ISSUE.value, Job.fingerprint.in_(fps))
                        .values(credential_id=None, block_number=None).execution_options(synchronize_session=False))
    session.execute(update(Job).where(Job.kind == JobKind.ISSUE.value, Job.block_number > ancestor)
                    .values(credential_id=None, block_number=None).execution_options(synchronize_session=False))
    session.execute(update(Job).where(Job.kind == JobKind.REVOKE.value, Job.block_number > ancestor)
                    .values(block_number=None).execution_options(synchronize_session=False))

    for cids in _chunks(gone_revocations):
        session.execute(update(CredentialEvent).where(CredentialEvent.credential_id.in_(cids))
                        .values(revoked=False, revoked_at=None, revocation_reason_hash=None)
                        .execution_options(synchronize_session=False))
        remaining = session.execute(select(RevocationEvent).where(RevocationEvent.credential_id.in_(cids))
                                    .order_by(RevocationEvent.block_number, RevocationEvent.log_index)).scalars()
        attach_revoked(session, [{"credential_id": r.credential_id, "revoked_at": r.revoked_at,
                                  "reason_hash": r.reason_hash} for r in remaining])
    return {"events_removed": len(gone_fps), "revocations_removed": len(gone_revocations), "jobs_rolled_back": len(ids)}


def report(session: Session, head: int, missing_after: int, limit: int = 1000) -> dict:
    """What does not add up: mined jobs whose event has not appeared `missing_after` blocks later, and events
    that no job of ours explains (issued with our key elsewhere, or before this database existed)."""
    cutoff = head - missing_after
    stale_query = (
        select(Job.id, Job.kind, Job.state, Job.tx_hash,
               func.coalesce(ChainTransaction.block_number, Job.block_number).label("block_number"))
        .outerjoin(ChainTransaction, ChainTransaction.id == Job.transaction_id)
        .outerjoin(CredentialEvent, and_(Job.kind == JobKind.ISSUE.value, CredentialEvent.fingerprint == Job.fingerprint))
        .outerjoin(RevocationEvent, and_(Job.kind == JobKind.REVOKE.value, RevocationEvent.credential_id == Job.credential_id))
        .where(CredentialEvent.id == None, RevocationEvent.id == None)  # noqa: E711
        .where(or_(and_(Job.state == JobState.MINED.value, Job.block_number <= cutoff),
                   # the signer saw it mined, a reorg took the event away, and it never came back
                   and_(Job.state == JobState.SUBMITTED.value, ChainTransaction.status == TxStatus.MINED.value,
                        ChainTransaction.block_number <= cutoff)))
    )
    stale = session.execute(stale_query.order_by(Job.id).limit(limit)).all()
    orphan_query = (
        select(CredentialEvent.credential_id, CredentialEvent.fingerprint, CredentialEvent.tx_hash,
               CredentialEvent.block_number)
        .outerjoin(Job, and_(Job.kind == JobKind.ISSUE.value, Job.fingerprint == CredentialEvent.fingerprint))
        .where(Job.id == None)  # noqa: E711
    )
    orphans = session.execute(orphan_query.order_by(CredentialEvent.credential_id).limit(limit)).all()
    orphan_count = session.execute(select(func.count()).select_from(orphan_query.subquery())).scalar_one()
    stale_count = session.execute(select(func.count()).select_from(stale_query.subquery())).scalar_one()
    return {
        "head": head,
        "missing_after_blocks": missing_after,
        "mined_without_event": [dict(r._mapping) for r in stale],
        "mined_without_event_count": stale_count,
        "events_without_job": [dict(r._mapping) for r in orphans],
        "events_without_job_count": orphan_count,
    }


