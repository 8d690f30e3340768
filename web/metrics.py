"""Prometheus /metrics, computed at scrape time from the database, the chain and RabbitMQ.

dramatiq's Prometheus middleware counts inside the worker processes and cannot be scraped from here; the web
process exposes the same facts from where they are recorded: job states and transitions in the database, queue
depths from the broker."""
from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select
from prometheus_client.registry import Collector, CollectorRegistry
from sqlmodel import Session

from blockproof import status
from models.fees import spend
from models.states import JobKind
from models.tables import Batch, Job, JobTransition
from web import panels, queries
from web.facts import Facts

QUANTILES = (0.5, 0.9, 0.99)
RECENT_BATCHES = 20  # per-batch series for the newest batches only: a label per batch ever would grow without end
# a queue's role (web.facts) -> the `kind` label of blockproof_queue_messages that the documented alert rules use (docs/web-and-api.md)
QUEUE_KINDS = {"work": "ready", "delayed": "delayed", "dead-letter": "dead"}


def lifetime_totals(session: Session) -> dict:
    """Counters read from the database, so that they survive restarts of every process. Failures and retries are
    counted from the state history (a job retried and failed again counts twice); fees from the receipts."""
    moves = dict(session.execute(select(JobTransition.to_state, func.count()).where(
        JobTransition.to_state.in_(("failed", "dead", "retrying"))).group_by(JobTransition.to_state)).all())
    by_operator = session.execute(select(func.count()).select_from(JobTransition).where(
        JobTransition.from_state.in_(("failed", "dead")), JobTransition.to_state == "queued")).scalar_one()
    issued = session.execute(select(func.count()).select_from(Job).where(
        Job.kind == JobKind.ISSUE.value, Job.state == "confirmed")).scalar_one()
    spent = spend(session)
    return {"issued": issued, "failed": moves.get("failed", 0), "dead": moves.get("dead", 0),
            "retries_automatic": moves.get("retrying", 0), "retries_operator": by_operator,
            "fees_wei": spent.paid_wei, "l1_fees_wei": spent.l1_paid_wei}


def _quantile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


class PipelineCollector(Collector):
    def __init__(self, engine, facts: Facts):
        self.engine, self.facts = engine, facts

    def collect(self):
        with Session(self.engine) as s:
            jobs = queries.job_state_counts(s)
            signers = panels.signers(s, self.facts)
            indexer = panels.indexer(s, self.facts)
            durations = sorted(queries.confirm_durations(s))
            reverts = queries.reverts_by_code(s)
            alerts = panels.alerts(s, self.facts)
            throughput = queries.throughput(s, minutes=5)
            totals = lifetime_totals(s)
            fee_panel = status.fee_panel(s, self.facts.settings)
            recent = [status.batch_summary(s, b) for b in s.execute(
                select(Batch).order_by(Batch.id.desc()).limit(RECENT_BATCHES)).scalars()]
        health = self.facts.health.get()

        yield CounterMetricFamily("blockproof_credentials_issued", "Credentials issued and confirmed (issue jobs "
                                  "confirmed)", value=totals["issued"])
        failed = CounterMetricFamily("blockproof_credentials_failed", "Jobs that became failed or dead, from the "
                                     "state history", labels=["state"])
        failed.add_metric(["failed"], totals["failed"])
        failed.add_metric(["dead"], totals["dead"])
        yield failed
        retries = CounterMetricFamily("blockproof_job_retries", "Retries: automatic (temporary failure) or by "
                                      "an operator (failed/dead re-queued)", labels=["by"])
        retries.add_metric(["automatic"], totals["retries_automatic"])
        retries.add_metric(["operator"], totals["retries_operator"])
        yield retries
        yield CounterMetricFamily("blockproof_fees_paid_wei", "Fees paid by mined and reverted transactions "
                                  "(gas used × effective gas price, plus the L1 data fee on OP-stack chains)",
                                  value=totals["fees_wei"])
        yield CounterMetricFamily("blockproof_l1_fees_paid_wei", "The L1 data fee part of blockproof_fees_paid_wei "
                                  "(OP-stack chains)", value=totals["l1_fees_wei"])
        if fee_panel["fee_per_credential_wei"] is not None:
            yield GaugeMetricFamily("blockproof_fee_per_credential_wei", "Fees paid per credential mined, lifetime",
                                    value=fee_panel["fee_per_credential_wei"])
        yield GaugeMetricFamily("blockproof_fees_spent_today_wei", "Fees paid today (UTC) plus the worst case of "
                                "pending transactions: what BLOCKPROOF_FEE_BUDGET_DAILY_WEI counts",
                                value=fee_panel["spent_today_wei"])
        budget = GaugeMetricFamily("blockproof_fee_budget_wei", "Spend budgets (0 = none)", labels=["per"])
        budget.add_metric(["day"], fee_panel["daily_budget_wei"])
        budget.add_metric(["batch"], fee_panel["batch_budget_wei"])
        budget.add_metric(["transaction"], fee_panel["max_tx_fee_wei"])
        yield budget
        batch_fees = GaugeMetricFamily("blockproof_batch_fees_paid_wei", f"Fees paid by each of the {RECENT_BATCHES} "
                                       "newest batches", labels=["batch"])
        batch_per = GaugeMetricFamily("blockproof_batch_fee_per_credential_wei", f"Fees paid per credential mined, "
                                      f"each of the {RECENT_BATCHES} newest batches", labels=["batch"])
        batch_held = GaugeMetricFamily("blockproof_batch_on_hold", "1 when a batch waits (its fee budget is spent, "
                                       "its institution is held, or it is paused)", labels=["batch"])
        for b in recent:
            batch_fees.add_metric([str(b["id"])], b["fees_paid_wei"])
            if b["fee_per_credential_wei"] is not None:
                batch_per.add_metric([str(b["id"])], b["fee_per_credential_wei"])
            batch_held.add_metric([str(b["id"])], 1 if b["on_hold"] or b["paused"] else 0)
        yield from (batch_fees, batch_per, batch_held)

        up = GaugeMetricFamily("blockproof_up", "1 when the component answered just now", labels=["component"])
        for name, component in health["components"].items():
            up.add_metric([name], 1 if component["ok"] else 0)
        yield up
        beat = GaugeMetricFamily("blockproof_heartbeat_age_seconds", "Seconds since a worker last reported",
                                 labels=["component", "subject"])
        for b in health["heartbeats"]:
            if b["age_seconds"] is not None:
                beat.add_metric([b["component"], b["subject"]], b["age_seconds"])
        yield beat

        g = GaugeMetricFamily("blockproof_jobs", "Jobs by state", labels=["state"])
        for state, n in jobs.items():
            g.add_metric([state], n)
        yield g

        balance = GaugeMetricFamily("blockproof_signer_balance_wei", "Signer balance (wei)", labels=["address"])
        left = GaugeMetricFamily("blockproof_signer_issuances_left",
                                 "Credentials the signer's balance pays for at current fees", labels=["address"])
        nonce = GaugeMetricFamily("blockproof_signer_nonce", "Signer nonce: the chain's and the locally owned next one",
                                  labels=["address", "source"])
        pending = GaugeMetricFamily("blockproof_pending_transactions", "Transactions sent and not yet mined",
                                    labels=["address"])
        paused = GaugeMetricFamily("blockproof_signer_paused", "1 when issuance is paused or on hold",
                                   labels=["address", "why"])
        for sg in signers:
            balance.add_metric([sg["address"]], sg["balance_wei"])
            if sg["issuances_left"] is not None:
                left.add_metric([sg["address"]], sg["issuances_left"])
            nonce.add_metric([sg["address"], "chain"], sg["chain_nonce"])
            nonce.add_metric([sg["address"], "local"], sg["local_nonce"])
            pending.add_metric([sg["address"]], sg["in_flight"])
            paused.add_metric([sg["address"], "operator"], 1 if sg["paused"] else 0)
            paused.add_metric([sg["address"], "hold"], 1 if sg["hold_reason"] else 0)
        yield from (balance, left, nonce, pending, paused)

        chain = self.facts.chain.get()
        if chain["gas_price_wei"] is not None:
            yield GaugeMetricFamily("blockproof_gas_price_wei", "eth_gasPrice of the RPC node", value=chain["gas_price_wei"])
        if chain["head"] is not None:
            yield GaugeMetricFamily("blockproof_chain_head_block", "Latest block of the RPC node", value=chain["head"])

        ttc = GaugeMetricFamily("blockproof_time_to_confirm_seconds",
                                "Seconds from upload to confirmation, jobs confirmed in the last hour",
                                labels=["quantile"])
        for q in QUANTILES:
            if durations:
                ttc.add_metric([str(q)], _quantile(durations, q))
        yield ttc
        yield GaugeMetricFamily("blockproof_confirmed_last_hour", "Jobs confirmed in the last hour", value=len(durations))

        rv = GaugeMetricFamily("blockproof_failed_jobs_by_error", "Failed, dead or retrying jobs by decoded error code",
                               labels=["error_code"])
        for code, n in reverts.items():
            rv.add_metric([code], n)
        yield rv

        tp = GaugeMetricFamily("blockproof_transitions_per_minute", "Job transitions per minute (last 5 minutes)",
                               labels=["to_state"])
        for state, rate in throughput["per_minute"].items():
            tp.add_metric([state], rate)
        yield tp

        if indexer is not None:
            yield GaugeMetricFamily("blockproof_indexer_lag_blocks", "Chain head minus last indexed block",
                                    value=indexer["lag"])
            yield GaugeMetricFamily("blockproof_indexer_last_block", "Last block the consumer indexed",
                                    value=indexer["last_indexed"])
            yield GaugeMetricFamily("blockproof_indexer_halted", "1 when the consumer stopped (deep reorg)",
                                    value=1 if indexer["halted_reason"] else 0)

        al = GaugeMetricFamily("blockproof_open_alerts", "Open alerts by kind", labels=["kind"])
        by_kind: dict[str, int] = {}
        for a in alerts:
            by_kind[a["kind"]] = by_kind.get(a["kind"], 0) + 1
        for kind in ("deep_reorg", "stuck_transaction", "low_balance", "on_hold", "missing_event", "stale_heartbeat"):
            al.add_metric([kind], by_kind.pop(kind, 0))
        for kind, n in by_kind.items():
            al.add_metric([kind], n)
        yield al

        queues = self.facts.queues.get()
        depth = GaugeMetricFamily("blockproof_queue_messages", "Messages of the work queue by kind: ready and "
                                  "unacked in the queue itself, delayed (retries waiting, <queue>.DQ), dead "
                                  "(dead-lettered, <queue>.XQ)", labels=["queue", "kind"])
        consumers = GaugeMetricFamily("blockproof_queue_consumers", "Consumers connected to the work queue",
                                      labels=["queue"])
        work = self.facts.settings.queue_name
        for q in queues["queues"]:
            depth.add_metric([work, QUEUE_KINDS[q["role"]]], q["ready"] or 0)
            if q["role"] == "work" and q.get("unacked") is not None:
                depth.add_metric([work, "unacked"], q["unacked"])
            if q["role"] == "work" and q.get("consumers") is not None:
                consumers.add_metric([work], q["consumers"])
        yield depth
        yield consumers
        yield GaugeMetricFamily("blockproof_broker_up", "1 when RabbitMQ answered", value=0 if queues["error"] else 1)


def registry_for(engine, facts: Facts) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(engine, facts))
    return registry
