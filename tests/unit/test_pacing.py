"""The pacing decision (workers/signer/pacing.py) on plain data with an injected clock, and a simulated
EIP-1559 chain: target pacing keeps the base fee flat where max pacing multiplies it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from workers.signer.pacing import (Allowance, Block, Deadline, Pace, PacingMode, allowance, next_base_fee,
                                   rise_percent)

LIMIT = 30_000_000
TARGET = LIMIT // 2
TX = 15_000_000  # one batch transaction's gas limit on a 30M chain
USED = 14_500_000  # what it uses
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
GWEI = 10**9


def blocks(*used: int, first: int = 100, base_fee: int = GWEI) -> list[Block]:
    return [Block(first + i, u, LIMIT, base_fee) for i, u in enumerate(used)]


def decide(chain: list[Block], own: dict[int, int], pending: int = 0, mode: PacingMode = PacingMode.TARGET,
           deadline: Deadline | None = None, now: datetime = NOW) -> Allowance:
    return allowance(blocks=chain, own_gas=own, own_pending_gas=pending, mode=mode, now=now, block_seconds=1.0,
                     deadline=deadline)


def test_max_mode_sets_no_limit():
    a = decide(blocks(LIMIT, LIMIT), {100: LIMIT, 101: LIMIT}, pending=10 * TX, mode=PacingMode.MAX)
    assert a.gas is None and a.pace is Pace.MAX and a.transactions(TX) is None


def test_nothing_seen_yet_sends_nothing():
    assert decide([], {}).gas == 0


def test_starting_on_an_empty_chain_sends_one_blocks_target_not_a_burst():
    a = decide(blocks(0, 0, 0, 0), {})
    assert a.pace is Pace.TARGET
    assert a.gas == TARGET and a.transactions(TX) == 1


def test_a_transaction_pending_for_the_next_block_uses_the_share():
    assert decide(blocks(0, 0, 0, 0), {}, pending=TX).transactions(TX) == 0


def test_steady_state_one_transaction_a_block():
    chain = blocks(USED, USED, USED, USED)
    own = {b.number: USED for b in chain}
    assert decide(chain, own).transactions(TX) == 1
    assert decide(chain, own, pending=TX).transactions(TX) == 0


def test_a_missed_block_is_made_up_once():
    chain = blocks(USED, USED, USED, 0)
    own = {100: USED, 101: USED, 102: USED}
    assert decide(chain, own, pending=TX).transactions(TX) == 1  # the late one plus one more: a full block
    assert decide(chain, own).transactions(TX) == 2


def test_an_overshoot_is_paid_back():
    chain = blocks(USED, 2 * USED, 2 * USED, USED)
    own = {b.number: b.gas_used for b in chain}
    assert decide(chain, own).transactions(TX) == 0


def test_receipts_ahead_of_the_last_block_seen_count():
    """The signer reads receipts every step but the latest block once a second: blocks of ours newer than
    the last block it has seen still count (here two full ones: nothing more for now)."""
    chain = blocks(USED, USED)
    own = {100: USED, 101: USED, 102: 2 * USED, 103: 2 * USED}
    assert decide(chain, own).transactions(TX) == 0
    assert decide(chain, {100: USED, 101: USED}).transactions(TX) == 1


def test_other_traffic_shrinks_our_share():
    chain = blocks(*[15_000_000] * 4)
    a = decide(chain, {b.number: 9_000_000 for b in chain})
    assert a.pace is Pace.TARGET
    assert a.gas == TARGET - 6_000_000
    assert a.transactions(4_500_000) == 2


def test_a_smaller_transaction_only_for_half_a_blocks_share():
    chain = blocks(USED, USED, USED, USED)
    own = {b.number: USED for b in chain}
    saved = decide(chain, own, pending=TX)  # the 2M a steady run saves up: not worth a transaction
    assert saved.gas == 4 * (TARGET - USED) and not saved.worth_a_smaller_transaction(TX)
    busy = decide(blocks(*[15_000_000] * 4), {n: 9_000_000 for n in range(100, 104)})
    assert busy.transactions(TX) == 0 and busy.worth_a_smaller_transaction(TX)  # 9M of a 9M share


def test_other_traffic_at_or_above_the_target_gets_nothing_added():
    chain = blocks(20_000_000, 18_000_000, 16_000_000, 17_000_000)
    a = decide(chain, {})
    assert a.pace is Pace.BUSY and a.gas == 0
    assert "other traffic" in a.reason


def test_a_deadline_the_target_pace_meets_changes_nothing():
    chain = blocks(0, 0, 0, 0)
    far = Deadline(at=NOW + timedelta(hours=1), gas_needed=100 * TARGET)
    assert decide(chain, {}, deadline=far) == decide(chain, {})


def test_a_deadline_the_target_would_miss_raises_the_share_and_says_the_price():
    chain = blocks(0, 0, 0, 0)
    # 100 seconds, 100 blocks, 2,500M gas: 25M a block, 10M above the target
    soon = Deadline(at=NOW + timedelta(seconds=100), gas_needed=100 * 25_000_000)
    a = decide(chain, {}, deadline=soon)
    assert a.pace is Pace.DEADLINE and a.gas == 25_000_000
    assert "8.3%" in a.reason  # (25M - 15M) / 15M / 8


def test_the_same_batch_later_is_late_and_goes_at_max():
    """The injected clock moves on: the same deadline, nearer, can no longer be met, then has passed."""
    chain = blocks(0, 0, 0, 0)
    deadline = Deadline(at=NOW + timedelta(seconds=100), gas_needed=100 * 25_000_000)
    assert decide(chain, {}, deadline=deadline, now=NOW + timedelta(seconds=50)).pace is Pace.LATE
    late = decide(chain, {}, deadline=deadline, now=NOW + timedelta(seconds=101))
    assert late.pace is Pace.LATE and late.gas is None and "passed" in late.reason


def test_the_eip1559_rule():
    assert next_base_fee(GWEI, LIMIT, LIMIT) == GWEI * 1125 // 1000
    assert next_base_fee(GWEI, 0, LIMIT) == GWEI * 875 // 1000
    assert next_base_fee(GWEI, TARGET, LIMIT) == GWEI
    assert rise_percent(LIMIT, LIMIT) == 12.5


def simulate(mode: PacingMode, credentials: int, *, per_credential: int = 60_000, rows_per_tx: int = 240,
             max_in_flight: int = 10, miss_every: int = 0, others: int = 0,
             sends: tuple[int, ...] = ()) -> tuple[float, int]:
    """A chain whose blocks take every pending transaction that fits (as Anvil does), and a signer that
    sends what the allowance lets it before each block (or misses a block now and then). Returns the base
    fee at the end over the start, and the blocks it took."""
    base_fee = start = GWEI
    seen: list[Block] = []
    own: dict[int, int] = {}
    pending: list[int] = []
    left = credentials
    number = 0
    while (left or pending) and number < 10_000:
        number += 1
        if not (miss_every and number % miss_every == 0):
            a = allowance(blocks=seen[-8:], own_gas={n: g for n, g in own.items() if n > number - 10},
                          own_pending_gas=sum(pending), mode=mode, now=NOW, block_seconds=1.0)
            room = max_in_flight - len(pending)
            if sends:  # a signer that manages this many transactions before the block, in turn
                room = min(room, sends[number % len(sends)])
            per_tx = rows_per_tx * per_credential
            if a.transactions(per_tx) is not None:
                room = min(room, a.transactions(per_tx))
            for _ in range(max(0, room)):
                if not left:
                    break
                rows = min(rows_per_tx, left)
                left -= rows
                pending.append(rows * per_credential)
        used, mined = others, 0
        while pending and used + pending[0] <= LIMIT:
            used += pending.pop(0)
            mined += 1
        ours = used - others
        if ours:
            own[number] = ours
        seen.append(Block(number, used, LIMIT, base_fee))
        base_fee = next_base_fee(base_fee, used, LIMIT)
    return base_fee / start, number


@pytest.mark.parametrize("miss_every", [0, 3, 7])
def test_simulated_50000_credentials_target_pacing_keeps_the_base_fee_flat(miss_every):
    ratio, blocks_taken = simulate(PacingMode.TARGET, 50_000, miss_every=miss_every)
    assert ratio <= 1.3
    ideal = 50_000 * 60_000 / TARGET
    assert blocks_taken <= ideal * (1.6 if miss_every == 3 else 1.25)


def test_simulated_signer_barely_faster_than_the_target_makes_up_what_it_missed():
    """A loaded machine: about 1.3 transactions a block on average, unevenly (none in some blocks)."""
    ratio, blocks_taken = simulate(PacingMode.TARGET, 50_000, sends=(1, 0, 2, 1, 3, 0, 1, 2, 1, 2))
    assert ratio <= 1.5
    assert blocks_taken <= 50_000 / 240 * 1.15  # near one 240-credential transaction a block


def test_simulated_50000_credentials_max_pacing_runs_the_base_fee_away():
    ratio, blocks_taken = simulate(PacingMode.MAX, 50_000)
    assert ratio > 1_000
    assert blocks_taken <= 50_000 / (2 * 240) + 2  # two transactions in every block


def test_simulated_busy_chain_our_pacing_adds_no_rise_of_its_own():
    """Others use 10M a block (below the target): we fill to the target, not beyond."""
    ratio, blocks_taken = simulate(PacingMode.TARGET, 20_000, rows_per_tx=80, others=10_000_000)
    assert ratio <= 1.3 and blocks_taken < 10_000


def test_a_deadline_as_an_operator_writes_it():
    from workers.signer.pacing import parse_deadline

    assert parse_deadline("90m", NOW) == NOW + timedelta(minutes=90)
    assert parse_deadline("2h", NOW) == NOW + timedelta(hours=2)
    assert parse_deadline("1.5d", NOW) == NOW + timedelta(hours=36)
    assert parse_deadline("2026-12-01T18:00", NOW) == datetime(2026, 12, 1, 18, 0, tzinfo=timezone.utc)
    assert parse_deadline("2026-12-01T18:00+01:00", NOW) == datetime(2026, 12, 1, 17, 0, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="in the past"):
        parse_deadline("2026-12-01T11:00", NOW)
    with pytest.raises(ValueError, match=r"expected a duration \(90m, 2h, 1d\) or a time"):
        parse_deadline("tomorrow", NOW)


def test_what_a_deadline_costs_is_said_before_it_runs():
    from workers.signer.pacing import deadline_price

    easy = deadline_price(credentials=10_000, gas_per_credential=75_000, gas_limit=LIMIT, block_seconds=1.0,
                          seconds=3600)
    assert "within the EIP-1559 target" in easy and "base fee stays flat" in easy
    dear = deadline_price(credentials=10_000, gas_per_credential=75_000, gas_limit=LIMIT, block_seconds=1.0,
                          seconds=20)  # 37.5M a block
    assert "more than full blocks" in dear and "12.5% a block" in dear
    between = deadline_price(credentials=10_000, gas_per_credential=75_000, gas_limit=LIMIT, block_seconds=1.0,
                             seconds=40)  # 18.75M a block
    assert "above the target" in between and "3.1% a block" in between


def test_the_block_time_comes_from_the_blocks_seen():
    from workers.signer.pacing import block_seconds

    assert block_seconds([], default=1.0) == 1.0
    seen = [Block(100, 0, LIMIT, GWEI, 1_000), Block(103, 0, LIMIT, GWEI, 1_006)]
    assert block_seconds(seen, default=1.0) == 2.0
