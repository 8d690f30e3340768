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
