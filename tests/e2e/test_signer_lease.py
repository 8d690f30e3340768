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


def signer_command(p, *args: str, **kwargs):
    import os

    return subprocess.Popen([sys.executable, "-m", "blockproof.cli", "signer", *args], cwd=PROJECT_ROOT,
                            env=os.environ | p.env_vars(), **kwargs)


def test_a_second_signer_exits_at_once_and_a_standby_takes_over_from_a_killed_holder_issuing_every_row_once(
        make_pipeline, database_url, tmp_path):
    import signal as signals

    from sqlmodel import Session

    from tests.faults import wait_for
    from tests.harness import write_csv

    p = make_pipeline(database_url)
    p.start("consumer")
    holder = p.start("signer")

    def lease_row():
        with Session(p.engine) as s:
            return s.get(SignerLease, f"{p.rpc.chain_id()}:{p.env.signer_address.lower()}")

    wait_for(lease_row, 60, what="the first signer's lease")
    second = signer_command(p, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 1 and f"pid {holder.pid}" in err and "--standby" in err, err[-2000:]

    standby_log = open(tmp_path / "standby.log", "w")
    standby = signer_command(p, "--standby", stdout=standby_log, stderr=subprocess.STDOUT)
    try:
        report = p.upload(write_csv(tmp_path / "rows.csv", 1000, seed=951))
        wait_for(lambda: 0 < p.counts().get("confirmed", 0) < 1000, 120, interval=0.2,
                 what="the first credentials, while most of the batch remains")
        holder.send_signal(signals.SIGKILL)
        holder.wait(timeout=20)
        p.procs.pop("signer")
        wait_for(lambda: (row := lease_row()) is not None and row.pid == standby.pid, 60,
                 what="the standby to take the lease")
        p.wait_until_settled(report.new, timeout=240)
        p.assert_exactly_once(report.new)
        p.assert_no_nonce_gap()
    finally:
        standby.terminate()
        standby.wait(timeout=20)


def test_a_draining_signer_takes_no_new_jobs_finishes_what_is_in_flight_and_exits(make_pipeline, sqlite_url, tmp_path):
    from tests.faults import FAST_SIGNER, attempts, pause_mining, resume_mining, rows_csv, transactions, wait_for

    p = make_pipeline(sqlite_url, extra_env=dict(FAST_SIGNER))
    p.start("consumer")
    p.start("signer")
    pause_mining(p)
    first = p.upload(rows_csv(tmp_path, 10, 961))
    wait_for(lambda: len([a for a in attempts(p.engine) if a.status == "broadcast"]) == 2, 60,
             what="the first batch in flight")
    p.kill("signer", signal_number())
    drain = signer_command(p, "--drain", stdout=open(tmp_path / "drain.log", "w"), stderr=subprocess.STDOUT)
    later = p.upload(rows_csv(tmp_path, 5, 962))  # queued while draining: not taken
    time.sleep(3)
    assert drain.poll() is None, "nothing is mined yet: the draining signer keeps its transactions moving"
    resume_mining(p)
    assert drain.wait(timeout=120) == 0, (tmp_path / "drain.log").read_text()[-2000:]
    assert "drained" in (tmp_path / "drain.log").read_text()
    wait_for(lambda: p.counts().get("confirmed", 0) == first.new, 120, what="the drained batch to confirm")
    assert len(transactions(p.engine)) == 2, "the draining signer signed nothing new"
    assert p.counts().get("queued", 0) + p.counts().get("ready", 0) == later.new
    p.start("signer")  # the next signer (after a rotation: the new key's) takes the rest
    p.wait_until_settled(first.new + later.new, timeout=120)
    p.assert_exactly_once(first.new + later.new)


def signal_number() -> int:
    import signal

    return signal.SIGTERM
