"""What transactions paid (from their receipts) and may still pay (pending ones, at their worst case): the
figures behind the spend budgets, `blockproof status`, the API, the UI and /metrics. Sums are taken in Python:
SQLite's SUM of integers stops at 2**63 wei (9.2 ETH)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlmodel import col
from sqlmodel import Session

from models.states import JobState, TxStatus
from models.tables import ChainTransaction, Job, TxAttempt

PAID = (TxStatus.MINED.value, TxStatus.REVERTED.value)


def paid_by(*, gas_used: int, effective_gas_price: int, l1_fee: int | None) -> int:
    """A mined transaction's fee: gasUsed × effectiveGasPrice, plus the L1 data fee on an OP-stack chain."""
    return gas_used * effective_gas_price + (l1_fee or 0)


def worst_case(*, gas_limit: int, max_fee: int, l1_fee: int | None) -> int:
    """The most a transaction may cost: gas limit × maxFeePerGas, plus its L1 data fee."""
    return gas_limit * max_fee + (l1_fee or 0)


def _paid(fee_paid: str | int | None, gas_used: int | None, price: str | int | None) -> int:
    if fee_paid is not None:
        return int(fee_paid)
    return int(gas_used) * int(price) if gas_used is not None and price is not None else 0  # before migration 0007


@dataclass(frozen=True)
class Spend:
    paid_wei: int  # fees of mined and reverted transactions, from their receipts
    l1_paid_wei: int  # the L1 data fee part of it
    pending_wei: int  # the worst case of pending transactions
    transactions: int  # mined and reverted transactions counted

    @property
    def total_wei(self) -> int:
        return self.paid_wei + self.pending_wei


def spend(session: Session, *, since: datetime | None = None, batch_id: int | None = None) -> Spend:
    """Fees paid by transactions mined since `since` (or ever) and the worst case of every pending one; only
    those carrying `batch_id`'s jobs when given."""
    paid_query = select(ChainTransaction.fee_paid_wei, ChainTransaction.gas_used, ChainTransaction.effective_gas_price,
                        ChainTransaction.l1_fee_wei).where(ChainTransaction.status.in_(PAID))
    pending_query = (select(ChainTransaction.gas_limit, func.max(TxAttempt.max_fee_per_gas), ChainTransaction.l1_fee_wei)
                     .join(TxAttempt, TxAttempt.transaction_id == ChainTransaction.id)
                     .where(ChainTransaction.status == TxStatus.PENDING.value).group_by(ChainTransaction.id, ChainTransaction.gas_limit, ChainTransaction.l1_fee_wei))
    if since is not None:
        paid_query = paid_query.where(col(ChainTransaction.mined_at) >= since)
    if batch_id is not None:
        paid_query = paid_query.where(ChainTransaction.batch_id == batch_id)
        pending_query = pending_query.where(ChainTransaction.batch_id == batch_id)
    rows = session.execute(paid_query).all()
    paid = sum(_paid(fee, gas, price) for fee, gas, price, _ in rows)
    l1 = sum(int(l1) for *_, l1 in rows if l1 is not None)
    pending = sum(worst_case(gas_limit=int(limit), max_fee=int(fee or 0), l1_fee=int(l1_fee) if l1_fee else None)
                  for limit, fee, l1_fee in session.execute(pending_query).all())
    return Spend(paid_wei=paid, l1_paid_wei=l1, pending_wei=pending, transactions=len(rows))


def utc_midnight(now: datetime) -> datetime:
    return now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def batch_fees(session: Session, batch_id: int) -> dict[str, int | None]:
    """A batch's fees: paid in all (L1 part apart), per credential it issued, and the worst case still pending."""
    spent = spend(session, batch_id=batch_id)
    credentials = session.execute(select(func.count()).select_from(Job).where(
        Job.batch_id == batch_id, Job.state.in_((JobState.MINED.value, JobState.CONFIRMED.value)))).scalar_one()
    return {"fees_paid_wei": spent.paid_wei, "l1_fees_paid_wei": spent.l1_paid_wei,
            "fees_pending_worst_case_wei": spent.pending_wei, "fee_transactions": spent.transactions,
            "fee_per_credential_wei": spent.paid_wei // credentials if credentials and spent.paid_wei else None}


def transaction_fee(tx: ChainTransaction) -> int | None:
    """What a mined (or reverted) transaction paid, from its receipt; None before it is mined."""
    if tx.gas_used is None or tx.effective_gas_price is None:
        return None
    return _paid(tx.fee_paid_wei, tx.gas_used, tx.effective_gas_price)


def credential_fee(session: Session, job: Job) -> int | None:
    """One credential's share of the transaction that issued (or revoked) it."""
    if not job.tx_hash:
        return None
    tx = session.execute(select(ChainTransaction).where(ChainTransaction.mined_hash == job.tx_hash)).scalars().first()
    fee = transaction_fee(tx) if tx is not None else None
    return fee // max(tx.job_count, 1) if tx is not None and fee is not None else None
