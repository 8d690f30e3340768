"""Batches the node will simulate: every way a node says "too big" splits the call instead of stalling the
signer, and a signer that makes no progress while work is ready raises an alert that clears itself."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import Session

from blockproof.errors import RpcError
from models.tables import Alert
from tests.faults import RpcProxy, assert_invariants, rows_csv, transactions, wait_for
from workers.signer import fees, stall
from chain.rpc_errors import is_too_big

NODE_ANSWERS_TOO_BIG = [
    (-32603, "EVM error MemoryOOG"),  # Anvil, when the URIs make memory run out first
    (-32603, "EVM error OutOfGas"),  # Anvil, otherwise
    (-32000, "gas required exceeds allowance (30000000)"),  # geth's eth_estimateGas
    (-32000, "out of gas"),  # geth's eth_call
    (-32603, "EVM error MemoryLimitOOG"),
]


@pytest.mark.parametrize("code,message", NODE_ANSWERS_TOO_BIG)
def test_every_too_big_answer_is_recognised(code, message):
    assert is_too_big(RpcError(code, message, None, "eth_call"))


@pytest.mark.parametrize("message", ["execution reverted", "nonce too low", "invalid opcode: opcode 0xfe not defined",
                                     "header not found"])
def test_other_answers_are_not_taken_for_too_big(message):
    assert not is_too_big(RpcError(-32000, message, None, "eth_call"))


def test_the_first_batch_fits_the_block_budget_and_never_exceeds_the_batch_size():
    budget = fees.tx_gas_budget(30_000_000, 15_000_000)
    assert fees.batch_size_for(budget, 240_000, most=250) == 62
    assert fees.batch_size_for(budget, 240_000, most=20) == 20
    assert fees.batch_size_for(100_000, 240_000, most=250) == 1


@pytest.mark.parametrize("ready,on_hold,quiet,stalled", [
    (10, False, 301, True), (10, False, 299, False), (0, False, 10_000, False), (10, True, 10_000, False)])
def test_a_stall_is_ready_work_with_no_progress_and_no_hold_to_explain_it(ready, on_hold, quiet, stalled):
    assert stall.is_stalled(ready_jobs=ready, on_hold=on_hold, quiet_seconds=quiet, threshold_seconds=300) is stalled


@pytest.mark.parametrize("code,message", [NODE_ANSWERS_TOO_BIG[0], NODE_ANSWERS_TOO_BIG[2]])
def test_a_node_that_refuses_big_simulations_gets_smaller_batches_and_every_row_is_issued_once(
        make_pipeline, sqlite_url, tmp_path, code, message):
    p = make_pipeline(sqlite_url, extra_env={"BLOCKPROOF_BATCH_SIZE": "40"})
    with RpcProxy(p.chain.rpc_url) as proxy:
        for method in ("eth_call", "eth_estimateGas"):
            proxy.too_big(method, over_bytes=4000, message=message, code=code)
        p.extra_env["BLOCKPROOF_RPC_URL"] = proxy.url
        p.start("consumer")
        p.start("signer")
        report = p.upload(rows_csv(tmp_path, 30, 911))
        p.wait_until_settled(report.new, timeout=180)
        assert proxy.oversize_answered > 0
    assert_invariants(p, report.new)
    assert len([t for t in transactions(p.engine) if t.kind == "issue_batch"]) > 1


def open_stall_alerts(p) -> list[Alert]:
    with Session(p.engine) as s:
        return list(s.execute(select(Alert).where(Alert.kind == "signer_stalled",
                                                  Alert.resolved_at == None)).scalars())  # noqa: E711


def test_a_signer_that_cannot_send_while_work_is_ready_raises_an_alert_that_clears_when_it_moves_again(
        make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env={"BLOCKPROOF_STALL_ALERT_MINUTES": "0.05"})
    with RpcProxy(p.chain.rpc_url) as proxy:
        proxy.refuse("eth_estimateGas", in_batches_only=True)  # intake's pre-flight passes, signing cannot
        p.extra_env["BLOCKPROOF_RPC_URL"] = proxy.url
        p.start("consumer")
        p.start("signer")
        report = p.upload(rows_csv(tmp_path, 10, 912))
        [alert] = wait_for(lambda: open_stall_alerts(p), 90, what="a signer_stalled alert")
        assert "10 jobs are ready" in alert.message and "Last error" in alert.message
        proxy.allow("eth_estimateGas")
        p.wait_until_settled(report.new, timeout=120)
        wait_for(lambda: not open_stall_alerts(p), 30, what="the stall alert to clear")
    assert_invariants(p, report.new)
