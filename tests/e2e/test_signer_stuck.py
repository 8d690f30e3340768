"""Dropped transactions, fees too low, 'replacement transaction underpriced'
and nonce gaps, each produced on a real Anvil node."""
from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from blockproof.settings import Settings
from models.tables import JobTransition, SignerState
from tests.faults import (FAST_SIGNER, assert_invariants, attempts, in_pool, pause_mining, resume_mining, rows_csv,
                          transactions, wait_for)
from workers.signer import fees
from workers.signer.sender import new_account

GWEI = 10**9


def first_broadcast(p):
    return wait_for(lambda: [a for a in attempts(p.engine) if a.status == "broadcast"], 60, what="a broadcast")[0]


def signer_state(p) -> SignerState | None:
    with Session(p.engine) as s:
        return s.get(SignerState, p.env.signer_address)


def never_failed(p) -> bool:
    with Session(p.engine) as s:
        return not s.execute(select(JobTransition).where(JobTransition.to_state == "failed")).first()


def test_a_transaction_dropped_from_the_mempool_is_broadcast_again_on_the_same_nonce(make_pipeline, sqlite_url,
                                                                                       tmp_path):
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER))
    pause_mining(p)
    p.start("consumer")
    p.start("signer")
    report = p.upload(rows_csv(tmp_path, 5, 201))
    sent = first_broadcast(p)
    assert p.chain.rpc("anvil_dropTransaction", sent.tx_hash)
    assert p.rpc.call("eth_getTransactionByHash", sent.tx_hash) is None, "the node still has it"
    wait_for(lambda: any(in_pool(p, a.tx_hash) for a in attempts(p.engine, sent.transaction_id)), 60,
             what="the signer to broadcast the dropped nonce again")
    resume_mining(p)
    p.wait_until_settled(report.new, timeout=120)
    assert_invariants(p, report.new)
    [tx] = transactions(p.engine)
    assert tx.id == sent.transaction_id and tx.status == "mined"
    again = attempts(p.engine, tx.id)
    assert again[0].tx_hash == sent.tx_hash and (len(again) > 1 or again[0].broadcast_count >= 2)


def test_a_transaction_stuck_under_a_risen_base_fee_is_replaced_with_ten_percent_higher_fees(make_pipeline,
                                                                                              sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER))
    pause_mining(p)
    p.start("consumer")
    p.start("signer")
    report = p.upload(rows_csv(tmp_path, 5, 202))
    sent = first_broadcast(p)
    p.chain.rpc("anvil_setNextBlockBaseFeePerGas", hex(100 * GWEI))
    p.chain.rpc("evm_mine")
    block = p.rpc.get_block("latest")
    assert int(block["baseFeePerGas"], 16) > int(sent.max_fee_per_gas) and not block["transactions"], \
        "the fee cap is below the base fee: the transaction cannot be mined"
    resume_mining(p)
    p.wait_until_settled(report.new, timeout=120)
    assert_invariants(p, report.new)
    [tx] = transactions(p.engine)
    tried = attempts(p.engine, tx.id)
    assert len(tried) >= 2, "no replacement was sent"
    assert tried[0].tx_hash == sent.tx_hash and tried[0].status == "replaced"
    for before, after in zip(tried, tried[1:]):
        assert int(after.max_priority_fee_per_gas) * 100 >= int(before.max_priority_fee_per_gas) * 110
        assert int(after.max_fee_per_gas) * 100 >= int(before.max_fee_per_gas) * 110
    assert int(tried[-1].max_fee_per_gas) <= Settings().max_fee_gwei * GWEI
    assert tx.mined_hash in {a.tx_hash for a in tried}


def test_replacement_underpriced_is_not_a_job_failure(make_pipeline, sqlite_url, tmp_path):
    # the tip pinned to BLOCKPROOF_PRIORITY_FEE_GWEI (1) whatever eth_feeHistory says: the fees below are the signer's
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER, BLOCKPROOF_TIP_FLOOR_GWEI="1",
                                                 BLOCKPROOF_TIP_CEILING_GWEI="1"))
    p.start("consumer")
    p.start("signer")
    wait_for(lambda: signer_state(p), 60, what="the signer to start")
    pause_mining(p)
    # another transaction from the signer's key holds the next nonce in the pool, with exactly the fees
    # the signer is about to offer: the node refuses the signer's transaction as an underpriced replacement
    settings = p.settings()
    base_fee = int(p.rpc.get_block("latest")["baseFeePerGas"], 16)
    max_fee, tip = fees.initial_fees(base_fee=base_fee, tip=int(settings.priority_fee_gwei * GWEI),
                                     base_fee_multiplier=settings.base_fee_multiplier,
                                     ceiling=int(settings.max_fee_gwei * GWEI))
    account = new_account(p.env.signer_key)
    other = account.sign_transaction({"type": 2, "chainId": p.rpc.chain_id(), "to": account.address, "value": 1,
                                      "nonce": p.rpc.nonce(account.address), "gas": 21_000, "maxFeePerGas": max_fee,
                                      "maxPriorityFeePerGas": tip})
    other_hash = p.rpc.call("eth_sendRawTransaction", "0x" + other.raw_transaction.hex().removeprefix("0x"))
    report = p.upload(rows_csv(tmp_path, 5, 203))
    refused = wait_for(lambda: [a for a in attempts(p.engine) if a.last_error.startswith("replacement_underpriced")],
                       60, what="the node to refuse the signer's transaction as underpriced")[0]
    assert "replacement transaction underpriced" in refused.last_error
    assert p.counts().get("submitted") == report.new and never_failed(p)
    wait_for(lambda: len(attempts(p.engine, refused.transaction_id)) > 1, 60, what="a replacement")
    resume_mining(p)
    p.wait_until_settled(report.new, timeout=120)
    assert_invariants(p, report.new)
    assert never_failed(p)
    assert p.rpc.call("eth_getTransactionReceipt", other_hash) is None, "the other transaction was replaced"


def test_a_skipped_nonce_is_filled_and_everything_behind_it_mines(make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER))
    p.start("consumer")
    p.start("signer")
    first = p.upload(rows_csv(tmp_path, 5, 204))
    p.wait_until_settled(first.new, timeout=120)
    p.kill("signer")
    with Session(p.engine) as s:  # the record of one nonce is lost: the signer's next nonce skips it
        state = s.get(SignerState, p.env.signer_address)
        skipped = state.next_nonce
        state.next_nonce += 1
        s.add(state)
        s.commit()
    assert p.rpc.nonce(p.env.signer_address) == skipped
    second = p.upload(rows_csv(tmp_path, 5, 205))
    p.start("signer")
    p.wait_until_settled(first.new + second.new, timeout=120)
    assert_invariants(p, first.new + second.new)
    by_nonce = {t.nonce: t for t in transactions(p.engine)}
    assert by_nonce[skipped].kind == "noop" and by_nonce[skipped].status == "mined"
    assert by_nonce[skipped].to_address == p.env.signer_address and by_nonce[skipped].job_count == 0
    assert by_nonce[skipped + 1].kind == "issue_batch" and by_nonce[skipped + 1].status == "mined"
    assert "nonce gap" in p.log("signer")
