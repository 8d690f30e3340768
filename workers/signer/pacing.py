"""Pacing: how much gas the signer may add to the chain now, so that it does not price itself out.

EIP-1559 raises the base fee by up to 12.5% after every block fuller than its target (half the gas limit)
and lowers it after every emptier one. A signer that fills every block multiplies its own price by 1.125 a
block; one that keeps its blocks near the target pays a flat price. Pure functions on plain data: the
signer's loop passes what it has seen of the chain and of its own transactions, and a clock reading.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

# the blocks looked back on: what our blocks left unused in them is made up (a signer slower than a block
# now and then catches up), an overshoot paid back; over them our blocks average the target
WINDOW_BLOCKS = 8
# at most this many blocks' share made up at once: a catch-up is a few full blocks, never a long burst
MAKE_UP_BLOCKS = 2


class PacingMode(str, enum.Enum):
    TARGET = "target"  # keep the blocks near the EIP-1559 target: the base fee stays flat (the default)
    MAX = "max"  # as fast as max_in_flight allows: every block full, the base fee +12.5% a block


class Pace(str, enum.Enum):
    """Why the allowance is what it is (shown in the signer's log and status)."""
    MAX = "max"  # BLOCKPROOF_PACING=max: no pacing
    TARGET = "target"  # our own transactions fill the blocks: kept near the target
    BUSY = "busy"  # other traffic fills the blocks to the target or beyond: we add nothing
    DEADLINE = "deadline"  # a batch's deadline needs more than the target: as fast as it needs
    LATE = "late"  # a batch's deadline has passed, or cannot be met even at full blocks: as fast as possible


@dataclass(frozen=True)
class Block:
    number: int
    gas_used: int
    gas_limit: int
    base_fee: int
    timestamp: int = 0


@dataclass(frozen=True)
class Deadline:
    """The earliest deadline among batches with jobs not yet sent, and the gas those jobs still need."""
    at: datetime
    gas_needed: int


@dataclass(frozen=True)
class Allowance:
    gas: int | None  # None: no limit from pacing (max_in_flight alone decides)
    pace: Pace
    reason: str
    share: int = 0  # our gas a block at this pace

    def worth_a_smaller_transaction(self, gas_per_transaction: int) -> bool:
        """Less than a full transaction is allowed: send a smaller one only for at least half of what a block
        gives us (else the few million gas a steady run saves up would go in many small, dearer transactions)."""
        return self.gas is not None and self.gas >= min(gas_per_transaction, self.share) // 2 > 0

    def transactions(self, gas_per_transaction: int) -> int | None:
        """The allowance in transactions of about `gas_per_transaction` each (None: no limit)."""
        if self.gas is None:
            return None
        return max(0, self.gas) // max(gas_per_transaction, 1)


def block_seconds(blocks: list[Block], *, default: float) -> float:
    """The chain's block time, from the first and last blocks seen (`default` until two are)."""
    if len(blocks) < 2 or blocks[-1].number <= blocks[0].number or blocks[-1].timestamp <= blocks[0].timestamp:
        return default
    return (blocks[-1].timestamp - blocks[0].timestamp) / (blocks[-1].number - blocks[0].number)


def others_per_block(blocks: list[Block], own_gas: dict[int, int]) -> int:
    """Mean gas per block used by other senders' transactions, over the blocks seen."""
    if not blocks:
        return 0
    return sum(max(0, b.gas_used - own_gas.get(b.number, 0)) for b in blocks) // len(blocks)


def allowance(*, blocks: list[Block], own_gas: dict[int, int], own_pending_gas: int, mode: PacingMode,
              now: datetime, block_seconds: float, deadline: Deadline | None = None) -> Allowance:
    """How much more gas of ours may be pending now.

    blocks: the recent blocks seen (the latest last; gaps allowed); own_gas: gas our mined transactions used,
    by block number (every recent block, not only those seen); own_pending_gas: the gas limits of our
    transactions sent and not yet mined (they go into the next block); block_seconds: the chain's block time.

    In target mode our share of the next block is the target less the other traffic, plus what our recent
    blocks left unused (at most two blocks' worth: missed blocks are made up, an overshoot paid back), less
    what is already pending. A batch deadline the target pace would miss raises the share to what it needs,
    up to a full block; a deadline already passed, or out of reach, lifts pacing altogether.
    """
    if mode is PacingMode.MAX:
        return Allowance(None, Pace.MAX, "BLOCKPROOF_PACING=max")
    if not blocks:  # nothing seen yet: wait for the first block
        return Allowance(0, Pace.TARGET, "no block seen yet")
    latest = blocks[-1]
    target = latest.gas_limit // 2
    others = others_per_block(blocks[-WINDOW_BLOCKS:], own_gas)
    share = max(0, target - others)
    pace = Pace.TARGET if share > 0 else Pace.BUSY
    reason = (f"near the EIP-1559 target: {share:,} gas a block for us ({others:,} used by others)" if share
              else f"other traffic fills the blocks ({others:,} gas a block, target {target:,}): adding nothing")
    if deadline is not None:
        seconds_left = (deadline.at - now).total_seconds()
        blocks_left = seconds_left / block_seconds if block_seconds > 0 else 0.0
        room = max(0, latest.gas_limit - others)
        needed = deadline.gas_needed / blocks_left if blocks_left >= 1 else None
        if needed is None or needed > room:
            return Allowance(None, Pace.LATE, "a batch's deadline has passed: as fast as possible" if seconds_left <= 0
                             else "a batch's deadline cannot be met even with full blocks: as fast as possible")
        if needed > share:
            share = math.ceil(needed)
            pace = Pace.DEADLINE
            reason = (f"a batch's deadline needs {share:,} gas a block (target {target:,}): the base fee rises "
                      f"by up to {rise_percent(share + others, latest.gas_limit):.1f}% a block")
    by_number = {b.number: b for b in blocks}
    top = max([latest.number, *own_gas])
    window = range(top - WINDOW_BLOCKS + 1, top + 1)
    # counted from our first block in the window: blocks before we started (or resumed) are no debt to make up
    first = next((n for n in window if own_gas.get(n, 0) > 0), top + 1)
    unused = 0
    for n in range(first, top + 1):
        seen = by_number.get(n)
        other = max(0, seen.gas_used - own_gas.get(n, 0)) if seen else others
        ours_there = share if pace is Pace.DEADLINE else max(0, target - other)
        unused += ours_there - own_gas.get(n, 0)
    credit = min(unused, MAKE_UP_BLOCKS * share)
    room = 2 * max(0, latest.gas_limit - others)  # more than two blocks' free space pending would only wait
    return Allowance(max(0, min(share + credit, room) - own_pending_gas), pace, reason, share)


def rise_percent(gas_used: int, gas_limit: int) -> float:
    """By how much EIP-1559 raises the base fee after a block that used `gas_used` (negative: lowers it)."""
    target = gas_limit // 2
    if target <= 0:
        return 0.0
    return 100.0 * (gas_used - target) / target / 8


def next_base_fee(base_fee: int, gas_used: int, gas_limit: int) -> int:
    """EIP-1559's base fee of the block after one with this base fee and gas use."""
    target = gas_limit // 2
    if target <= 0 or gas_used == target:
        return base_fee
    if gas_used > target:
        return base_fee + max(1, base_fee * (gas_used - target) // target // 8)
    return base_fee - base_fee * (target - gas_used) // target // 8


def parse_deadline(text: str, now: datetime) -> datetime:
    """A batch deadline as an operator writes it: a duration from now ("90m", "2h", "1d", "45s") or an ISO
    8601 time ("2026-12-01T18:00", UTC unless it names its offset). ValueError naming the reason."""
    text = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:].lower() in units and text[:-1].replace(".", "", 1).isdigit():
        return now + timedelta(seconds=float(text[:-1]) * units[text[-1].lower()])
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"deadline {text!r}: expected a duration (90m, 2h, 1d) or a time "
                         f"(2026-12-01T18:00, UTC unless an offset is given)") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    if at <= now:
        raise ValueError(f"deadline {text!r} is in the past (now {now:%Y-%m-%d %H:%M} UTC)")
    return at


def deadline_price(*, credentials: int, gas_per_credential: int, gas_limit: int, block_seconds: float,
                   seconds: float) -> str:
    """What a deadline costs, in words: the gas a block it needs against the target, and the base fee rise."""
    target = gas_limit // 2
    blocks = max(seconds / block_seconds, 1.0)
    needed = credentials * gas_per_credential / blocks
    at_target = credentials * gas_per_credential / max(target, 1) * block_seconds
    if needed <= target:
        return (f"{needed / 1e6:,.1f}M gas a block of {gas_limit / 1e6:,.0f}M needed, within the EIP-1559 target: "
                f"the batch goes at the paced rate (about {at_target / 60:,.0f} min) and the base fee stays flat")
    if needed > gas_limit:
        return (f"more than full blocks needed ({needed / 1e6:,.1f}M gas a block of {gas_limit / 1e6:,.0f}M): "
                f"the batch goes as fast as possible (BLOCKPROOF_PACING=max), the base fee rising 12.5% a block "
                f"while it runs; at the paced rate it would take about {at_target / 60:,.0f} min")
    rise = rise_percent(int(needed), gas_limit)
    return (f"{needed / 1e6:,.1f}M gas a block of {gas_limit / 1e6:,.0f}M needed, above the target: the base fee "
            f"rises about {rise:.1f}% a block while it runs (×{(1 + rise / 100) ** min(blocks, 10_000):,.1f} over "
            f"{blocks:,.0f} blocks); at the paced rate it would take about {at_target / 60:,.0f} min")
