"""One signer per key and chain: the lease is taken before the first nonce is read, a second signer is
refused at once with the holder's name, a dead holder's lease is taken over, a lost lease stops signing."""
from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from blockproof.settings import PROJECT_ROOT
from models.db import engine_for, migrate
from models.tables import SignerLease
from workers.signer.lease import Holder, Lease, LeaseHeld, LeaseLost, can_take

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
ADDRESS = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def row(holder: str, expires: datetime) -> SignerLease:
    return SignerLease(key="1:x", holder=holder, host="h", pid=1, acquired_at=T0, heartbeat_at=T0, expires_at=expires)


@pytest.mark.parametrize("lease,gone,takeable", [
    (None, False, True),
    ("mine", False, True),
    ("other-live", False, False),
    ("other-expired", False, True),
    ("other-live", True, True),  # PostgreSQL's advisory lock says its holder is gone
])
def test_who_may_take_a_lease(lease, gone, takeable):
    me = Holder("mine", "h", 1)
    existing = {None: None, "mine": row("mine", T0 + timedelta(seconds=9)),
                "other-live": row("other", T0 + timedelta(seconds=9)),
                "other-expired": row("other", T0 - timedelta(seconds=1))}[lease]
    assert can_take(existing, me, T0, holder_is_gone=gone) is takeable


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


def test_a_second_signer_is_refused_with_the_holder_named_and_takes_over_after_expiry(database_url):
    migrate(database_url)
    engine = engine_for(database_url)
    clock = Clock()
    first = Lease(engine, chain_id=31337, address=ADDRESS, ttl_seconds=15, clock=clock)
    first.acquire()
    second = Lease(engine, chain_id=31337, address=ADDRESS, ttl_seconds=15, clock=clock)
    if engine.dialect.name == "postgresql":
        with pytest.raises(LeaseHeld, match="another signer .* is running"):
            second.acquire()
        first.release_lock()  # as when its process dies: the connection closes and the lock frees at once
        second.acquire()
    else:
        with pytest.raises(LeaseHeld, match=r"held by pid \d+ on .* since 2026-12-01 12:00:00"):
            second.acquire()
        clock.now += timedelta(seconds=16)  # the first stopped renewing: its lease expires
        second.acquire()
    with pytest.raises(LeaseLost):
        first.renew()
    second.renew()
    second.release()


def test_two_signers_started_at_the_same_moment_never_both_hold_the_lease(database_url):
    migrate(database_url)
    rounds = 20
    start = time.time() + 4.0
    contenders = [subprocess.Popen([sys.executable, "-m", "tests.lease_contender", database_url, str(start),
                                    str(rounds)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True) for _ in range(2)]
    outputs = [c.communicate(timeout=120) for c in contenders]
    for c, (out, err) in zip(contenders, outputs):
        assert c.returncode == 0, err[-2000:]
    winners = {i: 0 for i in range(rounds)}
    for out, _ in outputs:
        for line in out.splitlines():
            i, outcome = line.split()
            winners[int(i)] += outcome == "won"
    assert set(winners.values()) == {1}, winners
