"""Fee maths for EIP-1559 transactions: pure functions, no I/O."""
from __future__ import annotations

GWEI = 10**9
# geth (and Anvil) refuse a replacement unless BOTH the tip and the fee cap rise by at least 10%
MIN_BUMP_PERCENT = 10


def _ceil_percent(value: int, percent: int) -> int:
    return -(-value * (100 + percent) // 100)


def initial_fees(*, base_fee: int, tip: int, base_fee_multiplier: float, ceiling: int) -> tuple[int, int]:
    """(maxFeePerGas, maxPriorityFeePerGas) for a first attempt: room for the base fee to rise."""
    max_fee = min(int(base_fee * base_fee_multiplier) + tip, ceiling)
    return max_fee, min(tip, max_fee)


def bumped_fees(
    *, max_fee: int, tip: int, base_fee: int, bump_percent: int, base_fee_multiplier: float, ceiling: int
) -> tuple[int, int] | None:
    """Fees for a replacement, or None when the ceiling leaves no room for a valid replacement."""
    percent = max(bump_percent, MIN_BUMP_PERCENT)
    new_tip = max(_ceil_percent(tip, percent), 1)
    new_max = max(_ceil_percent(max_fee, percent), int(base_fee * base_fee_multiplier) + new_tip)
    new_max = min(new_max, ceiling)
    if new_max < _ceil_percent(max_fee, MIN_BUMP_PERCENT) or new_tip > new_max:
        return None
    return new_max, new_tip


def is_underpriced(max_fee: int, base_fee: int) -> bool:
    """A transaction whose fee cap is below the base fee cannot be mined until the base fee falls."""
    return max_fee < base_fee
