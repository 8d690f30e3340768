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


# ---- the price policy for real networks (issue 14): pure, wired by the signer's loop ---------------------
def tip_from_fee_history(rewards: list[list[str | int]], *, floor: int, ceiling: int) -> int:
    """The tip to offer: the median, over recent blocks, of the percentile tip paid in each (the `reward`
    field of eth_feeHistory asked for one percentile; hex strings or ints), clamped to [floor, ceiling].
    Empty blocks pay no tip and say nothing about the market: they are left out."""
    paid = sorted(int(r[0], 16) if isinstance(r[0], str) else int(r[0]) for r in rewards if r)
    paid = [p for p in paid if p > 0]
    if not paid:
        return floor
    middle = len(paid) // 2
    median = paid[middle] if len(paid) % 2 else (paid[middle - 1] + paid[middle]) // 2
    return max(floor, min(median, ceiling))


def within_tx_fee_cap(*, gas_limit: int, max_fee: int, tip: int, cap_wei: int) -> tuple[int, int] | None:
    """Fees lowered so that one transaction can cost at most `cap_wei` (gas limit × maxFeePerGas), or None
    when even the tip alone would pass the cap (the transaction must wait for cheaper gas). 0 = no cap."""
    if cap_wei <= 0 or gas_limit * max_fee <= cap_wei:
        return max_fee, tip
    capped = cap_wei // max(gas_limit, 1)
    if capped < tip or capped <= 0:
        return None
    return capped, tip


def fee_budget_hold(*, spent_today_wei: int, spent_batch_wei: int, next_cost_wei: int, daily_budget_wei: int,
                    batch_budget_wei: int, batch_id: int | None = None) -> str | None:
    """The plain reason issuance holds because the next transaction (its worst case: gas limit × max fee)
    would pass a spend budget; None when it fits. A budget of 0 is no budget."""
    def eth(wei: int) -> str:
        return f"{wei / 10**18:.6f} ETH"

    if daily_budget_wei > 0 and spent_today_wei + next_cost_wei > daily_budget_wei:
        return (f"Daily fee budget reached: {eth(spent_today_wei)} spent today (UTC) of {eth(daily_budget_wei)}, "
                f"and the next transaction may cost up to {eth(next_cost_wei)}. Jobs wait; issuance resumes at "
                f"midnight UTC or when the daily budget is raised.")
    if batch_budget_wei > 0 and spent_batch_wei + next_cost_wei > batch_budget_wei:
        which = f"batch {batch_id}" if batch_id is not None else "this batch"
        return (f"Fee budget of {which} reached: {eth(spent_batch_wei)} spent of {eth(batch_budget_wei)}, and "
                f"the next transaction may cost up to {eth(next_cost_wei)}. Its jobs wait until the per-batch "
                f"budget is raised.")
    return None


def fees_under_cap(*, gas_limit: int, max_fee: int, tip: int, base_fee: int, cap_wei: int) -> tuple[int, int] | None:
    """A first attempt's fees under the per-transaction cap: lowered to fit it, or None when the lowered fee cap
    would leave less than the base fee plus the tip (such a transaction is never mined)."""
    capped = within_tx_fee_cap(gas_limit=gas_limit, max_fee=max_fee, tip=tip, cap_wei=cap_wei)
    if capped is None or (capped[0] < max_fee and capped[0] < base_fee + tip):
        return None
    return capped


def rows_under_cap(*, rows: int, gas_limit: int, max_fee: int, cap_wei: int) -> int:
    """How many of a batch's rows a transaction at `max_fee` may carry under the cap (0: not even one)."""
    if cap_wei <= 0:
        return rows
    return min(rows, rows * (cap_wei // max(max_fee, 1)) // max(gas_limit, 1))


def fee_ceiling_for(*, gas_limit: int, ceiling: int, cap_wei: int) -> int:
    """The highest maxFeePerGas a transaction of this gas limit may carry: the ceiling, or less under the cap."""
    return min(ceiling, cap_wei // max(gas_limit, 1)) if cap_wei > 0 else ceiling


def l1_fee_estimate(*, wei_per_byte: float, size_bytes: int) -> int:
    """The L1 data fee of a transaction of this size, at the rate the oracle quoted for a sample."""
    return int(wei_per_byte * size_bytes)
