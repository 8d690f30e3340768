"""Read queries behind the pages and the JSON API: job lists with keyset pagination and search, job detail,
throughput. Plain functions over a Session; they return plain dicts."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, or_, select
from sqlmodel import Session

from blockproof import status
from blockproof.verify import CREDENTIAL_ID_MAX
from models.fees import credential_fee, transaction_fee
from models.ids import ROW_ID_MAX, is_row_id  # noqa: F401
from models.states import JobKind, RETRYABLE_BY_PERSON, JobState, utcnow
from models.tables import Batch, ChainTransaction, CredentialEvent, Job, JobTransition, RevocationEvent, TxAttempt

PAGE_SIZE = 50
HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
RETRYABLE_STATES = [s.value for s in RETRYABLE_BY_PERSON]


def row_ids(text: str, *, limit: int) -> list[int]:
    """The ids of a comma-separated list ("3,17,42"); anything that cannot be a row id is left out."""
    return [int(x) for x in text.split(",") if x.strip().isdigit() and is_row_id(int(x))][:limit]


def get_batch(session: Session, batch_id: int) -> Batch | None:
    return session.get(Batch, batch_id) if is_row_id(batch_id) else None


def job_row(job: Job) -> dict:
    return {"id": job.id, "batch_id": job.batch_id, "kind": job.kind, "line": job.line, "state": job.state,
            "student_id": job.student_id, "student_name": job.student_name, "student_wallet": job.student_wallet,
            "fingerprint": job.fingerprint, "credential_id": job.credential_id, "tx_hash": job.tx_hash,
            "error_code": job.error_code, "error_message": job.error_message, "retryable": job.retryable,
            "can_retry": job.state in RETRYABLE_STATES, "updated_at": job.updated_at.isoformat()}


def search_condition(q: str, *, with_text: bool):
    """Match a student id, a part of a student's name, wallet, fingerprint, credential id, job id, transaction hash
    or error."""
    q = q.strip()
    conditions = [Job.student_id == q, Job.error_code == q]
    if len(q) >= 2 and not (HASH.match(q) or ADDRESS.match(q) or q.isdigit()):
        conditions.append(Job.student_name.icontains(q, autoescape=True))
    if HASH.match(q):
        conditions += [Job.fingerprint == q.lower(), Job.tx_hash == q.lower()]
        tx_ids = select(TxAttempt.transaction_id).where(TxAttempt.tx_hash == q.lower())
        conditions.append(Job.transaction_id.in_(tx_ids))
    if ADDRESS.match(q):
        from producers.validation import to_checksum

        conditions.append(Job.student_wallet.in_({q, to_checksum(q[2:].lower())}))
    if q.isdigit() and len(q) < 19:
        conditions.append(Job.credential_id == int(q))
        if is_row_id(int(q)):
            conditions.append(Job.id == int(q))
    if with_text and len(q) >= 3:
        conditions.append(Job.error_message.contains(q, autoescape=True))
    return or_(*conditions)


def list_jobs(session: Session, *, batch_id: int | None = None, state: str | None = None, q: str | None = None,
              after: int | None = None, before: int | None = None, limit: int = PAGE_SIZE,
              states: list[str] | None = None, error_code: str | None = None) -> dict:
    """A page of jobs in id order, by keyset (after / before an id): fast at any depth of a 100,000-job batch."""
    filters = []
    if batch_id is not None:
        filters.append(Job.batch_id == batch_id)
    if state:
        filters.append(Job.state == state)
    if states:
        filters.append(Job.state.in_(states))
    if error_code is not None:
        filters.append(Job.error_code == error_code)
    if q:
        # free-text error search only inside one batch (bounded scan); everything else is an indexed equality
        filters.append(search_condition(q, with_text=batch_id is not None))
    query = select(Job).where(*filters)
    if before is not None:
        rows = list(session.execute(query.where(Job.id < before).order_by(Job.id.desc()).limit(limit + 1)).scalars())
        has_prev = len(rows) > limit
        rows = list(reversed(rows[:limit]))
        has_next = True
    else:
        if after is not None:
            query = query.where(Job.id > after)
        rows = list(session.execute(query.order_by(Job.id).limit(limit + 1)).scalars())
        has_next = len(rows) > limit
        rows = rows[:limit]
        has_prev = after is not None
    return {"jobs": [job_row(j) for j in rows],
            "next_after": rows[-1].id if rows and has_next else None,
            "prev_before": rows[0].id if rows and has_prev else None}


def failed_by_code(session: Session) -> list[dict]:
    """Failed and dead jobs of every batch, counted by error code, most first."""
    rows = session.execute(select(Job.error_code, func.count()).where(Job.state.in_(RETRYABLE_STATES))
                           .group_by(Job.error_code)).all()
    return [{"code": code, "count": n} for code, n in sorted(rows, key=lambda r: (-r[1], r[0]))]


def failed_ids(session: Session, *, error_code: str | None = None) -> list[int]:
    query = select(Job.id).where(Job.state.in_(RETRYABLE_STATES))
    if error_code is not None:
        query = query.where(Job.error_code == error_code)
    return list(session.execute(query.order_by(Job.id)).scalars())


def list_batches(session: Session, *, before: int | None = None, limit: int = 20) -> dict:
    query = select(Batch).order_by(Batch.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(Batch.id < before)
    rows = list(session.execute(query).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return {"batches": [batch_summary(session, b) for b in rows], "next_before": rows[-1].id if more and rows else None}


def batch_summary(session: Session, batch: Batch) -> dict:
    summary = status.batch_summary(session, batch)
    summary["retryable"] = sum(summary["counts"].get(s, 0) for s in RETRYABLE_STATES)
    summary["percent"] = round(100 * summary["confirmed"] / summary["total"], 1) if summary["total"] else 0.0
    summary["failed_percent"] = round(100 * summary["failed"] / summary["total"], 1) if summary["total"] else 0.0
    summary["created_by"] = batch.created_by
    return summary


def _tx(tx: ChainTransaction, attempts: list[TxAttempt]) -> dict:
    fee = transaction_fee(tx)
    return {"id": tx.id, "signer": tx.signer, "nonce": tx.nonce, "kind": tx.kind, "status": tx.status,
            "job_count": tx.job_count, "gas_limit": tx.gas_limit, "mined_hash": tx.mined_hash,
            "block_number": tx.block_number, "gas_used": tx.gas_used,
            "effective_gas_price": int(tx.effective_gas_price) if tx.effective_gas_price is not None else None,
            "fee_wei": fee, "l1_fee_wei": int(tx.l1_fee_wei) if tx.l1_fee_wei is not None else None,
            "fee_per_credential_wei": fee // max(tx.job_count, 1) if fee is not None else None,
            "created_at": tx.created_at.isoformat(), "mined_at": tx.mined_at.isoformat() if tx.mined_at else None,
            "attempts": [{"tx_hash": a.tx_hash, "status": a.status, "max_fee_per_gas": int(a.max_fee_per_gas),
                          "max_priority_fee_per_gas": int(a.max_priority_fee_per_gas),
                          "broadcast_count": a.broadcast_count, "last_error": a.last_error,
                          "created_at": a.created_at.isoformat()} for a in attempts]}


def job_detail(session: Session, job_id: int) -> dict | None:
    job = session.get(Job, job_id) if is_row_id(job_id) else None
    if job is None:
        return None
    out = job_row(job) | {
        "institution": job.institution, "degree": job.degree, "major": job.major,
        "graduation_date": job.graduation_date, "expires_at": job.expires_at, "document": job.document,
        "metadata_suffix": job.metadata_suffix, "revocation_reason": job.revocation_reason,
        "block_number": job.block_number, "retries": job.retries, "created_at": job.created_at.isoformat(),
        "next_attempt_at": job.next_attempt_at.isoformat() if job.next_attempt_at else None,
        "fee_paid_wei": credential_fee(session, job),  # its share of the transaction that carried it
    }
    out["history"] = [{"from": t.from_state, "to": t.to_state, "reason": t.reason, "at": t.at.isoformat()}
                      for t in session.execute(select(JobTransition).where(JobTransition.job_id == job.id)
                                               .order_by(JobTransition.id)).scalars()]
    tx_conditions = []
    if job.transaction_id is not None:
        tx_conditions.append(ChainTransaction.id == job.transaction_id)
    if job.tx_hash:
        tx_conditions.append(ChainTransaction.mined_hash == job.tx_hash)
    txs = list(session.execute(select(ChainTransaction).where(or_(*tx_conditions)).order_by(ChainTransaction.id))
               .scalars()) if tx_conditions else []
    out["transactions"] = []
    for tx in txs:
        attempts = list(session.execute(select(TxAttempt).where(TxAttempt.transaction_id == tx.id)
                                        .order_by(TxAttempt.id)).scalars())
        out["transactions"].append(_tx(tx, attempts))
    event = None
    if job.credential_id is not None:
        event = session.execute(select(CredentialEvent).where(
            CredentialEvent.credential_id == job.credential_id)).scalars().first()
    elif job.kind == JobKind.ISSUE.value and job.fingerprint:
        event = session.execute(select(CredentialEvent).where(
            CredentialEvent.fingerprint == job.fingerprint)).scalars().first()
    out["event"] = None if event is None else {
        "credential_id": event.credential_id, "tx_hash": event.tx_hash, "log_index": event.log_index,
        "block_number": event.block_number, "block_hash": event.block_hash, "fingerprint": event.fingerprint,
        "student_wallet": event.student_wallet, "institution": event.institution, "metadata_uri": event.metadata_uri,
        "expires_at": event.expires_at, "revoked": event.revoked, "revoked_at": event.revoked_at}
    out["revocations"] = [] if job.credential_id is None else [
        {"tx_hash": r.tx_hash, "block_number": r.block_number, "revoked_by": r.revoked_by, "reason_hash": r.reason_hash,
         "revoked_at": r.revoked_at}
        for r in session.execute(select(RevocationEvent).where(
            RevocationEvent.credential_id == job.credential_id)).scalars()]
    out["revoke_jobs"] = [] if job.credential_id is None or job.kind != JobKind.ISSUE.value else [
        {"id": r.id, "state": r.state, "reason": r.revocation_reason, "batch_id": r.batch_id}
        for r in session.execute(select(Job).where(Job.kind == JobKind.REVOKE.value, Job.credential_id == job.credential_id))
        .scalars()]
    out["can_revoke"] = (job.kind == JobKind.ISSUE.value and job.state == JobState.CONFIRMED.value and event is not None
                         and not event.revoked and not out["revoke_jobs"])
    return out


def credential_facts(session: Session, credential_id: int) -> dict:
    """What this database knows besides the verify answer: the jobs that issued or revoke the credential, the
    transaction it was issued in, and its revocation (reason, who asked and when, when the chain recorded it)."""
    if not 1 <= credential_id <= CREDENTIAL_ID_MAX:
        return {"jobs": [], "issued": None, "revocation": None}
    jobs = list(session.execute(select(Job).where(Job.credential_id == credential_id).order_by(Job.id)).scalars())
    event = session.execute(select(CredentialEvent).where(CredentialEvent.credential_id == credential_id)
                            .limit(1)).scalars().first()
    revoke_job = next((j for j in jobs if j.kind == JobKind.REVOKE.value), None)
    on_chain = session.execute(select(RevocationEvent).where(RevocationEvent.credential_id == credential_id)
                               .order_by(RevocationEvent.block_number.desc()).limit(1)).scalars().first()
    revocation = None
    if revoke_job is not None or on_chain is not None:
        batch = session.get(Batch, revoke_job.batch_id) if revoke_job is not None else None
        revocation = {"reason": revoke_job.revocation_reason if revoke_job else None,
                      "requested_at": revoke_job.created_at.isoformat() if revoke_job else None,
                      "requested_by": batch.created_by if batch else None,
                      "job_id": revoke_job.id if revoke_job else None,
                      "state": revoke_job.state if revoke_job else None,
                      "revoked_at": on_chain.revoked_at if on_chain else None,
                      "tx_hash": on_chain.tx_hash if on_chain else None}
    return {"jobs": [job_row(j) for j in jobs], "revocation": revocation,
            "issued": {"tx_hash": event.tx_hash, "block_number": event.block_number} if event else None}


def throughput(session: Session, *, minutes: int = 5) -> dict:
    """Job transitions per minute over the last few minutes, by target state."""
    since = utcnow() - timedelta(minutes=minutes)
    rows = session.execute(select(JobTransition.to_state, func.count()).where(
        JobTransition.at >= since, JobTransition.to_state.in_(["ready", "submitted", "confirmed", "failed", "dead"]))
        .group_by(JobTransition.to_state)).all()
    per_minute = {state: round(n / minutes, 1) for state, n in rows}
    return {"window_minutes": minutes, "per_minute": {s: per_minute.get(s, 0.0)
                                                       for s in ("ready", "submitted", "confirmed", "failed", "dead")}}


def confirm_durations(session: Session, *, minutes: int = 60, limit: int = 20000) -> list[float]:
    """Seconds from upload to confirmation of jobs confirmed in the last hour."""
    since = utcnow() - timedelta(minutes=minutes)
    rows = session.execute(select(JobTransition.at, Job.created_at).join(Job, Job.id == JobTransition.job_id).where(
        JobTransition.to_state == "confirmed", JobTransition.at >= since).limit(limit)).all()
    out = []
    for at, created in rows:
        if at.tzinfo is None and created.tzinfo is not None:
            created = created.replace(tzinfo=None)
        elif at.tzinfo is not None and created.tzinfo is None:
            at = at.replace(tzinfo=None)
        out.append(max(0.0, (at - created).total_seconds()))
    return out


def reverts_by_code(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.error_code, func.count()).where(
        Job.error_code != "", Job.state.in_(RETRYABLE_STATES + ["retrying"])).group_by(Job.error_code)).all()
    return dict(rows)


def job_state_counts(session: Session) -> dict[str, int]:
    return status.batch_counts(session)


