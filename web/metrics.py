"""Prometheus /metrics, computed at scrape time from the database, the chain and RabbitMQ.

dramatiq's Prometheus middleware counts inside the worker processes and cannot be scraped from here; the web
process exposes the same facts from where they are recorded: job states and transitions in the database, queue
depths from the broker."""
from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from sqlmodel import Session

from web import panels, queries
from web.facts import Facts

QUANTILES = (0.5, 0.9, 0.99)


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
            alerts = panels.alerts(s)
            throughput = queries.throughput(s, minutes=5)

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
        for kind in ("deep_reorg", "stuck_transaction", "low_balance", "on_hold", "missing_event"):
            al.add_metric([kind], by_kind.pop(kind, 0))
        for kind, n in by_kind.items():
            al.add_metric([kind], n)
        yield al

        queues = self.facts.queues.get()
        depth = GaugeMetricFamily("blockproof_queue_messages", "Messages in RabbitMQ queues", labels=["queue", "kind"])
        consumers = GaugeMetricFamily("blockproof_queue_consumers", "Consumers connected to a queue", labels=["queue"])
        for q in queues["queues"]:
            depth.add_metric([q["name"], "ready"], q["ready"] or 0)
            if q.get("unacked") is not None:
                depth.add_metric([q["name"], "unacked"], q["unacked"])
            if q.get("consumers") is not None:
                consumers.add_metric([q["name"]], q["consumers"])
        yield depth
        yield consumers
        yield GaugeMetricFamily("blockproof_broker_up", "1 when RabbitMQ answered", value=0 if queues["error"] else 1)


def registry_for(engine, facts: Facts) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(engine, facts))
    return registry
