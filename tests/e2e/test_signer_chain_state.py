"""The signer's key used by someone else, the signer out of funds, and calls
the contract refuses (paused, controller removed, institution inactive, fingerprint used)."""
from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from contracts.deploy import transact, vault_contract
from models.alerts import open_alerts
from models.tables import Alert, Batch, JobTransition, SignerState
from tests.faults import (FAST_SIGNER, assert_invariants, attempts, jobs, pause_mining, resume_mining, rows_csv,
                          transactions, wait_for)
from workers.signer import packer
from workers.signer.sender import new_account

GWEI = 10**9


def signer_state(p) -> SignerState:
    with Session(p.engine) as s:
        return s.get(SignerState, p.env.signer_address)


def holding(p, words: str) -> str:
    """The hold's reason, held by the signer for everything (paused) or for the institution only."""
    state = signer_state(p)
    if state is not None and words in state.hold_reason:
        return state.hold_reason
    with Session(p.engine) as s:
        return next((a.message for a in s.execute(select(Alert).where(
            Alert.kind == "institution_on_hold", Alert.resolved_at == None)).scalars()  # noqa: E711
            if words in a.message), "")


def failed_ever(p) -> list[JobTransition]:
    with Session(p.engine) as s:
        return list(s.execute(select(JobTransition).where(JobTransition.to_state == "failed")).scalars())


def send_from_signer_key(p, *, nonce: int, to: str, data: str = "0x", gas: int = 21_000) -> str:
    """Another process using the signer's key: a transaction with 3× the fees of anything pending."""
    account = new_account(p.env.signer_key)
    signed = account.sign_transaction({"type": 2, "chainId": p.rpc.chain_id(), "to": to, "value": 0, "data": data,
                                       "nonce": nonce, "gas": gas, "maxFeePerGas": 300 * GWEI,
                                       "maxPriorityFeePerGas": 30 * GWEI})
    return p.rpc.call("eth_sendRawTransaction", "0x" + signed.raw_transaction.hex().removeprefix("0x"))


def test_a_nonce_taken_by_another_process_requeues_the_jobs_and_never_issues_twice(make_pipeline, sqlite_url,
                                                                                     tmp_path):
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER))
    p.start("consumer")
    p.start("signer")
    wait_for(lambda: signer_state(p), 60, what="the signer to start")
    pause_mining(p)

    # 1. someone else's transfer takes our nonce: the jobs go back and are signed on a new nonce
    first = p.upload(rows_csv(tmp_path, 5, 301))
    ours = wait_for(lambda: [a for a in attempts(p.engine) if a.status == "broadcast"], 60, what="a broadcast")[0]
    [taken] = [t for t in transactions(p.engine) if t.id == ours.transaction_id]
    foreign = send_from_signer_key(p, nonce=taken.nonce, to=p.env.admin_address)
    p.chain.rpc("evm_mine")
    assert p.rpc.call("eth_getTransactionReceipt", foreign)["status"] == "0x1"
    resume_mining(p)
    p.wait_until_settled(first.new, timeout=120)
    assert p.rpc.call("eth_getTransactionReceipt", ours.tx_hash) is None
    by_id = {t.id: t for t in transactions(p.engine)}
    assert by_id[taken.id].status == "superseded"
    with Session(p.engine) as s:
        reasons = set(s.execute(select(JobTransition.reason).where(JobTransition.to_state == "ready")).scalars())
    assert any("re-queued on a new nonce" in r for r in reasons)

    # 2. someone else sends OUR call on our nonce: the jobs are confirmed from that transaction's events,
    #    and the signer does not issue them a second time
    pause_mining(p)
    second = p.upload(rows_csv(tmp_path, 5, 302))
    ours2 = wait_for(lambda: [a for a in attempts(p.engine) if a.status == "broadcast"
                              and a.transaction_id not in by_id], 60, what="a second broadcast")[0]
    [taken2] = [t for t in transactions(p.engine) if t.id == ours2.transaction_id]
    foreign2 = send_from_signer_key(p, nonce=taken2.nonce, to=taken2.to_address, data=taken2.data,
                                    gas=taken2.gas_limit)
    p.chain.rpc("evm_mine")
    assert p.rpc.call("eth_getTransactionReceipt", foreign2)["status"] == "0x1"
    resume_mining(p)
    p.wait_until_settled(first.new + second.new, timeout=120)
    assert_invariants(p, first.new + second.new)
    from_foreign = [e for e in p.issued_events() if e["tx_hash"] == foreign2]
    assert len(from_foreign) == second.new
    assert {j.tx_hash for j in jobs(p.engine) if j.batch_id == second.batch_id} == {foreign2}


def test_a_signer_out_of_funds_holds_the_jobs_alerts_and_resumes_once_funded(make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER, BLOCKPROOF_MAX_IN_FLIGHT="1"))
    p.start("consumer")
    p.start("signer")
    report = p.upload(rows_csv(tmp_path, 20, 303))
    wait_for(lambda: any(t.status == "mined" for t in transactions(p.engine)), 60, what="a first mined batch")
    funds = p.rpc.balance(p.env.signer_address)
    p.chain.rpc("anvil_setBalance", p.env.signer_address, "0x0")
    reason = wait_for(lambda: holding(p, "Insufficient funds"), 60, what="the insufficient-funds hold")
    assert p.env.signer_address in reason and "resumes once" in reason
    with Session(p.engine) as s:
        assert any(a.kind == "on_hold" and "Insufficient funds" in a.message for a in open_alerts(s))
    counts = p.counts()
    assert counts.get("confirmed", 0) < report.new and not failed_ever(p), counts
    assert "issuance on hold: Insufficient funds" in p.log("signer")
    p.chain.rpc("anvil_setBalance", p.env.signer_address, hex(funds))
    p.wait_until_settled(report.new, timeout=120)
    assert_invariants(p, report.new)
    assert not failed_ever(p)
    wait_for(lambda: signer_state(p).hold_reason == "", 30, what="the hold to clear")
    with Session(p.engine) as s:
        alert = s.execute(select(Alert).where(Alert.kind == "on_hold")).scalars().first()
        assert alert.resolved_at is not None


def test_contract_conditions_hold_issuance_without_spending_a_nonce_and_bad_rows_fail_in_plain_words(
        make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER))
    w3, env = p.chain.w3, p.env
    vault = vault_contract(w3, env.vault_address)
    admin = env.admin_key
    conditions = [
        ("contract paused", vault.functions.setPaused(True), vault.functions.setPaused(False),
         "The contract is paused"),
        ("controller removed", vault.functions.setInstitutionController(env.institution_address, env.signer_address,
                                                                         False),
         vault.functions.setInstitutionController(env.institution_address, env.signer_address, True),
         "is not allowed to act for institution"),
        ("institution inactive", vault.functions.upsertInstitution(env.institution_address, "Example University",
                                                                   False),
         vault.functions.upsertInstitution(env.institution_address, "Example University", True), "is deactivated"),
    ]
    p.start("consumer")
    p.start("signer")
    issued = 0
    for seed, (what, set_it, clear_it, words) in enumerate(conditions, start=311):
        transact(w3, set_it, admin)
        nonce_before = p.rpc.nonce(env.signer_address)
        report = p.upload(rows_csv(tmp_path, 5, seed), queue_while_blocked=True)  # the operator chose to queue
        assert wait_for(lambda: holding(p, words), 60, what=f"a hold for {what}")
        assert p.rpc.nonce(env.signer_address) == nonce_before, f"{what}: a nonce was spent"
        assert not [t for t in transactions(p.engine) if t.status == "pending"], f"{what}: a transaction was sent"
        assert not failed_ever(p), f"{what}: a job failed instead of waiting"
        transact(w3, clear_it, admin)
        issued += report.new
        p.wait_until_settled(issued, timeout=120)
        wait_for(lambda: not holding(p, ""), 30, what=f"the hold for {what} to clear")

    # a row whose fingerprint is already on chain: pre-flight catches it, the rest of its batch goes on
    p.kill("signer")
    p.kill("consumer")
    report = p.upload(rows_csv(tmp_path, 5, 320))
    with Session(p.engine) as s:
        row = [j for j in jobs(p.engine) if j.batch_id == report.batch_id][2]
        base_uri = s.get(Batch, row.batch_id).base_uri
    call = packer.build_call([row], base_uri, batch_extension=False)
    institution_key = p.chain.accounts[1].private_key
    elsewhere = w3.eth.send_raw_transaction(w3.eth.account.sign_transaction({
        "to": env.vault_address, "data": call.data, "gas": 500_000, "nonce": w3.eth.get_transaction_count(
            env.institution_address), "chainId": w3.eth.chain_id, "maxFeePerGas": 50 * GWEI,
        "maxPriorityFeePerGas": GWEI}, institution_key).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(elsewhere)["status"] == 1
    nonce_before = p.rpc.nonce(env.signer_address)
    p.start("signer")
    waiting = wait_for(lambda: [j for j in jobs(p.engine) if j.id == row.id and j.error_code == "FingerprintAlreadyUsed"],
                       60, what="pre-flight to find the row on chain")
    assert waiting[0].state == "ready" and "waiting for the chain's event" in waiting[0].error_message
    p.start("consumer")
    issued += report.new
    p.wait_until_settled(issued, timeout=120)
    assert_invariants(p, issued)
    assert not failed_ever(p), "a row already on chain is issued, not failed"
    with Session(p.engine) as s:  # the history says why it was not sent; the chain's event then confirms it
        reasons = [t.reason for t in s.execute(select(JobTransition).where(JobTransition.job_id == row.id)).scalars()]
    assert any("FingerprintAlreadyUsed" in r for r in reasons), reasons
    assert reasons[-1].startswith("event") and "confirmed" == [j for j in jobs(p.engine) if j.id == row.id][0].state
    assert p.rpc.nonce(env.signer_address) == nonce_before + 1, "the other rows went on in one transaction"
    events = p.issued_events()
    assert [e["tx_hash"] for e in events if e["fingerprint"] == row.fingerprint] == ["0x" + elsewhere.hex()
                                                                                   .removeprefix("0x")]
