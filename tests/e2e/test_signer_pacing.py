"""Pacing on Anvil: a run big enough to fill blocks. With the default (target) pacing the base fee stays
within a bound; with `max` pacing the same run raises it; a batch whose deadline has passed goes at max.
Every credential is issued exactly once. Ratios of base fees, never timings."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from sqlalchemy import select
from sqlmodel import Session

from blockproof.settings import PROJECT_ROOT
from models.tables import Batch
from tests.faults import assert_invariants, rows_csv, transactions

pytestmark = pytest.mark.integration

ROWS = 1_200
# a small chain fills quickly: 6M gas a block every 2 s, batch transactions of at most 3M (about 40
# credentials): two fill a block, one is the target; a signer on a busy machine keeps up with that
CHAIN = {"gas_limit": 6_000_000, "block_time": 2}
SIGNER = {"BLOCKPROOF_MAX_TX_GAS": "3000000"}


def base_fees(p) -> tuple[int, int]:
    """The base fee of the first block carrying one of our transactions, and the highest base fee from
    there to the block after our last one."""
    numbers = sorted({t.block_number for t in transactions(p.engine) if t.block_number is not None})
    assert numbers, "nothing mined"
    replies = p.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(numbers[0], numbers[-1] + 2)])
    fees = [int(b["baseFeePerGas"], 16) for b in replies]
    return fees[0], max(fees)


def run(p, tmp_path, seed: int, deadline: str = "") -> tuple[int, int]:
    p.start("consumer")
    p.start("signer")
    csv = rows_csv(tmp_path, ROWS, seed)
    if deadline:  # as an operator does it: the price is said before anything is sent
        proc = subprocess.run([sys.executable, "-m", "blockproof.cli", "upload", str(csv), "--deadline", deadline],
                              cwd=PROJECT_ROOT, env=os.environ | p.env_vars(), capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "UTC: more than full blocks needed" in proc.stderr and "12.5% a block" in proc.stderr, proc.stderr
        with Session(p.engine) as s:
            assert all(b.deadline is not None for b in s.execute(select(Batch)).scalars())
    else:
        assert p.upload(csv).new == ROWS
    p.wait_until_settled(ROWS, timeout=600)
    assert_invariants(p, ROWS)
    return base_fees(p)


def test_target_pacing_keeps_the_base_fee_flat_where_max_raises_it_and_a_late_batch_goes_at_max(
        make_pipeline, tmp_path):
    target = make_pipeline(f"sqlite:///{tmp_path / 'target.db'}", extra_env=SIGNER, **CHAIN)
    burst = make_pipeline(f"sqlite:///{tmp_path / 'max.db'}", extra_env=SIGNER | {"BLOCKPROOF_PACING": "max"},
                          **CHAIN)
    late = make_pipeline(f"sqlite:///{tmp_path / 'late.db'}", extra_env=SIGNER, **CHAIN)
    results: dict[str, tuple[int, int]] = {}
    errors: list[BaseException] = []

    def one(name, p, seed, deadline=None):
        try:
            results[name] = run(p, tmp_path / name, seed, deadline)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    for name in ("target", "max", "late"):
        (tmp_path / name).mkdir()
    # the three chains are independent: run side by side (a deadline of seconds for 1,200 credentials cannot
    # be met on this chain even with full blocks: the batch goes at max)
    threads = [threading.Thread(target=one, args=("target", target, 71)),
               threading.Thread(target=one, args=("max", burst, 72)),
               threading.Thread(target=one, args=("late", late, 73, "5s"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    rise = {name: peak / start for name, (start, peak) in results.items()}
    print(f"base fee, peak over start: {rise}")
    assert rise["target"] <= 1.5, rise  # 1.125 a full block: at most a few catch-up blocks
    assert rise["max"] >= 2.5, rise  # ten 3M transactions in flight: full blocks in a row
    assert rise["late"] >= 2.5, rise
    assert rise["max"] >= 2 * rise["target"]
    assert "pacing: near the EIP-1559 target" in target.log("signer")
    assert "pacing: BLOCKPROOF_PACING=max" in burst.log("signer")
    assert "pacing: a batch's deadline" in late.log("signer") and "as fast as possible" in late.log("signer")


@pytest.mark.parametrize("value, reason", [
    ("yesterday", "expected a duration (90m, 2h, 1d) or a time (2026-12-01T18:00, UTC unless an offset is given)"),
    ("2020-01-01T00:00", "is in the past"),
])
def test_upload_refuses_a_deadline_it_cannot_read_naming_why(tmp_path, value, reason):
    from tests.harness import write_csv

    csv = write_csv(tmp_path / "list.csv", 3, seed=5)
    env = os.environ | {"DATABASE_URL": f"sqlite:///{tmp_path / 'never.db'}"}
    proc = subprocess.run([sys.executable, "-m", "blockproof.cli", "upload", str(csv), "--deadline", value],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: --deadline: deadline {value!r}") and reason in proc.stderr
    assert not (tmp_path / "never.db").exists()  # refused before anything was opened
