"""The pipeline end to end against real RabbitMQ, Anvil, SQLite and PostgreSQL."""
from __future__ import annotations


from sqlalchemy import func, select
from sqlmodel import Session

from chain import vault
from blockproof.settings import PROJECT_ROOT
from models.states import JobState
from models.tables import ChainTransaction, Job

GRADUATES = PROJECT_ROOT / "examples" / "graduates.csv"


def test_a_thousand_rows_are_each_issued_exactly_once_and_jobs_match_the_chain(make_pipeline, database_url):
    p = make_pipeline(database_url)
    p.start("signer")
    p.start("consumer")
    report = p.upload(GRADUATES)
    assert report.new == 1000 and report.queued == 1000
    counts = p.wait_until_settled(1000, timeout=180)
    assert counts == {"confirmed": 1000}
    p.assert_exactly_once(1000)
    p.assert_no_nonce_gap()
    with Session(p.engine) as s:
        batch_txs = s.execute(select(func.count()).select_from(ChainTransaction)).scalar_one()
        selectors = set(s.execute(select(func.substr(ChainTransaction.data, 1, 10))).scalars())
    assert batch_txs < 1000 / 10, "rows were not packed into batch transactions"
    assert selectors == {"0x" + vault.selector(vault.ISSUE_BATCH_PACKED).hex()}, "the cheapest call is packed rows"


def test_uploading_the_same_file_twice_creates_no_new_jobs_and_no_new_transactions(make_pipeline, sqlite_url):
    p = make_pipeline(sqlite_url)
    p.start("signer")
    p.start("consumer")
    first = p.upload(GRADUATES)
    p.wait_until_settled(first.new, timeout=180)
    with Session(p.engine) as s:
        txs_before = s.execute(select(func.count()).select_from(ChainTransaction)).scalar_one()
    second = p.upload(GRADUATES)
    assert (second.new, second.duplicate, second.queued, second.batch_id) == (0, 1000, 0, None)
    with Session(p.engine) as s:
        assert s.execute(select(func.count()).select_from(Job)).scalar_one() == 1000
        assert s.execute(select(func.count()).select_from(ChainTransaction)).scalar_one() == txs_before
    p.assert_exactly_once(1000)


def test_an_interface_only_contract_gets_one_issue_credential_per_transaction(make_pipeline, sqlite_url, tmp_path):
    from tests.harness import write_csv

    csv = write_csv(tmp_path / "small.csv", 150, seed=7)
    p = make_pipeline(sqlite_url, artifact_name="BlockProofCredentialVaultBasic")
    p.start("signer")
    p.start("consumer")
    report = p.upload(csv)
    p.wait_until_settled(report.new, timeout=180)
    p.assert_exactly_once(report.new)
    p.assert_no_nonce_gap()
    with Session(p.engine) as s:
        kinds = set(s.execute(select(ChainTransaction.kind)).scalars())
        txs = s.execute(select(func.count()).select_from(ChainTransaction)).scalar_one()
    assert kinds == {"issue_single"} and txs == report.new


def test_a_consumer_started_late_catches_up_range_by_range_and_confirms_every_job(make_pipeline, sqlite_url, tmp_path):
    from tests.harness import write_csv

    p = make_pipeline(sqlite_url, extra_env={"BLOCKPROOF_GETLOGS_CHUNK": "1", "BLOCKPROOF_GETLOGS_CHUNK_MAX": "2",
                                             "BLOCKPROOF_BATCH_SIZE": "20", "BLOCKPROOF_MAX_IN_FLIGHT": "2"})
    p.start("signer")
    report = p.upload(write_csv(tmp_path / "late.csv", 200, seed=5))
    p.wait_until_settled(report.new, timeout=180, terminal={JobState.MINED, JobState.CONFIRMED})
    p.chain.mine(3)
    p.start("consumer")  # many one- and two-block ranges, each below the head when it is written
    p.wait_until_settled(report.new, timeout=180, terminal={JobState.CONFIRMED})
    p.assert_exactly_once(report.new)


def test_a_vault_with_the_batch_call_but_no_packed_rows_gets_abi_batches(make_pipeline, sqlite_url, tmp_path):
    from tests.harness import write_csv

    csv = write_csv(tmp_path / "small.csv", 150, seed=8)
    p = make_pipeline(sqlite_url, artifact_name="BlockProofCredentialVaultV1")
    p.start("signer")
    p.start("consumer")
    report = p.upload(csv)
    p.wait_until_settled(report.new, timeout=180)
    p.assert_exactly_once(report.new)
    with Session(p.engine) as s:
        calls = set(s.execute(select(ChainTransaction.kind, func.substr(ChainTransaction.data, 1, 10))).all())
    assert calls == {("issue_batch", "0x" + vault.selector(vault.ISSUE_BATCH).hex())}
