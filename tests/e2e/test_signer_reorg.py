"""The signer follows reorgs down to the finality depth: a transaction a deep reorg dropped is sent again,
and one re-mined in another block is recorded in that block."""
from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from models.tables import ChainTransaction
from tests.e2e.test_consumer_reorg import issue_and_confirm, jobs, states, wait_for


def transaction(p) -> ChainTransaction:
    with Session(p.engine) as s:
        return s.execute(select(ChainTransaction)).scalars().one()


def test_a_reorg_deeper_than_the_confirmations_but_within_finality_drops_a_transaction_that_is_sent_again(
        make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, block_time=None, extra_env={"BLOCKPROOF_FINALITY_DEPTH": "32"})
    p.start("signer")
    p.start("consumer")
    before, block = issue_and_confirm(p, tmp_path)
    p.chain.mine(8)  # the transaction is now 10 blocks deep: far below confirmations + 2
    depth = p.chain.w3.eth.block_number - block + 1
    p.chain.rpc("anvil_reorg", depth, [])
    assert p.rpc.call("eth_getTransactionReceipt", before[0].tx_hash) is None
    wait_for(lambda: states(p) == {"mined"} and transaction(p).block_number not in (None, block), "re-sent and mined", p)
    p.chain.mine(2)
    p.wait_until_settled(5, timeout=60)
    p.assert_exactly_once(5)
    assert transaction(p).block_number == jobs(p)[0].block_number


def test_a_transaction_re_mined_in_another_block_by_a_reorg_is_recorded_in_its_new_block(make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, block_time=None, extra_env={"BLOCKPROOF_FINALITY_DEPTH": "32"})
    p.start("signer")
    p.start("consumer")
    before, block = issue_and_confirm(p, tmp_path)
    raw = p.rpc.call("eth_getRawTransactionByHash", before[0].tx_hash)
    p.chain.rpc("anvil_reorg", 3, [[raw, 2]])
    wait_for(lambda: transaction(p).block_number == block + 2, "transaction row follows the reorg", p)
    p.chain.mine(2)
    p.wait_until_settled(5, timeout=60)
    p.assert_exactly_once(5)
