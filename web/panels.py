"""The dashboard's panels (queues, signer, indexer, alerts, throughput), shared by the pages, the polling
endpoint and /metrics."""
from __future__ import annotations

from datetime import timezone

from sqlmodel import Session

from blockproof import status
from models.alerts import open_alerts
from models.states import utcnow
from web import queries
from web.facts import DEFAULT_GAS_PER_CREDENTIAL, Facts

ALERT_TITLES = {"deep_reorg": "Deep reorg", "stuck_transaction": "Stuck transaction", "low_balance": "Low balance",
                "on_hold": "Issuance on hold", "missing_event": "Missing event",
                "stale_heartbeat": "Worker not reporting", "batch_on_hold": "Batch on hold (fee budget)"}


def alerts(session: Session, facts: Facts | None = None) -> list[dict]:
    if facts is not None:
        facts.heartbeats.get()  # raises or resolves the heartbeat alerts, at most every few seconds
    return [{"id": a.id, "kind": a.kind, "title": ALERT_TITLES.get(a.kind, a.kind.replace("_", " ").capitalize()),
             "subject": a.subject, "message": a.message, "created_at": a.created_at.isoformat()}
            for a in open_alerts(session)]


def signers(session: Session, facts: Facts) -> list[dict]:
    chain = facts.chain.get()
    gas_price = chain["gas_price_wei"]
    measured = status.gas_per_credential(session)
    gas_per_credential = int(measured) if measured else DEFAULT_GAS_PER_CREDENTIAL
    l1 = l1_fee_per_credential(session)
    rows = []
    for row in status.signer_panel(session):
        fee = gas_per_credential * gas_price + l1 if gas_price else None
        heartbeat_age = None
        if row["heartbeat_at"]:
            from datetime import datetime

            beat = datetime.fromisoformat(row["heartbeat_at"])
            beat = beat if beat.tzinfo else beat.replace(tzinfo=timezone.utc)
            heartbeat_age = round((utcnow() - beat).total_seconds(), 1)
        rows.append(row | {
            "balance_eth": row["balance_wei"] / 10**18, "gas_price_wei": gas_price,
            "gas_price_gwei": round(gas_price / 10**9, 3) if gas_price else None,
            "gas_per_credential": gas_per_credential, "gas_per_credential_measured": bool(measured),
            "fee_per_credential_wei": fee, "l1_fee_per_credential_wei": l1,
            "issuances_left": int(row["balance_wei"] // fee) if fee else None,
            "nonce_gap": row["local_nonce"] - row["chain_nonce"], "heartbeat_age_seconds": heartbeat_age,
            "state": "paused by operator" if row["paused"] else ("on hold" if row["hold_reason"] else "issuing"),
        })
    return rows


def l1_fee_per_credential(session: Session) -> int:
    """The L1 data fee (OP-stack chains) paid per credential so far: part of what a credential costs."""
    from sqlalchemy import func, select

    from models.fees import spend
    from models.tables import Job

    l1 = spend(session).l1_paid_wei
    if not l1:
        return 0
    issued = session.execute(select(func.count()).select_from(Job).where(
        Job.state.in_(("mined", "confirmed")))).scalar_one()
    return l1 // issued if issued else 0


def indexer(session: Session, facts: Facts) -> dict | None:
    panel = status.indexer_panel(session)
    chain = facts.chain.get()
    if panel is not None and chain["head"] is not None:
        panel["chain_head"] = max(chain["head"], panel["head"])  # the cached head may be a few seconds old
        panel["lag"] = max(0, panel["chain_head"] - panel["last_indexed"])
    return panel


def overview(session: Session, facts: Facts) -> dict:
    counts = queries.job_state_counts(session)
    return {"alerts": alerts(session, facts), "health": facts.health.get(),
            "signers": signers(session, facts), "indexer": indexer(session, facts),
            "queues": facts.queues.get(), "throughput": queries.throughput(session), "jobs": counts,
            "jobs_summary": status.summarize_counts(counts), "chain": facts.chain.get(),
            "fees": status.fee_panel(session, facts.settings)}
