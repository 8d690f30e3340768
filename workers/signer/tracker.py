"""Watching sent transactions: receipts, drops, stuck fees, nonces taken elsewhere, reorgs."""
from __future__ import annotations

import logging

from collections.abc import Iterable

from sqlalchemy import select
from sqlmodel import Session

from blockproof.errors import RpcError
from chain.rpc import Rpc

from models.states import AttemptStatus, JobState, TxStatus, utcnow
from models.transitions import move_attempt, move_tx
from models.fees import paid_by
from models.tables import ChainTransaction, Job, TxAttempt
from models.transitions import transition_many

log = logging.getLogger("blockproof.signer")


def jobs_of(session: Session, tx: ChainTransaction) -> list[int]:
    return list(session.execute(select(Job.id).where(Job.transaction_id == tx.id)).scalars().all())


def receipts(rpc: Rpc, attempts: list[TxAttempt]) -> tuple[dict[str, dict], set[int]]:
    """attempt hash → its receipt (only attempts with one), and the transactions whose lookup failed."""
    replies = rpc.batch([("eth_getTransactionReceipt", [a.tx_hash]) for a in attempts]) if attempts else []
    found: dict[str, dict] = {}
    unanswered: set[int] = set()
    for attempt, receipt in zip(attempts, replies):
        if isinstance(receipt, RpcError):
            unanswered.add(attempt.transaction_id)
        elif receipt:
            found[attempt.tx_hash] = receipt
    return found, unanswered


def block_hashes(rpc: Rpc, numbers: Iterable[int]) -> dict[int, str | None] | None:
    """height → the hash of the chain's block there (None: no block), or None when a lookup failed."""
    numbers = sorted(numbers)
    replies = rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers]) if numbers else []
    if any(isinstance(r, RpcError) for r in replies):
        return None
    return {n: (r or {}).get("hash") for n, r in zip(numbers, replies)}


def record_mined(session: Session, tx: ChainTransaction, attempt: TxAttempt, receipt: dict, *, max_retries: int) -> None:
    status = int(receipt["status"], 16)
    move_tx(tx, TxStatus.MINED if status == 1 else TxStatus.REVERTED)
    tx.mined_hash = attempt.tx_hash
    tx.block_number = int(receipt["blockNumber"], 16)
    record_fee(tx, receipt)
    tx.mined_at = utcnow()
    session.add(tx)
    for other in session.execute(select(TxAttempt).where(TxAttempt.transaction_id == tx.id)).scalars():
        move_attempt(other, AttemptStatus.MINED if other.id == attempt.id else AttemptStatus.REPLACED)
        session.add(other)
    ids = jobs_of(session, tx)
    if status == 1:
        transition_many(
            session, ids, JobState.MINED, f"mined in block {tx.block_number}",
            only_from=[JobState.SUBMITTED], tx_hash=attempt.tx_hash, block_number=tx.block_number,
        )
        return
    for job in session.execute(select(Job).where(Job.id.in_(ids))).scalars():
        if job.state != JobState.SUBMITTED.value:
            continue
        from models.transitions import transition

        if job.retries + 1 > max_retries:
            transition(session, job, JobState.FAILED, "transaction reverted too often",
                       error_code="Reverted", retryable=True, transaction_id=None,
                       error_message=f"Transaction {attempt.tx_hash} reverted on chain {job.retries + 1} times.")
        else:
            transition(session, job, JobState.READY, f"transaction {attempt.tx_hash} reverted; simulating again",
                       retries=job.retries + 1, transaction_id=None)


def record_fee(tx: ChainTransaction, receipt: dict) -> None:
    """What the mined attempt paid: gasUsed × effectiveGasPrice, plus the L1 data fee of an OP-stack chain (the
    receipt's l1Fee; from a node that leaves it out, what getL1Fee said when the transaction was signed)."""
    tx.gas_used = int(receipt["gasUsed"], 16)
    tx.effective_gas_price = int(receipt.get("effectiveGasPrice", "0x0"), 16)
    l1 = receipt.get("l1Fee")
    if l1:
        tx.l1_fee_wei = int(l1, 16)
    tx.fee_paid_wei = paid_by(gas_used=tx.gas_used, effective_gas_price=tx.effective_gas_price, l1_fee=int(tx.l1_fee_wei) if tx.l1_fee_wei is not None else None)


def record_superseded(session: Session, tx: ChainTransaction) -> None:
    """Our nonce was consumed by a transaction we did not sign: the jobs go back to be signed anew."""
    move_tx(tx, TxStatus.SUPERSEDED)
    session.add(tx)
    transition_many(
        session, jobs_of(session, tx), JobState.READY,
        f"nonce {tx.nonce} was used by another transaction from this key; re-queued on a new nonce",
        only_from=[JobState.SUBMITTED], transaction_id=None,
    )


def record_unmined(session: Session, tx: ChainTransaction) -> None:
    """A reorg removed the block our transaction was in: send it again."""
    log.warning("transaction nonce %s vanished from block %s (reorg); re-broadcasting", tx.nonce, tx.block_number)
    move_tx(tx, TxStatus.PENDING)
    tx.block_number = None
    tx.mined_hash = None
    tx.fee_paid_wei = None  # pending again: counted at its worst case until a receipt says otherwise
    tx.last_sent_at = None
    session.add(tx)
    for attempt in session.execute(select(TxAttempt).where(TxAttempt.transaction_id == tx.id)).scalars():
        move_attempt(attempt, AttemptStatus.BROADCAST)
        session.add(attempt)
    transition_many(session, jobs_of(session, tx), JobState.SUBMITTED, "a reorg removed the transaction's block",
                    only_from=[JobState.MINED, JobState.CONFIRMED])


def record_moved(session: Session, tx: ChainTransaction, attempt: TxAttempt, receipt: dict) -> bool:
    """A reorg re-mined our transaction in another block (or mined another of its attempts): follow it."""
    block = int(receipt["blockNumber"], 16)
    if block == tx.block_number and attempt.tx_hash == tx.mined_hash:
        return False
    log.warning("transaction nonce %s moved from block %s to %s (reorg)", tx.nonce, tx.block_number, block)
    tx.block_number = block
    tx.mined_hash = attempt.tx_hash
    record_fee(tx, receipt)
    session.add(tx)
    for other in session.execute(select(TxAttempt).where(TxAttempt.transaction_id == tx.id)).scalars():
        move_attempt(other, AttemptStatus.MINED if other.id == attempt.id else AttemptStatus.REPLACED)
        session.add(other)
    return True

