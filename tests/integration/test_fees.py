"""Fee maths (pure): first attempts leave room for the base fee; replacements rise >= 10% on both the tip
and the fee cap (geth's and Anvil's rule) and never pass the ceiling."""
from __future__ import annotations

import pytest

from workers.signer.fees import GWEI, bumped_fees, initial_fees, is_underpriced

CEILING = 500 * GWEI


def test_a_first_attempt_covers_twice_the_base_fee_plus_the_tip():
    assert initial_fees(base_fee=10 * GWEI, tip=GWEI, base_fee_multiplier=2.0, ceiling=CEILING) == (21 * GWEI, GWEI)


def test_a_first_attempt_never_passes_the_ceiling_and_the_tip_never_passes_the_cap():
    max_fee, tip = initial_fees(base_fee=400 * GWEI, tip=600 * GWEI, base_fee_multiplier=2.0, ceiling=CEILING)
    assert max_fee == CEILING and tip == CEILING


@pytest.mark.parametrize("bump", [0, 5, 10, 12, 50])
def test_a_replacement_raises_tip_and_cap_by_at_least_ten_percent(bump):
    max_fee, tip = bumped_fees(max_fee=3 * GWEI, tip=GWEI, base_fee=GWEI, bump_percent=bump,
                               base_fee_multiplier=2.0, ceiling=CEILING)
    assert tip * 100 >= GWEI * max(110, 100 + bump)
    assert max_fee * 100 >= 3 * GWEI * max(110, 100 + bump)


def test_a_replacement_under_a_risen_base_fee_jumps_to_cover_it():
    max_fee, tip = bumped_fees(max_fee=3 * GWEI, tip=GWEI, base_fee=100 * GWEI, bump_percent=12,
                               base_fee_multiplier=2.0, ceiling=CEILING)
    assert max_fee >= 200 * GWEI and not is_underpriced(max_fee, 100 * GWEI)


def test_rounding_never_lets_a_tiny_fee_rise_by_less_than_ten_percent():
    max_fee, tip = bumped_fees(max_fee=7, tip=1, base_fee=0, bump_percent=10, base_fee_multiplier=2.0,
                               ceiling=CEILING)
    assert tip >= 2 and max_fee * 10 >= 77


def test_at_the_ceiling_there_is_no_valid_replacement():
    assert bumped_fees(max_fee=CEILING, tip=GWEI, base_fee=GWEI, bump_percent=12, base_fee_multiplier=2.0,
                       ceiling=CEILING) is None
    assert bumped_fees(max_fee=460 * GWEI, tip=GWEI, base_fee=GWEI, bump_percent=12, base_fee_multiplier=2.0,
                       ceiling=CEILING) is None  # +10% would pass the ceiling


def test_the_last_bump_below_the_ceiling_is_capped_at_it():
    max_fee, _ = bumped_fees(max_fee=450 * GWEI, tip=GWEI, base_fee=GWEI, bump_percent=12,
                             base_fee_multiplier=2.0, ceiling=CEILING)
    assert 495 * GWEI <= max_fee <= CEILING


def test_a_cap_below_the_base_fee_is_underpriced():
    assert is_underpriced(GWEI, 2 * GWEI) and not is_underpriced(2 * GWEI, 2 * GWEI)


# ---- the price policy for real networks (pure) -------------------------------------------------------------
from workers.signer.fees import fee_budget_hold, tip_from_fee_history, within_tx_fee_cap  # noqa: E402


def test_the_tip_is_the_median_paid_tip_of_recent_blocks_ignoring_empty_ones():
    rewards = [[hex(2 * GWEI)], [hex(0)], [hex(3 * GWEI)], [], [hex(1 * GWEI)]]
    assert tip_from_fee_history(rewards, floor=GWEI // 100, ceiling=10 * GWEI) == 2 * GWEI
    assert tip_from_fee_history([[GWEI], [3 * GWEI]], floor=1, ceiling=10 * GWEI) == 2 * GWEI


def test_the_tip_stays_between_its_floor_and_its_ceiling():
    assert tip_from_fee_history([[hex(0)], [hex(0)]], floor=GWEI // 1000, ceiling=5 * GWEI) == GWEI // 1000
    assert tip_from_fee_history([], floor=7, ceiling=5 * GWEI) == 7
    assert tip_from_fee_history([[hex(900 * GWEI)]], floor=1, ceiling=5 * GWEI) == 5 * GWEI


def test_a_transaction_never_may_cost_more_than_the_per_transaction_cap():
    assert within_tx_fee_cap(gas_limit=1_000_000, max_fee=30 * GWEI, tip=GWEI, cap_wei=10**17) == (30 * GWEI, GWEI)
    max_fee, tip = within_tx_fee_cap(gas_limit=1_000_000, max_fee=300 * GWEI, tip=GWEI, cap_wei=10**17)
    assert 1_000_000 * max_fee <= 10**17 and tip == GWEI
    assert within_tx_fee_cap(gas_limit=1_000_000, max_fee=300 * GWEI, tip=200 * GWEI, cap_wei=10**17) is None
    assert within_tx_fee_cap(gas_limit=10**7, max_fee=10**12, tip=1, cap_wei=0) == (10**12, 1)  # no cap


def test_a_spend_budget_holds_issuance_with_a_plain_reason_before_it_is_passed():
    fits = dict(spent_today_wei=10**16, spent_batch_wei=10**15, next_cost_wei=10**15, daily_budget_wei=10**17,
                batch_budget_wei=10**16)
    assert fee_budget_hold(**fits) is None
    daily = fee_budget_hold(**fits | {"spent_today_wei": 99 * 10**15 + 1})
    assert daily.startswith("Daily fee budget reached: 0.099000 ETH spent today (UTC) of 0.100000 ETH")
    assert "resumes at midnight UTC" in daily
    batch = fee_budget_hold(**fits | {"spent_batch_wei": 95 * 10**14}, batch_id=7)
    assert batch.startswith("Fee budget of batch 7 reached") and "per-batch budget is raised" in batch
    assert fee_budget_hold(**fits | {"daily_budget_wei": 0, "batch_budget_wei": 0, "spent_today_wei": 10**30}) is None


from workers.signer.fees import fee_ceiling_for, fees_under_cap, l1_fee_estimate, rows_under_cap  # noqa: E402


def test_a_lowered_fee_cap_must_still_cover_the_base_fee_and_the_tip():
    # 1M gas under a 0.02 ETH cap: 20 gwei at most; the base fee of 10 gwei + 1 gwei tip still fits
    assert fees_under_cap(gas_limit=10**6, max_fee=31 * GWEI, tip=GWEI, base_fee=10 * GWEI, cap_wei=2 * 10**16) == \
        (20 * GWEI, GWEI)
    # a 0.01 ETH cap leaves 10 gwei: under base fee + tip, such a transaction would never be mined
    assert fees_under_cap(gas_limit=10**6, max_fee=31 * GWEI, tip=GWEI, base_fee=10 * GWEI, cap_wei=10**16) is None
    # what fits unlowered is never refused, and no cap is no cap
    assert fees_under_cap(gas_limit=10**6, max_fee=31 * GWEI, tip=GWEI, base_fee=40 * GWEI, cap_wei=10**17) == \
        (31 * GWEI, GWEI)
    assert fees_under_cap(gas_limit=10**9, max_fee=31 * GWEI, tip=GWEI, base_fee=10 * GWEI, cap_wei=0) == \
        (31 * GWEI, GWEI)


def test_a_batch_too_dear_for_the_cap_shrinks_to_the_rows_that_fit():
    assert rows_under_cap(rows=100, gas_limit=10**7, max_fee=10 * GWEI, cap_wei=5 * 10**16) == 50
    assert rows_under_cap(rows=100, gas_limit=10**7, max_fee=10 * GWEI, cap_wei=10**14) == 0
    assert rows_under_cap(rows=100, gas_limit=10**7, max_fee=10 * GWEI, cap_wei=10**18) == 100
    assert rows_under_cap(rows=100, gas_limit=10**7, max_fee=10 * GWEI, cap_wei=0) == 100


def test_replacements_never_pass_the_per_transaction_cap():
    assert fee_ceiling_for(gas_limit=10**6, ceiling=CEILING, cap_wei=10**16) == 10 * GWEI
    assert fee_ceiling_for(gas_limit=10**6, ceiling=CEILING, cap_wei=10**18) == CEILING
    assert fee_ceiling_for(gas_limit=10**6, ceiling=CEILING, cap_wei=0) == CEILING
    assert bumped_fees(max_fee=95 * GWEI // 10, tip=GWEI, base_fee=GWEI, bump_percent=12, base_fee_multiplier=2.0,
                       ceiling=fee_ceiling_for(gas_limit=10**6, ceiling=CEILING, cap_wei=10**16)) is None


def test_the_l1_fee_estimate_is_the_oracle_rate_times_the_size():
    assert l1_fee_estimate(wei_per_byte=1.5e10, size_bytes=1000) == 15 * 10**12
    assert l1_fee_estimate(wei_per_byte=0.0, size_bytes=1000) == 0


# ---- what was spent: receipts and the worst case of pending transactions (real SQLite) ---------------------
def test_spent_today_counts_receipts_since_midnight_utc_and_every_pending_transaction_at_its_worst(tmp_path):
    from datetime import datetime, timedelta, timezone

    from models.db import engine_for, migrate, session_scope
    from models.fees import spend, utc_midnight
    from models.tables import ChainTransaction, TxAttempt

    url = f"sqlite:///{tmp_path / 'fees.db'}"
    migrate(url)
    now = datetime(2026, 3, 4, 0, 30, tzinfo=timezone.utc)
    signer = "0x" + "ab" * 20
    with session_scope(engine_for(url)) as s:
        def tx(nonce, status, batch, **fields):
            row = ChainTransaction(signer=signer, nonce=nonce, kind="issue_batch", to_address=signer, data="0x",
                                   gas_limit=1_000_000, status=status, batch_id=batch, **fields)
            s.add(row)
            s.flush()
            return row
        tx(0, "mined", 1, gas_used=500_000, effective_gas_price=2 * GWEI, fee_paid_wei=10**15 + 7, l1_fee_wei=7,
           mined_at=now - timedelta(hours=1))  # yesterday (UTC)
        tx(1, "mined", 1, gas_used=500_000, effective_gas_price=GWEI, fee_paid_wei=5 * 10**14,
           mined_at=now - timedelta(minutes=10))
        tx(2, "reverted", 2, gas_used=100_000, effective_gas_price=GWEI, mined_at=now)  # recorded before 0007
        pending = tx(3, "pending", 2, l1_fee_wei=11)
        for fee in (3 * GWEI, 4 * GWEI):  # a replacement: the dearer attempt is the worst case
            s.add(TxAttempt(transaction_id=pending.id, tx_hash=f"0x{fee:064x}", raw="0x", max_fee_per_gas=fee,
                            max_priority_fee_per_gas=GWEI))
        tx(4, "superseded", 2)  # another transaction took the nonce: we paid nothing for it
    with session_scope(engine_for(url)) as s:
        today = spend(s, since=utc_midnight(now))
        assert today.paid_wei == 5 * 10**14 + 10**14 and today.pending_wei == 4 * 10**15 + 11
        assert spend(s, since=utc_midnight(now + timedelta(days=1))).paid_wei == 0  # the day turned
        ever = spend(s)
        assert (ever.paid_wei, ever.l1_paid_wei, ever.transactions) == (10**15 + 7 + 6 * 10**14, 7, 3)
        assert spend(s, batch_id=2).total_wei == 10**14 + 4 * 10**15 + 11
    assert utc_midnight(datetime(2026, 3, 4, 23, 59, tzinfo=timezone(timedelta(hours=-5)))) == \
        datetime(2026, 3, 5, tzinfo=timezone.utc)
