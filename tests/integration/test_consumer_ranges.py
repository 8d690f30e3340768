"""The consumer reads eth_getLogs in chunks: halves on provider range errors, grows back when calm, backfills a
long history and then follows the head."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from blockproof.devchain import DevChain, anvil_available, deploy_dev_environment
from blockproof.errors import RpcError
from chain.rpc import Rpc
from models.db import engine_for, migrate
from models.tables import ConsumerCheckpoint, CredentialEvent
from tests.consumer_faults import ChainWriter, RangeLimitProxy, chain_truth, consumer_settings, stored
from workers.consumer.follower import Follower
from workers.consumer.logs import ChunkSizer, is_range_error


@pytest.fixture
def chain():
    if not anvil_available():
        pytest.skip("anvil not installed (npm ci)")
    with DevChain() as c:
        yield c


@pytest.fixture
def world(chain, sqlite_url):
    deploy_block = chain.w3.eth.block_number
    env = deploy_dev_environment(chain)
    migrate(sqlite_url)
    rpc = Rpc(chain.rpc_url)
    writer = ChainWriter(rpc, env.vault_address, env.institution_address, env.signer_key)
    return chain, env, deploy_block, rpc, writer, sqlite_url


def issue_history(chain, writer, txs: int, per_tx: int, gap: int) -> None:
    for _ in range(txs):
        writer.issue(per_tx)
        chain.mine(gap)


def test_range_errors_halve_the_getlogs_range_then_it_grows_back_and_every_event_is_stored_once(world):
    chain, env, deploy_block, rpc, writer, url = world
    issue_history(chain, writer, txs=6, per_tx=20, gap=40)
    with RangeLimitProxy(chain.rpc_url, max_range=16) as proxy:
        settings = consumer_settings(url, proxy.url, env.vault_address, deploy_block,
                                     getlogs_chunk=64, getlogs_chunk_max=64)
        engine = engine_for(url)
        follower = Follower(settings, engine)
        follower.catch_up()
        assert proxy.refused, "the proxy never refused a range: the test did not exercise halving"
        assert all(b - a + 1 <= 16 for a, b in proxy.served), "a range the provider refuses was counted as served"
        truth = chain_truth(rpc, env.vault_address, deploy_block)
        assert stored(engine)[:2] == truth and len(truth[0]) == 120

        proxy.refusing = False  # the provider is calm again
        issue_history(chain, writer, txs=3, per_tx=10, gap=100)
        before = len(proxy.served)
        follower.catch_up()
        later = proxy.served[before:]
        assert max(b - a + 1 for a, b in later) == 64, f"the range never grew back to the maximum: {later}"
        with Session(engine) as s:
            assert s.get(ConsumerCheckpoint, "vault-events").getlogs_chunk == 64
        truth = chain_truth(rpc, env.vault_address, deploy_block)
        assert stored(engine)[:2] == truth and len(truth[0]) == 150


def test_a_long_history_is_backfilled_and_then_the_head_is_followed(world):
    chain, env, deploy_block, rpc, writer, url = world
    issue_history(chain, writer, txs=20, per_tx=100, gap=25)  # 2,000 events over ~500 blocks
    settings = consumer_settings(url, chain.rpc_url, env.vault_address, deploy_block, getlogs_chunk=100)
    engine = engine_for(url)
    follower = Follower(settings, engine)
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    try:
        def events() -> int:
            with Session(engine) as s:
                return s.execute(select(func.count()).select_from(CredentialEvent)).scalar_one()

        wait_for(lambda: events() == 2000, "backfill of 2,000 events")
        writer.issue(5)
        writer.issue(7)
        wait_for(lambda: events() == 2012, "new events at the head")
        head = chain.w3.eth.block_number
        with Session(engine) as s:
            wait_for(lambda: s.get(ConsumerCheckpoint, "vault-events").block_number == head, "checkpoint at head")
    finally:
        follower.stop()
        thread.join(timeout=10)
    assert stored(engine)[:2] == chain_truth(rpc, env.vault_address, deploy_block)


def wait_for(condition, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_chunk_halves_on_refusal_never_below_one_and_doubles_after_calm_rounds_up_to_the_maximum():
    sizer = ChunkSizer(1000, 2000)
    for expected in (500, 250, 125):
        sizer.shrink()
        assert sizer.size == expected
    for _ in range(2):
        sizer.calm()
    assert sizer.size == 125
    sizer.calm()
    assert sizer.size == 250
    for _ in range(30):
        sizer.calm()
    assert sizer.size == 2000
    tiny = ChunkSizer(1, 1)
    tiny.shrink()
    assert tiny.size == 1


@pytest.mark.parametrize("code,message", [
    (-32005, "query returned more than 10000 results"),
    (-32602, "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range"),
    (-32614, "eth_getLogs is limited to a 10,000 range"),
    (-32000, "block range is too large"),
    (-32600, "exceed maximum block range: 5000"),
])
def test_providers_range_and_result_limit_errors_are_recognised(code, message):
    assert is_range_error(RpcError(code, message, None, "eth_getLogs"))


def test_other_errors_are_not_mistaken_for_range_errors():
    assert not is_range_error(RpcError(-32000, "header not found", None, "eth_getLogs"))
    assert not is_range_error(RpcError(-32601, "method not found", None, "eth_getLogs"))
