"""Property: whatever sequence of issuances, revocations, mined blocks and reorgs (anvil_reorg of random depth
below the finality depth, dropping or moving transactions; evm_snapshot/evm_revert forks) the chain goes
through, once the consumer catches up its tables equal a fresh full eth_getLogs scan of the canonical chain."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlmodel import Session

from blockproof.devchain import DevChain, anvil_available, deploy_dev_environment
from blockproof.errors import RpcError
from chain.rpc import Rpc
from models.db import engine_for, migrate
from models.tables import ConsumerCheckpoint
from tests.consumer_faults import ChainWriter, chain_truth, consumer_settings, stored
from workers.consumer.follower import Follower

FINALITY = 64


@pytest.fixture(scope="module")
def world():
    if not anvil_available():
        pytest.skip("anvil not installed (npm ci)")
    with DevChain() as chain, tempfile.TemporaryDirectory() as tmp:
        deploy_block = chain.w3.eth.block_number
        env = deploy_dev_environment(chain)
        rpc = Rpc(chain.rpc_url)
        writer = ChainWriter(rpc, env.vault_address, env.institution_address, env.signer_key)
        yield {"chain": chain, "env": env, "deploy_block": deploy_block, "rpc": rpc, "writer": writer,
               "base": chain.w3.eth.block_number, "tmp": Path(tmp), "runs": 0}


operations = st.lists(st.one_of(
    st.tuples(st.just("issue"), st.integers(1, 3)),
    st.tuples(st.just("revoke"), st.integers(0, 50)),
    st.tuples(st.just("mine"), st.integers(1, 3)),
    st.tuples(st.just("consume"), st.just(0)),
    st.tuples(st.just("reorg"), st.integers(1, 6), st.booleans()),
    st.tuples(st.just("fork"), st.integers(0, 3)),
), min_size=1, max_size=14)


def reorg(w, depth: int, keep: bool) -> None:
    """anvil_reorg: replace the last `depth` blocks; keep=True moves their transactions into the last new block."""
    chain, rpc = w["chain"], w["rpc"]
    head = rpc.block_number()
    depth = min(depth, head - w["base"])
    if depth < 1:
        return
    pairs = []
    if keep:
        for number in range(head - depth + 1, head + 1):
            for tx_hash in rpc.get_block(number)["transactions"]:
                pairs.append([rpc.call("eth_getRawTransactionByHash", tx_hash), depth - 1])
    chain.rpc("anvil_reorg", depth, pairs)


def apply(w, follower: Follower, op: tuple) -> None:
    chain, writer = w["chain"], w["writer"]
    kind = op[0]
    if kind == "issue":
        writer.issue(op[1])
    elif kind == "revoke":
        issued, revoked = chain_truth(w["rpc"], w["env"].vault_address, w["deploy_block"])
        live = sorted({e[4] for e in issued} - {r[4] for r in revoked})
        if live:
            try:
                writer.revoke(live[op[1] % len(live)])
            except RpcError:  # already revoked on chain (the pre-check above reads logs, not state): skip
                pass
    elif kind == "mine":
        chain.mine(op[1])
    elif kind == "consume":
        follower.catch_up()
    elif kind == "reorg":
        reorg(w, op[1], op[2])
    elif kind == "fork":  # a branch the consumer ingests, then evm_revert to before it and a different branch
        snapshot = chain.snapshot()
        writer.issue(2)
        chain.mine(1 + op[1])
        follower.catch_up()
        chain.revert(snapshot)
        chain.mine(1)
        writer.issue(1)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_after_any_sequence_of_issuances_and_reorgs_the_tables_equal_a_fresh_scan_of_the_canonical_chain(world, ops):
    w = world
    snapshot = w["chain"].snapshot()
    w["runs"] += 1
    url = "sqlite:///" + str(w["tmp"] / f"run{w['runs']}.db")
    migrate(url)
    engine = engine_for(url)
    follower = Follower(consumer_settings(url, w["chain"].rpc_url, w["env"].vault_address, w["deploy_block"],
                                          finality_depth=FINALITY, getlogs_chunk=4), engine)
    try:
        for op in ops:
            apply(w, follower, op)
        follower.catch_up()
        issued, revoked, flags = stored(engine)
        truth_issued, truth_revoked = chain_truth(w["rpc"], w["env"].vault_address, w["deploy_block"])
        assert issued == truth_issued
        assert revoked == truth_revoked
        assert flags == {e[4]: e[4] in {r[4] for r in truth_revoked} for e in truth_issued}
        with Session(engine) as s:
            assert not s.get(ConsumerCheckpoint, "vault-events").halted_reason, "a shallow reorg halted the consumer"
    finally:
        engine.dispose()
        w["chain"].revert(snapshot)
