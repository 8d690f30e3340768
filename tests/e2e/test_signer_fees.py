"""The fee policy for real networks, on a real Anvil with the real signer and consumer processes: the tip follows
eth_feeHistory, the per-transaction cap lowers or refuses, the daily and per-batch spend budgets hold and release,
fees paid are recorded from receipts (and shown by status, API and /metrics), and the OP-stack L1 data fee counts
when a GasPriceOracle sits at its predeploy address."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session

from blockproof import status
from blockproof.devchain import default_accounts
from blockproof.settings import PROJECT_ROOT, Settings
from contracts.artifacts import L1_FEE_ORACLE_STUB, load_artifact
from models.alerts import open_alerts
from models.tables import Batch, SignerState
from tests.faults import FAST_SIGNER, attempts, pause_mining, resume_mining, rows_csv, transactions, wait_for
from tests.people import Person
from web import people
from web.app import create_app
from workers.signer.loop import GAS_PRICE_ORACLE

GWEI = 10**9
ZERO_BASE_FEE = {"extra_args": ["--base-fee", "0"]}  # base fee 0 stays 0: what a transaction costs is its tip
FIXED_TIP = {"BLOCKPROOF_TIP_FLOOR_GWEI": "1", "BLOCKPROOF_TIP_CEILING_GWEI": "1", "BLOCKPROOF_PRIORITY_FEE_GWEI": "1"}


def cli(p, *args, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blockproof.cli", *args], env=os.environ | p.env_vars() | env,
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


def restart_signer(p, **env) -> None:
    p.kill("signer", 15)
    p.extra_env.update(env)
    p.start("signer")


def batch_summary(p, batch_id: int) -> dict:
    with Session(p.engine) as s:
        return status.batch_summary(s, s.get(Batch, batch_id))


def hold_reason(p) -> str:
    with Session(p.engine) as s:
        state = s.get(SignerState, p.env.signer_address)
        return state.hold_reason if state else ""


def receipts_fee(p, txs) -> int:
    total = 0
    for tx in txs:
        r = p.rpc.call("eth_getTransactionReceipt", tx.mined_hash)
        total += int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16)
    return total


def tipped_blocks(p, tip: int, blocks: int) -> None:
    """Blocks in which another account's transaction pays `tip`: the market eth_feeHistory reports."""
    other = default_accounts()[7]
    pause_mining(p)
    start = p.rpc.nonce(other.address)
    for i in range(blocks):
        tx = {"type": 2, "chainId": p.chain.chain_id, "nonce": start + i, "to": other.address, "value": 0,
              "gas": 21_000, "maxFeePerGas": 100 * GWEI, "maxPriorityFeePerGas": tip}
        raw = Account.sign_transaction(tx, other.private_key).raw_transaction.hex().removeprefix("0x")
        p.rpc.call("eth_sendRawTransaction", "0x" + raw)
        p.chain.rpc("evm_mine")


def first_attempt_of_newest(p):
    newest = max(transactions(p.engine), key=lambda t: t.id)
    return attempts(p.engine, newest.id)[0]


def test_the_tip_follows_fee_history_between_its_floor_and_its_ceiling(make_pipeline, sqlite_url, tmp_path):
    # the market is read with the chain's other facts (no throttle of its own here); each upload waits until the
    # signer has read the blocks made for it, and mining waits meanwhile, so the last ten blocks are those
    p = make_pipeline(sqlite_url, extra_env=FAST_SIGNER | {"BLOCKPROOF_TIP_FLOOR_GWEI": "0.5",
                                                          "BLOCKPROOF_TIP_CEILING_GWEI": "5",
                                                          "BLOCKPROOF_FEE_HISTORY_SECONDS": "0"})
    tipped_blocks(p, 3 * GWEI, 10)  # the signer's default would be 1 gwei (BLOCKPROOF_PRIORITY_FEE_GWEI)
    p.start("signer")
    p.start("consumer")
    first = p.upload(rows_csv(tmp_path, 5, 301))
    wait_for(lambda: attempts(p.engine), 60, what="a signed transaction")
    resume_mining(p)
    p.wait_until_settled(first.new)
    assert {int(attempts(p.engine, tx.id)[0].max_priority_fee_per_gas) for tx in transactions(p.engine)} == {3 * GWEI}

    tipped_blocks(p, 9 * GWEI, 10)  # dearer than the ceiling
    wait_for(lambda: "tip 5.0 gwei" in p.log("signer"), 60, what="the signer to read the dearer market")
    second = p.upload(rows_csv(tmp_path, 5, 302))
    wait_for(lambda: len(transactions(p.engine)) == 2, 60, what="a second transaction")
    resume_mining(p)
    p.wait_until_settled(first.new + second.new)
    assert int(first_attempt_of_newest(p).max_priority_fee_per_gas) == 5 * GWEI

    pause_mining(p)  # only empty blocks: they say nothing about the market, and the tip falls to its floor
    for _ in range(10):
        p.chain.rpc("evm_mine")
    wait_for(lambda: "tip 0.5 gwei" in p.log("signer"), 60, what="the signer to read the empty blocks")
    third = p.upload(rows_csv(tmp_path, 5, 303))
    wait_for(lambda: len(transactions(p.engine)) == 3, 60, what="a third transaction")
    resume_mining(p)
    p.wait_until_settled(first.new + second.new + third.new)
    assert int(first_attempt_of_newest(p).max_priority_fee_per_gas) == GWEI // 2


def test_the_per_transaction_cap_lowers_the_fee_cap_and_refuses_what_cannot_fit(make_pipeline, sqlite_url, tmp_path):
    cap = 15 * 10**15  # 0.015 ETH: five rows (≈750k gas) at 3 × 10 gwei + 1 gwei would pass it, at 20 gwei fit
    p = make_pipeline(sqlite_url, extra_env=FAST_SIGNER | FIXED_TIP | {"BLOCKPROOF_MAX_TX_FEE_WEI": str(cap)})
    pause_mining(p)
    p.chain.rpc("anvil_setNextBlockBaseFeePerGas", hex(10 * GWEI))
    p.chain.rpc("evm_mine")
    p.start("signer")
    p.start("consumer")
    report = p.upload(rows_csv(tmp_path, 5, 311))
    wait_for(lambda: attempts(p.engine), 60, what="a signed transaction")
    resume_mining(p)
    p.wait_until_settled(report.new)
    [tx] = transactions(p.engine)
    [first] = attempts(p.engine, tx.id)
    assert tx.gas_limit * int(first.max_fee_per_gas) <= cap
    assert int(first.max_fee_per_gas) == cap // tx.gas_limit < 31 * GWEI, "the fee cap was not lowered to fit"

    # a cap that not even base fee + tip fits: nothing is sent, all issuance holds with the reason, until fees fall
    restart_signer(p, BLOCKPROOF_MAX_TX_FEE_WEI=str(10**15))
    pause_mining(p)
    p.chain.rpc("anvil_setNextBlockBaseFeePerGas", hex(10 * GWEI))
    p.chain.rpc("evm_mine")
    more = p.upload(rows_csv(tmp_path, 5, 312))
    reason = wait_for(lambda: hold_reason(p), 60, what="the fee cap hold")
    assert reason.startswith("Per-transaction fee cap: a transaction of ") and "BLOCKPROOF_MAX_TX_FEE_WEI" in reason
    assert len(transactions(p.engine)) == 1
    with Session(p.engine) as s:
        assert any(a.kind == "on_hold" and a.message == reason for a in open_alerts(s))
    resume_mining(p)  # empty blocks: the base fee falls 12.5% a block until a transaction fits the cap
    p.wait_until_settled(report.new + more.new, timeout=240)
    assert hold_reason(p) == ""
    for later in transactions(p.engine):
        if later.id != tx.id:
            assert all(later.gas_limit * int(a.max_fee_per_gas) <= 10**15 for a in attempts(p.engine, later.id))


def test_the_daily_budget_holds_all_issuance_and_a_raised_budget_releases_it(make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env=FAST_SIGNER | FIXED_TIP, **ZERO_BASE_FEE)
    p.start("signer")
    p.start("consumer")
    first = p.upload(rows_csv(tmp_path, 5, 321))
    p.wait_until_settled(first.new)
    wait_for(lambda: all(t.status == "mined" for t in transactions(p.engine)), 60, what="the receipt recorded")
    with Session(p.engine) as s:
        spent = status.fee_panel(s, p.settings())["spent_today_wei"]
    assert spent == receipts_fee(p, transactions(p.engine)) > 0

    restart_signer(p, BLOCKPROOF_FEE_BUDGET_DAILY_WEI=str(spent + 1000))  # the next transaction cannot fit
    second = p.upload(rows_csv(tmp_path, 5, 322))
    reason = wait_for(lambda: hold_reason(p), 60, what="the daily budget hold")
    assert reason.startswith(f"Daily fee budget reached: {spent / 10**18:.6f} ETH spent today (UTC)")
    assert len(transactions(p.engine)) == 1
    shown = cli(p, "status")
    assert f"ON HOLD: {reason}" in shown.stdout and f"alert [on_hold]: {reason}" in shown.stderr
    assert batch_summary(p, second.batch_id)["on_hold"] == reason

    restart_signer(p, BLOCKPROOF_FEE_BUDGET_DAILY_WEI=str(10**18))
    p.wait_until_settled(first.new + second.new)
    assert wait_for(lambda: hold_reason(p) == "", 30, what="the hold lifted")
    with Session(p.engine) as s:
        assert not [a for a in open_alerts(s) if a.kind == "on_hold"]


def test_a_batch_budget_holds_only_that_batch(make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env=FAST_SIGNER | FIXED_TIP, **ZERO_BASE_FEE)
    p.start("signer")
    p.start("consumer")
    calibration = p.upload(rows_csv(tmp_path, 5, 331))
    p.wait_until_settled(calibration.new)
    [tx] = transactions(p.engine)
    worst = tx.gas_limit * GWEI  # five rows at a 1 gwei fee cap (base fee 0)

    # room for one transaction of five rows per batch, not two: the ten-row batch holds after its first
    restart_signer(p, BLOCKPROOF_FEE_BUDGET_BATCH_WEI=str(worst * 3 // 2))
    big = p.upload(rows_csv(tmp_path, 10, 332))
    small = p.upload(rows_csv(tmp_path, 5, 333))
    p.wait_until_settled(calibration.new + 5 + small.new)
    held = wait_for(lambda: batch_summary(p, big.batch_id)["on_hold"], 60, what="the big batch on hold")
    assert held.startswith(f"Fee budget of batch {big.batch_id} reached")
    assert batch_summary(p, small.batch_id)["confirmed"] == small.new
    assert batch_summary(p, big.batch_id)["counts"]["ready"] == 5
    assert hold_reason(p) == ""  # the signer itself is not on hold
    with Session(p.engine) as s:
        assert [(a.kind, a.subject) for a in open_alerts(s)] == [("batch_on_hold", str(big.batch_id))]
    shown = json.loads(cli(p, "status", "--json").stdout)
    [row] = [b for b in shown["batches"] if b["id"] == big.batch_id]
    assert row["on_hold"].startswith(f"Fee budget of batch {big.batch_id} reached")  # its figures move as it mines

    restart_signer(p, BLOCKPROOF_FEE_BUDGET_BATCH_WEI=str(10**18))
    p.wait_until_settled(calibration.new + big.new + small.new)
    with Session(p.engine) as s:
        assert not open_alerts(s)


def test_fees_paid_per_batch_and_per_credential_are_the_sum_over_receipts(make_pipeline, database_url, tmp_path):
    p = make_pipeline(database_url, extra_env=FAST_SIGNER)
    p.start("signer")
    p.start("consumer")
    one = p.upload(rows_csv(tmp_path, 12, 341))
    two = p.upload(rows_csv(tmp_path, 5, 342))
    p.wait_until_settled(one.new + two.new)
    wait_for(lambda: all(t.status == "mined" for t in transactions(p.engine)), 60, what="every receipt recorded")
    by_batch = {b: [t for t in transactions(p.engine) if t.batch_id == b] for b in (one.batch_id, two.batch_id)}
    assert len(by_batch[one.batch_id]) == 3 and len(by_batch[two.batch_id]) == 1
    for batch_id, rows in ((one.batch_id, one.new), (two.batch_id, two.new)):
        paid = receipts_fee(p, by_batch[batch_id])
        summary = batch_summary(p, batch_id)
        assert summary["fees_paid_wei"] == paid and summary["fee_per_credential_wei"] == paid // rows
        assert summary["l1_fees_paid_wei"] == 0 and summary["fees_pending_worst_case_wei"] == 0
        assert all(t.l1_fee_wei is None for t in by_batch[batch_id])  # no oracle on this chain: nothing added

    shown = json.loads(cli(p, "status", "--json").stdout)
    assert {b["id"]: b["fees_paid_wei"] for b in shown["batches"]} == {
        b: receipts_fee(p, txs) for b, txs in by_batch.items()}
    assert shown["fees"]["paid_wei"] == receipts_fee(p, transactions(p.engine))
    text = cli(p, "status", str(one.batch_id)).stdout
    assert f"fees {receipts_fee(p, by_batch[one.batch_id]) / 10**18:.6f} ETH" in text

    viewer = Person("fees-viewer", people.VIEWER)
    viewer.enrol(p.engine)
    app = create_app(Settings(**(p.settings().model_dump() | {"web_secret": "x" * 40})), p.engine, announce=None)
    with TestClient(app) as client:
        api = client.get(f"/api/batches/{one.batch_id}", auth=viewer).json()
        assert api["fees_paid_wei"] == receipts_fee(p, by_batch[one.batch_id])
        job = client.get(f"/api/batches/{two.batch_id}/jobs", auth=viewer).json()["jobs"][0]
        detail = client.get(f"/api/jobs/{job['id']}", auth=viewer).json()
        assert detail["fee_paid_wei"] == receipts_fee(p, by_batch[two.batch_id]) // 5
        page = client.get(f"/batches/{one.batch_id}", auth=viewer).text
        assert f"Fees paid: <strong>{receipts_fee(p, by_batch[one.batch_id]) / 10**18:,.6f} ETH</strong>" in page
        overview = client.get("/", auth=viewer).text
        assert f"<dt>Fees paid</dt><dd>{receipts_fee(p, transactions(p.engine)) / 10**18:,.6f} ETH" in overview
        metrics = client.get("/metrics", auth=viewer).text
    samples = {(s.name, tuple(s.labels.items())): s.value
               for f in text_string_to_metric_families(metrics) for s in f.samples}
    assert samples[("blockproof_fees_paid_wei_total", ())] == pytest.approx(receipts_fee(p, transactions(p.engine)))
    assert samples[("blockproof_batch_fees_paid_wei", (("batch", str(two.batch_id)),))] == \
        pytest.approx(receipts_fee(p, by_batch[two.batch_id]))


def test_the_l1_data_fee_of_an_op_stack_chain_is_recorded_and_counted_in_the_runway(make_pipeline, sqlite_url,
                                                                                     tmp_path):
    p = make_pipeline(sqlite_url, extra_env=FAST_SIGNER)
    stub = load_artifact(L1_FEE_ORACLE_STUB)
    p.chain.rpc("anvil_setCode", GAS_PRICE_ORACLE, stub.deployed_bytecode)
    p.start("signer")
    p.start("consumer")
    report = p.upload(rows_csv(tmp_path, 5, 351))
    p.wait_until_settled(report.new)
    wait_for(lambda: all(t.status == "mined" for t in transactions(p.engine)), 60, what="the receipt recorded")
    [tx] = transactions(p.engine)
    signed = attempts(p.engine, tx.id)[0]  # quoted when first signed
    l1 = (len(signed.raw) // 2 - 1) * 10 * GWEI  # the stub's price: 10 gwei per byte of the signed transaction
    assert int(tx.l1_fee_wei) == l1
    assert int(tx.fee_paid_wei) == receipts_fee(p, [tx]) + l1
    summary = batch_summary(p, report.batch_id)
    assert summary["l1_fees_paid_wei"] == l1 and summary["fees_paid_wei"] == int(tx.fee_paid_wei)


def test_the_runway_counts_the_l1_fee_only_where_the_oracle_exists(devchain, sqlite_url):
    from models.db import engine_for, migrate
    from workers.signer.loop import BATCH_BYTES_PER_CREDENTIAL, BATCH_GAS_PER_CREDENTIAL, Signer

    from blockproof.devchain import deploy_dev_environment

    env = deploy_dev_environment(devchain)
    migrate(sqlite_url)
    engine = engine_for(sqlite_url)
    settings = Settings(database_url=sqlite_url, rpc_url=devchain.rpc_url, vault_address=env.vault_address,
                        low_balance_issuances=10**15, fee_history_seconds=0)

    def runway() -> tuple[int, int, Signer]:
        signer = Signer(settings, engine, private_key=env.signer_key)
        signer.prepare()
        signer.refresh_chain_facts(force=True)
        with Session(engine) as s:
            [alert] = [a for a in open_alerts(s) if a.kind == "low_balance"]
        left = int(alert.message.split("about ", 1)[1].split(" ", 1)[0].replace(",", ""))
        return left, signer._initial_fees()[0], signer

    plain, max_fee, signer = runway()
    assert not signer.l1_oracle and plain == signer.balance // (BATCH_GAS_PER_CREDENTIAL * max_fee)
    devchain.rpc("anvil_setCode", GAS_PRICE_ORACLE, load_artifact(L1_FEE_ORACLE_STUB).deployed_bytecode)
    try:
        with_l1, max_fee, signer = runway()
        assert signer.l1_oracle and signer.l1_wei_per_byte == 10 * GWEI
        assert with_l1 == signer.balance // (BATCH_GAS_PER_CREDENTIAL * max_fee + BATCH_BYTES_PER_CREDENTIAL * 10 * GWEI)
        assert with_l1 < plain
    finally:
        devchain.rpc("anvil_setCode", GAS_PRICE_ORACLE, "0x")


def test_fee_history_is_asked_at_most_every_fee_history_seconds(devchain, sqlite_url):
    from blockproof.devchain import deploy_dev_environment
    from models.db import engine_for, migrate
    from workers.signer.loop import Signer

    env = deploy_dev_environment(devchain)
    migrate(sqlite_url)
    engine = engine_for(sqlite_url)
    other = default_accounts()[8]

    def signer(every: float) -> Signer:
        made = Signer(Settings(database_url=sqlite_url, rpc_url=devchain.rpc_url, vault_address=env.vault_address,
                               fee_history_seconds=every, tip_floor_gwei=0.1, tip_ceiling_gwei=50),
                      engine, private_key=env.signer_key)
        made.prepare()
        made.refresh_chain_facts(force=True)
        return made

    throttled = signer(3600)
    before = throttled.tip
    start = devchain.w3.eth.get_transaction_count(other.address)
    for i in range(10):  # ten blocks (Anvil mines each transaction) paying a 7 gwei tip
        tx = {"type": 2, "chainId": devchain.chain_id, "nonce": start + i, "to": other.address, "value": 0,
              "gas": 21_000, "maxFeePerGas": 100 * GWEI, "maxPriorityFeePerGas": 7 * GWEI}
        devchain.w3.eth.send_raw_transaction(Account.sign_transaction(tx, other.private_key).raw_transaction)
    throttled.refresh_chain_facts(force=True)
    assert throttled.tip == before != 7 * GWEI  # the head, balance and nonce are read again; the market is not
    assert signer(0).tip == 7 * GWEI
