"""The signer warns before its balance runs out, and the warning clears once it is funded."""
from __future__ import annotations

import time

from sqlalchemy import select
from sqlmodel import Session

from models.tables import Alert


def open_alerts(p, kind):
    with Session(p.engine) as s:
        return s.execute(select(Alert).where(Alert.kind == kind, Alert.resolved_at == None)).scalars().all()  # noqa: E711


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def test_a_low_balance_raises_an_alert_naming_how_many_credentials_are_left_and_funding_clears_it(make_pipeline, sqlite_url):
    p = make_pipeline(sqlite_url, extra_env={"BLOCKPROOF_LOW_BALANCE_ISSUANCES": "1000"})
    p.start("signer")
    assert wait_for(lambda: p.log("signer") and "ready" in p.log("signer"))
    assert open_alerts(p, "low_balance") == []
    p.chain.rpc("anvil_setBalance", p.env.signer_address, hex(10**16))  # 0.01 ETH
    assert wait_for(lambda: open_alerts(p, "low_balance")), p.log("signer")[-2000:]
    alert = open_alerts(p, "low_balance")[0]
    assert p.env.signer_address in alert.message and "more credentials" in alert.message
    p.chain.rpc("anvil_setBalance", p.env.signer_address, hex(1000 * 10**18))
    assert wait_for(lambda: not open_alerts(p, "low_balance")), p.log("signer")[-2000:]


def test_a_stuck_transaction_raises_an_alert_that_clears_once_it_is_mined(make_pipeline, sqlite_url, tmp_path):
    from tests.faults import FAST_SIGNER, assert_invariants, attempts, pause_mining, resume_mining, rows_csv

    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER, BLOCKPROOF_MAX_FEE_GWEI="20"))
    pause_mining(p)
    p.start("consumer")
    p.start("signer")
    report = p.upload(rows_csv(tmp_path, 5, 941))
    assert wait_for(lambda: [a for a in attempts(p.engine) if a.status == "broadcast"]), p.log("signer")[-2000:]
    p.chain.rpc("anvil_setNextBlockBaseFeePerGas", hex(100 * 10**9))  # above the 20 gwei ceiling
    p.chain.rpc("evm_mine")
    assert wait_for(lambda: open_alerts(p, "stuck_transaction")), p.log("signer")[-2000:]
    assert "fee ceiling" in open_alerts(p, "stuck_transaction")[0].message
    p.chain.rpc("anvil_setNextBlockBaseFeePerGas", hex(10**9))
    resume_mining(p)
    p.wait_until_settled(report.new, timeout=120)
    assert wait_for(lambda: not open_alerts(p, "stuck_transaction")), p.log("signer")[-2000:]
    assert_invariants(p, report.new)
