"""Reconciliation: revocations update the credential and its revoke job (and a reorg undoes that), and what
does not add up (a mined job without its event, an event without a job) is surfaced in alerts and in
`blockproof status --json`, not ignored."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select
from sqlmodel import Session

from models.states import JobState
from models.transitions import transition_many

from blockproof.devchain import DevChain, anvil_available, deploy_dev_environment
from chain.rpc import Rpc
from blockproof.settings import PROJECT_ROOT
from models.db import engine_for, migrate
from models.tables import Alert, Batch, CredentialEvent, Job
from tests.consumer_faults import ChainWriter, chain_truth, consumer_settings, stored
from workers.consumer.follower import Follower


@pytest.fixture
def world(sqlite_url):
    if not anvil_available():
        pytest.skip("anvil not installed (npm ci)")
    with DevChain() as chain:
        deploy_block = chain.w3.eth.block_number
        env = deploy_dev_environment(chain)
        migrate(sqlite_url)
        rpc = Rpc(chain.rpc_url)
        writer = ChainWriter(rpc, env.vault_address, env.institution_address, env.signer_key)
        settings = consumer_settings(sqlite_url, chain.rpc_url, env.vault_address, deploy_block,
                                     missing_event_blocks=3)
        yield chain, env, deploy_block, rpc, writer, engine_for(sqlite_url), Follower(settings, engine_for(sqlite_url))


def add_jobs(engine, institution: str, jobs: list[dict]) -> list[int]:
    with Session(engine) as s:
        batch = Batch(filename="test.csv", institution=institution)
        s.add(batch)
        s.flush()
        rows = [Job(batch_id=batch.id, institution=institution, **j) for j in jobs]
        s.add_all(rows)
        s.commit()
        return [r.id for r in rows]


def job(engine, job_id: int) -> Job:
    with Session(engine) as s:
        return s.get(Job, job_id)


def credential(engine, credential_id: int) -> CredentialEvent:
    with Session(engine) as s:
        return s.execute(select(CredentialEvent).where(CredentialEvent.credential_id == credential_id)).scalar_one()


def test_a_revocation_updates_the_credential_and_its_job_and_a_reorg_that_removes_it_undoes_both(world):
    chain, env, deploy_block, rpc, writer, engine, follower = world
    fps = [os.urandom(32) for _ in range(2)]
    issue_ids = add_jobs(engine, env.institution_address, [
        {"kind": "issue", "idempotency_key": "0x" + fp.hex(), "fingerprint": "0x" + fp.hex(), "state": "submitted"}
        for fp in fps])
    writer.issue(2, fingerprints=fps)
    follower.catch_up()
    assert {job(engine, i).state for i in issue_ids} == {"mined"}
    chain.mine(1)
    follower.catch_up()
    assert {job(engine, i).state for i in issue_ids} == {"confirmed"}
    target = job(engine, issue_ids[0]).credential_id
    [revoke_id] = add_jobs(engine, env.institution_address, [
        {"kind": "revoke", "idempotency_key": f"revoke:{target}", "credential_id": target, "state": "submitted",
         "revocation_reason": "test"}])

    revoke_tx = writer.revoke(target, "test")
    follower.catch_up()
    assert credential(engine, target).revoked and credential(engine, target).revoked_at
    assert (job(engine, revoke_id).state, job(engine, revoke_id).tx_hash) == ("mined", revoke_tx)
    assert not credential(engine, job(engine, issue_ids[1]).credential_id).revoked
    chain.mine(1)
    follower.catch_up()
    assert job(engine, revoke_id).state == "confirmed"

    chain.rpc("anvil_reorg", 2, [])  # the revocation's block and the one above it
    follower.catch_up()
    assert not credential(engine, target).revoked and credential(engine, target).revoked_at is None
    assert job(engine, revoke_id).state == "submitted"
    assert {job(engine, i).state for i in issue_ids} == {"confirmed"}
    assert stored(engine)[:2] == chain_truth(rpc, env.vault_address, deploy_block)


def status_json(url: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "blockproof.cli", "status", "--json"], cwd=PROJECT_ROOT, timeout=120,
                         env=os.environ | {"DATABASE_URL": url, "BLOCKPROOF_MISSING_EVENT_BLOCKS": "3"}, capture_output=True, text=True)
    assert out.returncode in (0, 5), out.stderr  # 5: no node or worker answers here, which this test does not need
    return json.loads(out.stdout)


def test_a_mined_job_without_its_event_and_an_event_without_a_job_are_reported_and_alerted(world, sqlite_url):
    chain, env, deploy_block, rpc, writer, engine, follower = world
    head = rpc.block_number()
    [lost] = add_jobs(engine, env.institution_address, [
        {"kind": "issue", "idempotency_key": "0x" + "ab" * 32, "fingerprint": "0x" + "ab" * 32, "state": "mined",
         "tx_hash": "0x" + "cd" * 32, "block_number": head}])
    _, foreign = writer.issue(3)  # issued with our key, but no job in this database
    follower.catch_up()
    with Session(engine) as s:
        assert not s.execute(select(Alert).where(Alert.kind == "missing_event")).first(), "reported too early"
    chain.mine(3)
    follower._reconciled_at = 0.0  # reconcile now rather than in RECONCILE_EVERY_SECONDS
    follower.catch_up()

    with Session(engine) as s:
        open_kinds = {a.kind for a in s.execute(select(Alert).where(Alert.resolved_at == None)).scalars()}  # noqa: E711
    assert {"missing_event", "unmatched_events"} <= open_kinds
    report = status_json(sqlite_url)["reconciliation"]
    assert report["mined_without_event_count"] == 1 and report["mined_without_event"][0]["id"] == lost
    assert report["events_without_job_count"] == 3
    assert {e["fingerprint"] for e in report["events_without_job"]} == set(foreign)

    with Session(engine) as s:  # the lost job turns out to be one of those credentials: re-signed, pre-flight
        s.get(Job, lost).fingerprint = foreign[0]  # fails it as already issued; it is confirmed, the alert clears
        transition_many(s, [lost], JobState.FAILED, "pre-flight: FingerprintAlreadyUsed")
        s.commit()
    follower._reconciled_at = 0.0
    follower.catch_up()
    assert job(engine, lost).state == "confirmed"
    with Session(engine) as s:
        assert not s.execute(select(Alert).where(Alert.kind == "missing_event", Alert.resolved_at == None)).first()  # noqa: E711
    assert status_json(sqlite_url)["reconciliation"]["events_without_job_count"] == 2

    # the other two turn up as failed jobs (uploaded again after a lost database): matched late, the alert clears
    add_jobs(engine, env.institution_address, [{"kind": "issue", "idempotency_key": fp, "fingerprint": fp,
                                                "state": "failed"} for fp in foreign[1:]])
    follower._reconciled_at = 0.0
    follower.catch_up()
    with Session(engine) as s:
        assert not s.execute(select(Alert).where(Alert.kind == "unmatched_events", Alert.resolved_at == None)).first()  # noqa: E711
