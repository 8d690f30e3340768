"""Retries exhausted (dead-letter queue, `dead` jobs, a person's idempotent
retry), the broker lost mid-batch, and PostgreSQL unreachable for a few seconds."""
from __future__ import annotations

import time

from sqlalchemy.engine import make_url

from models.states import JobState
from producers.retry import retry_jobs
from tests.conftest import require
from tests.faults import (FAST_SIGNER, RpcProxy, TcpProxy, assert_invariants, jobs, rows_csv, wait_for)
from tests.harness import fresh_database, postgres_up
from workers.broker import queue_depths


def test_exhausted_retries_dead_letter_the_message_and_a_persons_retry_is_idempotent(make_pipeline, sqlite_url,
                                                                                       tmp_path):
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER, BLOCKPROOF_MAX_RETRIES="2"))
    with RpcProxy(p.chain.rpc_url) as proxy:
        proxy.refuse("eth_call", in_batches_only=True)  # every pre-flight of the intake fails: HTTP 503
        p.extra_env["BLOCKPROOF_RPC_URL"] = proxy.url
        p.start("consumer")
        p.start("signer")
        report = p.upload(rows_csv(tmp_path, 5, 501))
        p.wait_until_settled(report.new, timeout=120)
        assert p.counts() == {"dead": report.new}
        for job in jobs(p.engine):
            assert job.error_code == "RetriesExhausted" and "Gave up after repeated temporary failures" in \
                job.error_message and job.retryable
        assert proxy.refused_count >= 3, "the message was not retried"
        wait_for(lambda: queue_depths(p.queue)["dead"] >= 1, 30, what="the message in the dead-letter queue")
        assert "failed for good" in p.log("signer")

        proxy.allow("eth_call")  # the cause is fixed; a person presses retry, twice
        ids = [j.id for j in jobs(p.engine)]
        first = retry_jobs(ids, settings=p.settings(), engine=p.engine, actor="test")
        second = retry_jobs(ids, settings=p.settings(), engine=p.engine, actor="test")
        assert sorted(first.requeued) == sorted(ids) and not first.already_on_chain
        assert second.requeued == [] and sorted(second.skipped) == sorted(ids)
        p.wait_until_settled(report.new, timeout=120, terminal={JobState.CONFIRMED})
        assert_invariants(p, report.new)
        # once issued, a third press re-checks the chain and sends nothing
        third = retry_jobs(ids, settings=p.settings(), engine=p.engine, actor="test")
        assert third.requeued == [] and sorted(third.skipped) == sorted(ids)
        assert_invariants(p, report.new)


def test_the_broker_lost_mid_batch_loses_no_job_and_the_worker_reconnects(make_pipeline, sqlite_url, tmp_path):
    # the broker vanishes behind a proxy this test owns (stopping the shared RabbitMQ would disturb every other
    # test and process on it); to the workers it is the same: connections cut, unacked messages requeued
    with TcpProxy("127.0.0.1", 5672) as proxy:
        p = make_pipeline(sqlite_url, extra_env=dict(
            FAST_SIGNER, BLOCKPROOF_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"))
        p.start("consumer")
        signer = p.start("signer")
        wait_for(lambda: "consuming queue" in p.log("signer"), 60, what="the signer to consume through the proxy")
        first = p.upload(rows_csv(tmp_path, 20, 502))
        proxy.go_dark()
        time.sleep(3)
        proxy.restore()
        second = p.upload(rows_csv(tmp_path, 10, 503))  # published once the broker is back
        p.wait_until_settled(first.new + second.new, timeout=180)
        assert_invariants(p, first.new + second.new)
        assert signer.poll() is None and p.procs["signer"] is signer, "the signer process was not the one that resumed"
        assert queue_depths(p.queue)["dead"] == 0
        assert proxy.cut >= 1, "the signer's broker connections were cut mid-batch"


def test_postgresql_unreachable_for_seconds_acks_nothing_before_its_write_commits(make_pipeline, tmp_path):
    require(postgres_up(), "PostgreSQL at 127.0.0.1:5432")
    url, drop = fresh_database("postgresql", tmp_path)
    p = None
    try:
        p = make_pipeline(url, extra_env=dict(FAST_SIGNER))
        real = make_url(url)
        with TcpProxy(real.host or "127.0.0.1", real.port or 5432) as proxy:
            proxied = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
            p.extra_env["DATABASE_URL"] = proxied  # the workers reach PostgreSQL only through the proxy
            p.start("consumer")
            p.start("signer")
            p.extra_env.pop("DATABASE_URL")  # the test itself writes directly
            first = p.upload(rows_csv(tmp_path, 10, 504))
            p.wait_until_settled(first.new, timeout=120)
            proxy.go_dark()
            second = p.upload(rows_csv(tmp_path, 10, 505))  # delivered while the workers cannot write
            time.sleep(5)
            assert proxy.refused > 0, "the workers did not try the database while it was away"
            assert {j.state for j in jobs(p.engine) if j.batch_id == second.batch_id} <= {"queued", "validated"}
            proxy.restore()
            p.wait_until_settled(first.new + second.new, timeout=180)
            assert_invariants(p, first.new + second.new)
        assert queue_depths(p.queue)["dead"] == 0
        assert "OperationalError" in p.log("signer")
    finally:
        for proc in list(p.procs if p else []):
            p.kill(proc)
        drop()
