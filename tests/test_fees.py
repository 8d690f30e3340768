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
