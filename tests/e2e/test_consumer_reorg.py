"""Reorgs under a running pipeline (signer + consumer as separate processes, real Anvil with automine):
a reorg removes a mined issuance, a reorg moves it to another block, and a reorg deeper than the finality depth halts the consumer; `--resync-from` recovers)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

from sqlalchemy import select
from sqlmodel import Session

from blockproof.settings import PROJECT_ROOT
from models.tables import Alert, ConsumerCheckpoint, CredentialEvent, IndexedBlock, Job, JobTransition
from tests.consumer_faults import chain_truth, stored
from tests.harness import write_csv


def wait_for(condition, what: str, p=None, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    logs = f"\nsigner:\n{p.log('signer')[-2000:]}\nconsumer:\n{p.log('consumer')[-2000:]}" if p else ""
    raise AssertionError(f"timed out waiting for {what}{logs}")


def jobs(p) -> list[Job]:
    with Session(p.engine) as s:
        return list(s.execute(select(Job).order_by(Job.id)).scalars())


def states(p) -> set[str]:
    return {j.state for j in jobs(p)}


def history(p, job_id: int) -> list[tuple[str, str]]:
    with Session(p.engine) as s:
        rows = s.execute(select(JobTransition).where(JobTransition.job_id == job_id)
                         .order_by(JobTransition.id)).scalars()
        return [(t.from_state, t.to_state) for t in rows]


def checkpoint(p) -> ConsumerCheckpoint:
    with Session(p.engine) as s:
        return s.get(ConsumerCheckpoint, "vault-events")


def issue_and_confirm(p, tmp_path, rows: int = 5) -> tuple[list[Job], int]:
    report = p.upload(write_csv(tmp_path / "small.csv", rows, seed=11))
    assert report.new == rows
    wait_for(lambda: states(p) == {"mined"}, "jobs mined", p)
    p.chain.mine(2)
    p.wait_until_settled(rows, timeout=90)
    done = jobs(p)
    assert {j.state for j in done} == {"confirmed"} and len({j.tx_hash for j in done}) == 1
    return done, done[0].block_number


def test_a_reorg_that_drops_a_mined_issuance_sends_jobs_back_and_they_are_confirmed_again_only_after_n_confirmations(
        make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, block_time=None, extra_env={"BLOCKPROOF_FINALITY_DEPTH": "16"})
    p.start("signer")
    p.start("consumer")
    before, block = issue_and_confirm(p, tmp_path)
    old_hash = before[0].tx_hash

    p.chain.rpc("anvil_reorg", 3, [])  # blocks block..block+2 replaced by empty ones: the issuance is gone
    assert p.rpc.call("eth_getTransactionReceipt", old_hash) is None

    # every job is rolled back, the signer re-broadcasts, the event comes back in a new block
    wait_for(lambda: all(("confirmed", "submitted") in history(p, j.id) for j in before), "jobs rolled back", p)
    wait_for(lambda: states(p) == {"mined"} and checkpoint(p).block_number >= p.chain.w3.eth.block_number,
             "re-broadcast issuance ingested", p)
    head = p.chain.w3.eth.block_number
    with Session(p.engine) as s:
        new_blocks = set(s.execute(select(CredentialEvent.block_number)).scalars())
    assert new_blocks == {head} and head > block + 2
    time.sleep(2)  # the consumer polls every 0.2 s: one confirmation is not enough
    assert states(p) == {"mined"}, "confirmed with fewer than BLOCKPROOF_CONFIRMATIONS=2 confirmations"

    p.chain.mine(1)
    p.wait_until_settled(5, timeout=60)
    events = p.assert_exactly_once(5)
    assert {e["tx_hash"] for e in events} == {j.tx_hash for j in jobs(p)}
    for j in jobs(p):
        path = history(p, j.id)
        assert path[-2:] == [("submitted", "mined"), ("mined", "confirmed")], path
        assert j.block_number == head
    assert stored(p.engine)[:2] == chain_truth(p.rpc, p.env.vault_address, p.deploy_block)
    p.assert_no_nonce_gap()


def test_a_reorg_that_moves_the_issuance_to_another_block_is_followed_without_duplicates_and_statuses_heal(
        make_pipeline, database_url, tmp_path):
    p = make_pipeline(database_url, block_time=None, extra_env={"BLOCKPROOF_FINALITY_DEPTH": "16"})
    p.start("signer")
    p.start("consumer")
    before, block = issue_and_confirm(p, tmp_path)
    tx_hash = before[0].tx_hash
    raw = p.rpc.call("eth_getRawTransactionByHash", tx_hash)
    old_block_hash = p.rpc.get_block(block)["hash"]

    p.chain.rpc("anvil_reorg", 3, [[raw, 1]])  # same transaction, one block later, all three blocks new
    receipt = p.rpc.call("eth_getTransactionReceipt", tx_hash)
    assert int(receipt["blockNumber"], 16) == block + 1

    def healed():
        with Session(p.engine) as s:
            hashes = set(s.execute(select(CredentialEvent.block_hash)).scalars())
        return hashes == {receipt["blockHash"]} and states(p) == {"confirmed"}

    wait_for(healed, "events moved to the new block and jobs confirmed again", p)
    issued, _, _ = stored(p.engine)
    assert len(issued) == 5
    assert stored(p.engine)[:2] == chain_truth(p.rpc, p.env.vault_address, p.deploy_block)
    with Session(p.engine) as s:
        assert s.get(IndexedBlock, block).hash != old_block_hash
    for j in jobs(p):
        assert j.block_number == block + 1 and j.tx_hash == tx_hash
        path = history(p, j.id)
        assert ("confirmed", "submitted") in path and path[-1] == ("mined", "confirmed"), path
    p.assert_exactly_once(5)


def cli(p, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blockproof.cli", *args], env=os.environ | p.env_vars(),
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


def test_a_reorg_deeper_than_the_finality_depth_halts_the_consumer_with_an_alert_and_resync_recovers(
        make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, block_time=None, extra_env={
        "BLOCKPROOF_FINALITY_DEPTH": "3", "BLOCKPROOF_MISSING_EVENT_BLOCKS": "2"})
    p.start("signer")
    p.start("consumer")
    before, block = issue_and_confirm(p, tmp_path)
    p.chain.mine(3)
    wait_for(lambda: checkpoint(p).block_number == p.chain.w3.eth.block_number, "consumer at the head", p)
    p.kill("signer")  # only the consumer acts from here on
    events_before = stored(p.engine)
    jobs_before = [(j.id, j.state, j.credential_id, j.block_number) for j in jobs(p)]

    p.chain.rpc("anvil_reorg", 6, [])  # the issuance block and the five above it: 6 > finality depth 3
    assert p.rpc.call("eth_getTransactionReceipt", before[0].tx_hash) is None
    halted = wait_for(lambda: checkpoint(p).halted_reason, "the consumer to halt", p)
    frozen_at = checkpoint(p).block_number
    p.chain.mine(3)
    time.sleep(1.5)
    assert checkpoint(p).block_number == frozen_at, "a halted consumer advanced"
    assert stored(p.engine) == events_before, "events were rewritten after a deep reorg"
    assert [(j.id, j.state, j.credential_id, j.block_number) for j in jobs(p)] == jobs_before
    with Session(p.engine) as s:
        alerts = s.execute(select(Alert).where(Alert.kind == "deep_reorg", Alert.resolved_at == None)).scalars().all()  # noqa: E711
    assert len(alerts) == 1 and "--resync-from" in alerts[0].message
    status = json.loads(cli(p, "status", "--json").stdout)
    assert status["indexer"]["halted_reason"] and any(a["kind"] == "deep_reorg" for a in status["alerts"])

    # the operator checks the chain, then resyncs from the block the alert names
    ancestor = int(re.search(r"--resync-from (\d+)", halted).group(1))
    assert ancestor == block - 1
    p.kill("consumer")
    done = cli(p, "consumer", "--resync-from", str(ancestor))
    assert done.returncode == 0, done.stderr
    p.start("consumer")
    wait_for(lambda: checkpoint(p).block_number == p.chain.w3.eth.block_number and not checkpoint(p).halted_reason,
             "consumer following again", p)
    assert stored(p.engine)[:2] == chain_truth(p.rpc, p.env.vault_address, p.deploy_block)
    assert stored(p.engine)[0] == set(), "the reorg removed the issuance; its events must be gone"
    assert states(p) == {"submitted"}
    with Session(p.engine) as s:
        assert not s.execute(select(Alert).where(Alert.kind == "deep_reorg", Alert.resolved_at == None)).first()  # noqa: E711
    # the signer saw these mined: until they are mined again they are surfaced, not ignored
    status = json.loads(cli(p, "status", "--json").stdout)
    assert status["reconciliation"]["mined_without_event_count"] == 5
