"""The signer killed with SIGKILL around signing and broadcasting, messages
delivered more than once, bytes the node already has. Real Anvil, RabbitMQ and SQLite; real processes."""
from __future__ import annotations

import sys

from tests.crashing import CRASHED_AFTER_SIGNING
from workers.actors import publish_jobs
from tests.faults import (FAST_SIGNER, assert_invariants, attempts, in_pool, jobs, pause_mining, resume_mining,
                          rows_csv, transactions, wait_for)

def crash_after_signing(p, tmp_path, rows: int, seed: int):
    """Run the real signer with a fault around it until it exits between the write-ahead commit and the broadcast."""
    p.start("consumer")
    signer = p.start("signer", command=[sys.executable, "-m", "tests.crashing", "signer"])
    report = p.upload(rows_csv(tmp_path, rows, seed))
    assert signer.wait(timeout=120) == CRASHED_AFTER_SIGNING, p.log("signer")[-2000:]
    p.procs.pop("signer")
    signed = attempts(p.engine)
    assert signed and all(a.status == "signed" and a.broadcast_count == 0 for a in signed)
    return report, signed


def test_a_signer_killed_after_signing_sends_the_same_bytes_after_restart(make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER))
    report, signed = crash_after_signing(p, tmp_path, rows=10, seed=101)
    for a in signed:  # the crash came before the broadcast: the node never saw these bytes
        assert p.rpc.call("eth_getTransactionByHash", a.tx_hash) is None
    p.start("signer")
    p.wait_until_settled(report.new, timeout=120)
    assert_invariants(p, report.new)
    for a in signed:  # the bytes written ahead before the crash are the ones mined, under the same hash
        tx_attempts = attempts(p.engine, a.transaction_id)
        assert [x.tx_hash for x in tx_attempts] == [a.tx_hash], "a second transaction was signed for the nonce"
        assert tx_attempts[0].status == "mined" and tx_attempts[0].raw == a.raw
        assert p.rpc.call("eth_getTransactionReceipt", a.tx_hash)["status"] == "0x1"


def test_a_signer_killed_after_broadcast_keeps_the_original_hash(make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER))
    pause_mining(p)
    p.start("consumer")
    p.start("signer")
    report = p.upload(rows_csv(tmp_path, 5, 102))
    sent = wait_for(lambda: [a for a in attempts(p.engine) if a.status == "broadcast"], 60, what="a broadcast")
    assert in_pool(p, sent[0].tx_hash)
    p.kill("signer")  # SIGKILL: the receipt is never stored by this process
    p.chain.rpc("evm_mine")
    assert p.rpc.call("eth_getTransactionReceipt", sent[0].tx_hash)["status"] == "0x1"
    p.start("signer")
    resume_mining(p)
    p.wait_until_settled(report.new, timeout=120)
    assert_invariants(p, report.new)
    assert [a.tx_hash for a in attempts(p.engine)] == [sent[0].tx_hash], "something was re-signed"
    assert {j.tx_hash for j in jobs(p.engine)} == {sent[0].tx_hash}


def test_a_message_delivered_three_times_and_a_worker_killed_before_ack_issue_once(make_pipeline, sqlite_url,
                                                                                    tmp_path):
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER))
    report = p.upload(rows_csv(tmp_path, 10, 103))  # published once here
    ids = [j.id for j in jobs(p.engine)]
    publish_jobs(ids, queue_name=p.queue, chunk=5)  # ... and twice more
    publish_jobs(ids, queue_name=p.queue, chunk=5)
    p.start("consumer")
    p.start("signer")
    wait_for(lambda: p.counts().get("ready", 0) + p.counts().get("submitted", 0), 60, interval=0.02,
             what="the first delivery taken")
    p.kill("signer")  # SIGKILL while messages are in hand: unacked ones are delivered again
    p.start("signer")
    p.wait_until_settled(report.new, timeout=120)
    assert_invariants(p, report.new)
    txs = transactions(p.engine)
    assert sum(t.job_count for t in txs) == report.new, "a job rode in two transactions"


def test_bytes_the_node_already_has_count_as_sent(make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER))
    report, signed = crash_after_signing(p, tmp_path, rows=5, seed=104)
    pause_mining(p)
    for a in signed:  # someone (an operator, another relayer) broadcast the written-ahead bytes already
        assert p.rpc.call("eth_sendRawTransaction", a.raw) == a.tx_hash
    p.start("signer")
    answered = wait_for(lambda: [a for a in attempts(p.engine) if a.last_error.startswith("already_known")], 60,
                        what="the signer's re-send answered 'already known'")
    assert answered[0].status == "broadcast", "an 'already known' answer must count as sent"
    assert "transaction already imported" in answered[0].last_error  # Anvil's own words
    assert p.counts().get("failed", 0) == 0
    resume_mining(p)
    p.wait_until_settled(report.new, timeout=120)
    assert_invariants(p, report.new)
    assert [a.tx_hash for a in attempts(p.engine)] == [a.tx_hash for a in signed]
