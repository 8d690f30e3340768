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


# eth_estimateGas runs against the latest block and the transaction against a later one. Our vault's gas
# does not depend on the block, but a contract that only has the interface may (ours once needed about
# 20,000 gas more when mined in the next second), and the state can move in between
STATE_DRIFT_GAS = 20_000


def gas_limit(estimate: int, *, margin_percent: float) -> int:
    """A transaction's gas limit. Blocks admit transactions by gas *limit*, so a big margin on a big batch
    wastes block space: batch calls take a small margin, single calls a larger one."""
    return int(estimate * (1 + margin_percent / 100)) + STATE_DRIFT_GAS


def tx_gas_budget(block_gas_limit: int, max_tx_gas: int) -> int:
    """The gas limit per batch transaction that tiles a block exactly (30M → two of 15M)."""
    if block_gas_limit <= 0:
        return max_tx_gas
    per_block = -(-block_gas_limit // max_tx_gas)
    return min(max_tx_gas, block_gas_limit // per_block)


def batch_size_for(gas_budget: int, gas_per_credential: int, *, most: int) -> int:
    """How many credentials fit one transaction's gas budget at a given cost each (at least one)."""
    return max(1, min(most, gas_budget // max(gas_per_credential, 1)))
