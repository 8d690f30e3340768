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
