"""Read-side queries shared by the CLI, the HTTP API and the UI."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlmodel import Session

from models.fees import batch_fees, spend, utc_midnight
from models.states import JobState, TxStatus, utcnow
from models.tables import Alert, Batch, ChainTransaction, ConsumerCheckpoint, Job, SignerState


def batch_counts(session: Session, batch_id: int | None = None) -> dict[str, int]:
    query = select(Job.state, func.count()).group_by(Job.state)
    if batch_id is not None:
        query = query.where(Job.batch_id == batch_id)
    counts = {s.value: 0 for s in JobState}
    counts.update({state: n for state, n in session.execute(query).all()})
    return counts


def summarize_counts(counts: dict[str, int]) -> dict[str, int]:
    total = sum(counts.values())
    confirmed = counts.get("confirmed", 0)
    failed = counts.get("failed", 0) + counts.get("dead", 0)
    cancelled = counts.get("cancelled", 0)
    return {"total": total, "confirmed": confirmed, "failed": failed, "cancelled": cancelled,
            "pending": total - confirmed - failed - cancelled}


def progress_line(counts: dict[str, int]) -> str:
    s = summarize_counts(counts)
    line = f"{s['confirmed']}/{s['total']} confirmed · {s['pending']} pending · {s['failed']} failed"
    return line + (f" · {s['cancelled']} cancelled" if s["cancelled"] else "")


def hold_reason(session: Session, batch: Batch) -> str:
    """Why the signer sends none of this batch's jobs right now, in words ("" when nothing holds it)."""
    if batch.paused:
        return "paused by an operator"
    institution = session.execute(select(Alert.message).where(
        Alert.kind == "institution_on_hold", Alert.subject == batch.institution,
        Alert.resolved_at == None)).scalars().first()  # noqa: E711
    if institution:
        return institution
    budget = session.execute(select(Alert.message).where(
        Alert.kind == "batch_on_hold", Alert.subject == str(batch.id),
        Alert.resolved_at == None)).scalars().first()  # noqa: E711
    if budget:
        return budget
    return session.execute(select(SignerState.hold_reason).where(SignerState.hold_reason != "")).scalars().first() or ""


def batch_summary(session: Session, batch: Batch) -> dict:
    counts = batch_counts(session, batch.id)
    tx_rows = session.execute(
        select(func.count(func.distinct(Job.transaction_id))).where(Job.batch_id == batch.id)
    ).scalar_one()
    return {"id": batch.id, "filename": batch.filename, "kind": batch.kind, "institution": batch.institution,
            "created_at": batch.created_at.isoformat(), "paused": batch.paused, "rows": batch.row_count,
            "deadline": batch.deadline.isoformat() if batch.deadline else None,
            "invalid": batch.invalid_count, "duplicates": batch.duplicate_count, "counts": counts,
            "transactions": tx_rows, **summarize_counts(counts), "progress": progress_line(counts),
            **batch_fees(session, batch.id),
            "on_hold": hold_reason(session, batch) if summarize_counts(counts)["pending"] else ""}


def gas_per_credential(session: Session, batch_id: int | None = None) -> float | None:
    query = select(func.sum(ChainTransaction.gas_used), func.sum(ChainTransaction.job_count)).where(
        ChainTransaction.status == TxStatus.MINED.value)
    if batch_id is not None:
        tx_ids = select(Job.transaction_id).where(Job.batch_id == batch_id).distinct()
        query = query.where(ChainTransaction.id.in_(tx_ids))
    gas, jobs = session.execute(query).one()
    return (gas / jobs) if gas and jobs else None


def fee_panel(session: Session, settings) -> dict:
    """Fees paid (receipts) ever and today (UTC), the worst case still pending, and the budgets they count against."""
    ever = spend(session)
    today = spend(session, since=utc_midnight(utcnow()))
    issued = session.execute(select(func.count()).select_from(Job).where(
        Job.state.in_((JobState.MINED.value, JobState.CONFIRMED.value)))).scalar_one()
    return {"paid_wei": ever.paid_wei, "l1_paid_wei": ever.l1_paid_wei, "paid_today_wei": today.paid_wei,
            "pending_worst_case_wei": ever.pending_wei, "spent_today_wei": today.total_wei,
            "fee_per_credential_wei": ever.paid_wei // issued if issued and ever.paid_wei else None,
            "daily_budget_wei": settings.fee_budget_daily_wei, "batch_budget_wei": settings.fee_budget_batch_wei,
            "max_tx_fee_wei": settings.max_tx_fee_wei}


def eth(wei: int | None) -> str:
    return "-" if wei is None else f"{wei / 10**18:.6f} ETH"


def signer_panel(session: Session) -> list[dict]:
    rows = []
    for state in session.execute(select(SignerState)).scalars():
        in_flight = session.execute(select(func.count()).select_from(ChainTransaction).where(
            ChainTransaction.signer == state.address, ChainTransaction.status == TxStatus.PENDING.value)).scalar_one()
        rows.append({"address": state.address, "balance_wei": int(state.balance_wei), "local_nonce": state.next_nonce,
                     "chain_nonce": state.chain_nonce, "in_flight": in_flight, "paused": state.paused,
                     "hold_reason": state.hold_reason,
                     "heartbeat_at": state.heartbeat_at.isoformat() if state.heartbeat_at else None})
    return rows


def indexer_panel(session: Session) -> dict | None:
    cp = session.execute(select(ConsumerCheckpoint)).scalars().first()
    if cp is None:
        return None
    return {"head": cp.head_block, "last_indexed": cp.block_number, "lag": max(0, cp.head_block - cp.block_number),
            "halted_reason": cp.halted_reason, "getlogs_chunk": cp.getlogs_chunk,
            "updated_at": cp.updated_at.isoformat() if cp.updated_at else None}


def reconciliation(session: Session, missing_after: int) -> dict | None:
    """The consumer's reconciliation report at the head it last saw (no RPC call)."""
    from workers.consumer.reconcile import report

    cp = session.execute(select(ConsumerCheckpoint)).scalars().first()
    if cp is None:
        return None
    return report(session, cp.head_block, missing_after, limit=100)
