"""A broadcast whose answer is lost (a real loopback proxy forwards the
request to Anvil and drops the reply), and the node itself stopped for a while and restarted from its
--state file."""
from __future__ import annotations

import json
import time

from tests.faults import (FAST_SIGNER, RpcProxy, assert_invariants, attempts, pause_mining, resume_mining, rows_csv,
                          transactions, wait_for)


def sent_raws(bodies: list[str]) -> list[str]:
    raws = []
    for body in bodies:
        payload = json.loads(body)
        for item in payload if isinstance(payload, list) else [payload]:
            if item.get("method") == "eth_sendRawTransaction":
                raws.append(item["params"][0])
    return raws


def test_a_broadcast_with_a_lost_answer_is_resent_as_the_identical_bytes(make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER))
    with RpcProxy(p.chain.rpc_url) as proxy:
        p.extra_env["BLOCKPROOF_RPC_URL"] = proxy.url
        pause_mining(p)  # the lost transaction stays in the pool: the re-send meets the node's copy
        proxy.drop_answers("eth_sendRawTransaction", 1)
        p.start("consumer")
        p.start("signer")
        report = p.upload(rows_csv(tmp_path, 10, 401))
        [lost] = wait_for(lambda: sent_raws(proxy.dropped), 60, what="a lost answer")
        attempt = wait_for(lambda: [a for a in attempts(p.engine) if a.raw == lost and a.status == "broadcast"], 60,
                           what="the identical bytes re-sent")[0]
        assert attempt.last_error.startswith("already_known"), "the node did receive the first send"
        resume_mining(p)
        p.wait_until_settled(report.new, timeout=120)
        assert_invariants(p, report.new)
    assert [a.tx_hash for a in attempts(p.engine, attempt.transaction_id)] == [attempt.tx_hash], \
        "a second transaction was signed for a broadcast with an unknown outcome"
    assert sum(t.job_count for t in transactions(p.engine)) == report.new
    assert "broadcast answered unknown" in p.log("signer")


def test_the_node_down_for_a_while_then_back_loses_nothing(make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER), state_path=tmp_path / "anvil-state.json")
    p.start("consumer")
    p.start("signer")
    report = p.upload(rows_csv(tmp_path, 20, 402))
    wait_for(lambda: any(t.status == "mined" for t in transactions(p.engine)), 60, what="a first mined batch")
    p.chain.stop()
    time.sleep(6)  # both workers meet a dead node
    p.chain.restart()
    p.wait_until_settled(report.new, timeout=180)
    assert_invariants(p, report.new)
    assert "signer waiting" in p.log("signer") and "RpcUnavailable" in p.log("signer")
