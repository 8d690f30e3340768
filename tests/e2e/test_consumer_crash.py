"""The consumer killed between inserting events and moving its checkpoint resumes without duplicates, and
ingesting the same range twice changes nothing."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from sqlalchemy import func, select, update
from sqlmodel import Session

from blockproof.devchain import DevChain, anvil_available, deploy_dev_environment
from chain.rpc import Rpc
from blockproof.settings import PROJECT_ROOT
from models.db import engine_for, migrate
from models.tables import ConsumerCheckpoint, CredentialEvent
from tests.consumer_faults import ChainWriter, chain_truth, consumer_settings, stored
from workers.consumer.follower import Follower
from workers.consumer.store import insert_ignoring_duplicates


@pytest.fixture
def world(tmp_path):
    if not anvil_available():
        pytest.skip("anvil not installed (npm ci)")
    with DevChain() as chain:
        deploy_block = chain.w3.eth.block_number
        env = deploy_dev_environment(chain)
        rpc = Rpc(chain.rpc_url)
        writer = ChainWriter(rpc, env.vault_address, env.institution_address, env.signer_key)
        for _ in range(4):  # four issuances, each in its own 10-block range
            writer.issue(25)
            chain.mine(9)
        yield chain, env, deploy_block, rpc


def run_consumer(chain, env, deploy_block, url, tmp_path, *, command: list[str] | None = None,
                 **extra) -> subprocess.Popen:
    vars_ = {"DATABASE_URL": url, "BLOCKPROOF_RPC_URL": chain.rpc_url, "BLOCKPROOF_VAULT_ADDRESS": env.vault_address,
             "BLOCKPROOF_VAULT_DEPLOY_BLOCK": str(deploy_block), "BLOCKPROOF_GETLOGS_CHUNK": "10",
             "BLOCKPROOF_GETLOGS_CHUNK_MAX": "10", "BLOCKPROOF_CONSUMER_POLL_SECONDS": "0.1",
             **{k: str(v) for k, v in extra.items()}}
    log = open(tmp_path / "consumer.log", "a")
    return subprocess.Popen(command or [sys.executable, "-m", "blockproof.cli", "consumer"], env=os.environ | vars_,
                            stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)


def test_a_consumer_sigkilled_between_inserting_events_and_moving_the_checkpoint_resumes_without_duplicates(
        world, sqlite_url, tmp_path):
    chain, env, deploy_block, rpc = world
    crashed = run_consumer(chain, env, deploy_block, sqlite_url, tmp_path,
                           command=[sys.executable, "-m", "tests.crashing", "consumer", "2"])
    assert crashed.wait(timeout=120) == -signal.SIGKILL
    assert "killing the consumer now" in (tmp_path / "consumer.log").read_text()
    engine = engine_for(sqlite_url)
    with Session(engine) as s:
        cp = s.get(ConsumerCheckpoint, "vault-events")
        blocks = list(s.execute(select(CredentialEvent.block_number)).scalars())
    assert len(blocks) == 25, "only the first range's events were committed"
    assert max(blocks) <= cp.block_number, "events beyond the checkpoint survived the crash"

    resumed = run_consumer(chain, env, deploy_block, sqlite_url, tmp_path)
    try:
        import time

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with Session(engine) as s:
                cp = s.get(ConsumerCheckpoint, "vault-events")
            if cp.block_number >= rpc.block_number():
                break
            time.sleep(0.2)
    finally:
        resumed.send_signal(signal.SIGTERM)
        resumed.wait(timeout=30)
    issued, revoked, _ = stored(engine)
    assert (issued, revoked) == chain_truth(rpc, env.vault_address, deploy_block)
    assert len(issued) == 100


def test_ingesting_the_same_range_twice_changes_nothing(world, database_url):
    chain, env, deploy_block, rpc = world
    migrate(database_url)
    engine = engine_for(database_url)
    settings = consumer_settings(database_url, chain.rpc_url, env.vault_address, deploy_block, getlogs_chunk=10)
    Follower(settings, engine).catch_up()
    first = stored(engine)
    assert len(first[0]) == 100

    # as if killed after the events were written but before the checkpoint moved: read it all again
    with Session(engine) as s:
        s.execute(update(ConsumerCheckpoint).values(block_number=deploy_block - 1, block_hash=""))
        s.commit()
    Follower(settings, engine).catch_up()
    assert stored(engine) == first

    with Session(engine) as s:
        rows = [{c: getattr(e, c) for c in ("credential_id", "tx_hash", "log_index", "block_number", "block_hash",
                                            "fingerprint", "student_wallet", "institution")}
                for e in s.execute(select(CredentialEvent)).scalars()]
        insert_ignoring_duplicates(s, CredentialEvent, rows, ["tx_hash", "log_index"])
        s.commit()
        assert s.execute(select(func.count()).select_from(CredentialEvent)).scalar_one() == 100
    assert stored(engine) == first
