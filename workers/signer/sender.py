"""Sign, write ahead, broadcast. A signed attempt is committed before the node ever sees it."""
from __future__ import annotations

import logging

from eth_account import Account
from sqlmodel import Session

from blockproof.errors import RpcError, RpcUnavailable
from chain.rpc import Rpc
from models.tables import ChainTransaction, TxAttempt
from chain.rpc_errors import SendOutcome, classify_send_error

log = logging.getLogger("blockproof.signer")


def _fields(*, chain_id: int, tx: ChainTransaction, max_fee: int, tip: int) -> dict:
    return {"type": 2, "chainId": chain_id, "nonce": tx.nonce, "to": tx.to_address, "value": 0, "data": tx.data,
            "gas": tx.gas_limit, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}


def _hex(signed) -> tuple[str, str]:
    return "0x" + signed.raw_transaction.hex().removeprefix("0x"), "0x" + signed.hash.hex().removeprefix("0x")


def sign(account, *, chain_id: int, tx: ChainTransaction, max_fee: int, tip: int) -> tuple[str, str]:
    return _hex(account.sign_transaction(_fields(chain_id=chain_id, tx=tx, max_fee=max_fee, tip=tip)))


def _attempt(session: Session, tx: ChainTransaction, signed, max_fee: int, tip: int) -> TxAttempt:
    raw, tx_hash = _hex(signed)
    attempt = TxAttempt(
        transaction_id=tx.id, tx_hash=tx_hash, raw=raw, max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip
    )
    session.add(attempt)
    return attempt


def new_attempt(session: Session, account, *, chain_id: int, tx: ChainTransaction, max_fee: int, tip: int) -> TxAttempt:
    signed = account.sign_transaction(_fields(chain_id=chain_id, tx=tx, max_fee=max_fee, tip=tip))
    return _attempt(session, tx, signed, max_fee, tip)


def new_attempts(session: Session, account, *, chain_id: int, txs: list[ChainTransaction], max_fee: int,
                 tip: int) -> list[TxAttempt]:
    """One attempt per transaction; a backend that signs remotely gets them all in one round trip."""
    fields = [_fields(chain_id=chain_id, tx=tx, max_fee=max_fee, tip=tip) for tx in txs]
    many = getattr(account, "sign_many", None)
    signed = many(fields) if many else [account.sign_transaction(f) for f in fields]
    return [_attempt(session, tx, s, max_fee, tip) for tx, s in zip(txs, signed)]


def broadcast(rpc: Rpc, raw: str) -> tuple[SendOutcome, str]:
    try:
        rpc.call("eth_sendRawTransaction", raw)
        return SendOutcome.ACCEPTED, ""
    except (RpcError, RpcUnavailable) as exc:
        outcome = classify_send_error(exc)
        log.info("broadcast answered %s: %s", outcome.value, exc)
        return outcome, str(exc)


def broadcast_many(rpc: Rpc, raws: list[str]) -> list[tuple[SendOutcome, str]]:
    """Many broadcasts in one JSON-RPC round trip; a lost answer makes every outcome unknown."""
    if len(raws) == 1:
        return [broadcast(rpc, raws[0])]
    try:
        replies = rpc.batch([("eth_sendRawTransaction", [raw]) for raw in raws])
    except RpcUnavailable as exc:
        return [(SendOutcome.UNKNOWN, str(exc))] * len(raws)
    except RpcError as exc:  # a node that refuses JSON-RPC batches: one at a time
        log.info("batched broadcast refused (%s); sending one at a time", exc)
        return [broadcast(rpc, raw) for raw in raws]
    out = []
    for reply in replies:
        if isinstance(reply, RpcError):
            outcome = classify_send_error(reply)
            log.info("broadcast answered %s: %s", outcome.value, reply)
            out.append((outcome, str(reply)))
        else:
            out.append((SendOutcome.ACCEPTED, ""))
    return out


def log_sent(tx, attempt, jobs, outcome: SendOutcome) -> None:
    batches = sorted({j.batch_id for j in jobs})
    log.info("sent nonce %s (%s of %d job(s), batch %s): %s %s", tx.nonce, tx.kind, len(jobs),
             ",".join(map(str, batches)), outcome.value, attempt.tx_hash,
             extra={"nonce": tx.nonce, "tx_hash": attempt.tx_hash, "jobs": [j.id for j in jobs],
                    "batch": batches[0] if len(batches) == 1 else batches,
                    **({"job": jobs[0].id} if len(jobs) == 1 else {})})


def new_account(private_key: str):
    return Account.from_key(private_key)
