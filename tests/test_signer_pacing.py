"""Pacing on Anvil: a run big enough to fill blocks. With the default (target) pacing the base fee stays
within a bound; with `max` pacing the same run raises it; a batch whose deadline has passed goes at max.
Every credential is issued exactly once. Ratios of base fees, never timings."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlmodel import Session

from models.states import utcnow
from models.tables import Batch
from tests.faults import assert_invariants, rows_csv, transactions

pytestmark = pytest.mark.integration

ROWS = 1_500
# a small chain fills quickly: 6M gas a block, batch transactions of at most 1.5M (about 25 credentials)
CHAIN = {"gas_limit": 6_000_000}
SIGNER = {"BLOCKPROOF_MAX_TX_GAS": "1500000"}


def base_fees(p) -> tuple[int, int]:
    """The base fee of the first block carrying one of our transactions, and the highest base fee from
    there to the block after our last one."""
    numbers = sorted({t.block_number for t in transactions(p.engine) if t.block_number is not None})
    assert numbers, "nothing mined"
    replies = p.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(numbers[0], numbers[-1] + 2)])
    fees = [int(b["baseFeePerGas"], 16) for b in replies]
    return fees[0], max(fees)


def run(p, tmp_path, seed: int, deadline=None) -> tuple[int, int]:
    p.start("consumer")
    p.start("signer")
    report = p.upload(rows_csv(tmp_path, ROWS, seed), deadline=deadline)
    assert report.new == ROWS
    with Session(p.engine) as s:
        assert s.get(Batch, report.batch_id).deadline is not None if deadline else True
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
    # the three chains are independent: run side by side (a deadline already passed: the batch is late)
    threads = [threading.Thread(target=one, args=("target", target, 71)),
               threading.Thread(target=one, args=("max", burst, 72)),
               threading.Thread(target=one, args=("late", late, 73, utcnow() - timedelta(seconds=1)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    rise = {name: peak / start for name, (start, peak) in results.items()}
    assert rise["target"] <= 1.5, rise  # 1.125 a full block: at most a few catch-up blocks
    assert rise["max"] >= 2.5, rise  # ten 1.5M transactions in flight: about ten full blocks in a row
    assert rise["late"] >= 2.5, rise
    assert rise["max"] >= 2 * rise["target"]
    assert "pacing: near the EIP-1559 target" in target.log("signer")
    assert "pacing: BLOCKPROOF_PACING=max" in burst.log("signer")
    assert "pacing: a batch's deadline has passed" in late.log("signer")
