"""The signer's decisions (workers/signer/decide.py) on plain data and an injected clock: every branch, no
service. The loop that acts on them is tested against Anvil in tests/test_signer_*.py."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from blockproof.settings import Settings
from chain.rpc_errors import SendOutcome
from models.states import AttemptStatus, TxStatus
from workers.signer import decide, fees
from workers.signer.decide import (Act, Anchor, AttemptView, Bump, FillGap, Head, HoldChange, MarkMined, MarkUnmined,
                                   Mined, Moved, Policy, Rebroadcast, ReorgCheck, Resize, StuckAlert, Superseded,
                                   TxView, Wait)

GWEI = 10**9
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
POLICY = Policy(resend_after_seconds=12, unknown_send_retry_seconds=3, fee_bump_percent=12, base_fee_multiplier=2,
                max_fee_wei=500 * GWEI, batch_gas_margin_percent=5, batch_size=250, max_tx_gas=15_000_000)


class Clock:
    """The only clock the decisions see: advanced by hand."""

    def __init__(self, start: datetime = T0):
        self.now = start

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def attempt(i: int = 1, *, status=AttemptStatus.BROADCAST, max_fee=10 * GWEI, tip=GWEI, created_at=T0,
            last_error="") -> AttemptView:
    return AttemptView(id=i, tx_hash=f"0x{i:064x}", status=status, max_fee=max_fee, tip=tip, created_at=created_at,
                       last_error=last_error)


def tx(*attempts: AttemptView, nonce=5, status=TxStatus.PENDING, last_sent_at=T0, block_number=None,
       mined_hash=None, gas_limit=1_000_000) -> TxView:
    return TxView(id=1, nonce=nonce, status=status, attempts=attempts, last_sent_at=last_sent_at,
                  block_number=block_number, mined_hash=mined_hash, gas_limit=gas_limit)


def decide_at(view: TxView, now: datetime, *, mined_in=None, unanswered=False, chain_nonce=5, base_fee=GWEI,
              policy=POLICY):
    return decide.decide_tx(view, mined_in or {}, unanswered=unanswered, chain_nonce=chain_nonce, base_fee=base_fee,
                            now=now, policy=policy)


# ---- receipts: mined, reorged, moved, superseded -------------------------------------------------------
def test_a_pending_transaction_with_a_receipt_is_marked_mined_by_the_attempt_that_has_it():
    first, second = attempt(1), attempt(2)
    action = decide_at(tx(first, second), T0, mined_in={second.tx_hash: 40})
    assert action == MarkMined(2) and decide.changes_something(action)


def test_a_mined_transaction_whose_receipt_is_gone_is_marked_unmined():
    view = tx(attempt(1), status=TxStatus.MINED, block_number=40, mined_hash=attempt(1).tx_hash)
    assert decide_at(view, T0) == MarkUnmined()


def test_a_mined_transaction_whose_receipt_lookup_failed_is_left_alone():
    view = tx(attempt(1), status=TxStatus.MINED, block_number=40, mined_hash=attempt(1).tx_hash)
    assert decide_at(view, T0, unanswered=True) == Wait()


def test_a_mined_transaction_still_in_its_block_needs_nothing():
    a = attempt(1)
    view = tx(a, status=TxStatus.MINED, block_number=40, mined_hash=a.tx_hash)
    action = decide_at(view, T0, mined_in={a.tx_hash: 40})
    assert action == Wait() and not decide.changes_something(action)


def test_a_mined_transaction_re_mined_in_another_block_moves_there():
    a = attempt(1)
    view = tx(a, status=TxStatus.MINED, block_number=40, mined_hash=a.tx_hash)
    assert decide_at(view, T0, mined_in={a.tx_hash: 42}) == Moved(1, 42)


def test_a_reorg_that_mined_another_attempt_of_the_nonce_in_the_same_block_moves_to_that_attempt():
    a, b = attempt(1), attempt(2)
    view = tx(a, b, status=TxStatus.MINED, block_number=40, mined_hash=a.tx_hash)
    assert decide_at(view, T0, mined_in={b.tx_hash: 40}) == Moved(2, 40)


def test_a_used_nonce_without_any_receipt_of_ours_is_superseded():
    assert decide_at(tx(attempt(1), nonce=4), T0, chain_nonce=5) == Superseded()


def test_a_used_nonce_whose_receipt_lookup_failed_concludes_nothing():
    assert decide_at(tx(attempt(1), nonce=4), T0, chain_nonce=5, unanswered=True) == Wait()


def test_a_transaction_without_attempts_waits():
    assert decide_at(tx(), T0) == Wait()


# ---- keeping an unmined transaction moving (as op-service's send_state) --------------------------------
def test_a_broadcast_attempt_waits_until_the_resend_timeout_then_its_identical_bytes_go_again():
    clock = Clock()
    view = tx(attempt(1), last_sent_at=clock.now)
    assert decide_at(view, clock.advance(11.9)) == Wait()
    assert decide_at(view, clock.advance(0.1)) == Rebroadcast(1)


def test_an_attempt_never_sent_since_a_crash_is_sent_at_once():
    assert decide_at(tx(attempt(1, status=AttemptStatus.SIGNED), last_sent_at=None), T0) == Rebroadcast(1)


def test_an_attempt_unanswered_for_two_resend_timeouts_is_replaced_with_higher_fees():
    clock = Clock()
    view = tx(attempt(1, created_at=clock.now), last_sent_at=clock.now)
    clock.advance(24)
    expected = fees.bumped_fees(max_fee=10 * GWEI, tip=GWEI, base_fee=GWEI, bump_percent=12, base_fee_multiplier=2,
                                ceiling=500 * GWEI)
    assert decide_at(view, clock.now) == Bump(*expected)
    assert expected[0] > 10 * GWEI and expected[1] > GWEI


def test_a_sent_attempt_priced_below_the_base_fee_is_repriced_within_a_second_not_after_the_timeout():
    clock = Clock()
    view = tx(attempt(1, max_fee=2 * GWEI, created_at=clock.now), last_sent_at=clock.now)
    assert decide_at(view, clock.advance(0.5), base_fee=3 * GWEI) == Wait()
    action = decide_at(view, clock.advance(0.5), base_fee=3 * GWEI)
    assert isinstance(action, Bump) and action.max_fee >= 2 * 3 * GWEI


def test_a_sent_attempt_priced_out_by_the_fee_ceiling_raises_the_stuck_alert_and_is_sent_again():
    ceiling = Policy(max_fee_wei=10 * GWEI)
    view = tx(attempt(1, max_fee=10 * GWEI, created_at=T0 - timedelta(seconds=5)))
    assert decide_at(view, T0, base_fee=11 * GWEI, policy=ceiling) == StuckAlert(1)


def test_a_replacement_stays_under_the_per_transaction_fee_cap_and_one_that_cannot_raises_the_stuck_alert():
    capped = Policy(max_fee_wei=500 * GWEI, max_tx_fee_wei=1_000_000 * 30 * GWEI)  # 1M gas × 30 gwei at most
    stale = tx(attempt(1, max_fee=20 * GWEI, created_at=T0), last_sent_at=T0)
    bump = decide_at(stale, T0 + timedelta(seconds=24), policy=capped)
    assert isinstance(bump, Bump) and 20 * GWEI < bump.max_fee <= 30 * GWEI  # the 500-gwei ceiling alone allows more
    at_cap = tx(attempt(1, max_fee=30 * GWEI, created_at=T0 - timedelta(seconds=5)))
    assert decide_at(at_cap, T0, base_fee=31 * GWEI, policy=capped) == StuckAlert(1)


def test_an_old_attempt_at_the_ceiling_but_above_the_base_fee_is_sent_again_unchanged():
    ceiling = Policy(max_fee_wei=10 * GWEI)
    view = tx(attempt(1, max_fee=10 * GWEI), last_sent_at=T0)
    assert decide_at(view, T0 + timedelta(seconds=30), policy=ceiling) == Rebroadcast(1)


@pytest.mark.parametrize("refusal", [SendOutcome.REPLACEMENT_UNDERPRICED, SendOutcome.FEE_TOO_LOW])
def test_an_attempt_the_node_refused_as_too_cheap_is_replaced_when_due(refusal):
    signed = attempt(1, status=AttemptStatus.SIGNED, last_error=f"{refusal.value}: too cheap")
    assert isinstance(decide_at(tx(signed, last_sent_at=None), T0), Bump)


def test_a_refused_attempt_that_cannot_be_bumped_but_is_above_the_base_fee_is_sent_again():
    signed = attempt(1, status=AttemptStatus.SIGNED, max_fee=10 * GWEI, last_error="fee_too_low: x")
    assert decide_at(tx(signed, last_sent_at=None), T0, policy=Policy(max_fee_wei=10 * GWEI)) == Rebroadcast(1)


def test_a_refused_attempt_that_cannot_be_bumped_and_is_below_the_base_fee_raises_the_stuck_alert():
    signed = attempt(1, status=AttemptStatus.SIGNED, max_fee=10 * GWEI, last_error="fee_too_low: x")
    assert decide_at(tx(signed, last_sent_at=None), T0, base_fee=11 * GWEI,
                     policy=Policy(max_fee_wei=10 * GWEI)) == StuckAlert(1)


def test_an_attempt_not_yet_received_is_never_repriced_for_the_base_fee_alone():
    """Signed but unsent (unknown outcome, crash): its bytes go first; a replacement only once a node
    refused them as too cheap."""
    clock = Clock()
    signed = attempt(1, status=AttemptStatus.SIGNED, max_fee=2 * GWEI, created_at=clock.now - timedelta(seconds=60),
                     last_error="unknown: timed out")
    view = tx(signed, last_sent_at=clock.now)
    assert decide_at(view, clock.advance(1), base_fee=3 * GWEI) == Wait()  # not due: no early re-price
    assert decide_at(view, clock.advance(11), base_fee=3 * GWEI) == Rebroadcast(1)


def test_only_the_latest_attempt_is_kept_moving():
    old = attempt(1, created_at=T0 - timedelta(seconds=100))
    new = attempt(2, created_at=T0)
    assert decide_at(tx(old, new, last_sent_at=T0 - timedelta(seconds=12)), T0) == Rebroadcast(2)


def test_resend_and_bump_are_due_exactly_at_their_timeouts():
    assert decide.due_for_resend(None, T0, 12)
    assert decide.due_for_resend(T0, T0 + timedelta(seconds=12), 12)
    assert not decide.due_for_resend(T0, T0 + timedelta(seconds=11), 12)
    assert decide.due_for_bump(T0, T0 + timedelta(seconds=24), 12)
    assert not decide.due_for_bump(T0, T0 + timedelta(seconds=23), 12)


# ---- the stuck alert -----------------------------------------------------------------------------------
def test_the_stuck_alert_clears_once_no_pending_transaction_is_below_the_base_fee():
    assert decide.stuck_alert_resolved(alerted=True, pending_latest_fees=[5 * GWEI, 6 * GWEI], base_fee=5 * GWEI)
    assert decide.stuck_alert_resolved(alerted=True, pending_latest_fees=[], base_fee=5 * GWEI)
    assert not decide.stuck_alert_resolved(alerted=True, pending_latest_fees=[4 * GWEI, 6 * GWEI], base_fee=5 * GWEI)
    assert not decide.stuck_alert_resolved(alerted=False, pending_latest_fees=[], base_fee=5 * GWEI)


# ---- nonce gaps ----------------------------------------------------------------------------------------
def test_gaps_are_looked_for_only_between_the_chains_nonce_and_ours():
    assert decide.gap_candidates(next_nonce=None, chain_nonce=3) == range(0)
    assert not decide.gap_candidates(next_nonce=3, chain_nonce=3)
    assert not decide.gap_candidates(next_nonce=2, chain_nonce=3)
    assert decide.gap_candidates(next_nonce=6, chain_nonce=3) == range(3, 6)


def test_a_nonce_without_a_live_transaction_is_filled_and_occupied_ones_are_not():
    assert decide.fill_gap(range(3, 6), {3, 5}) == FillGap((4,))
    assert decide.fill_gap(range(3, 6), {3, 4, 5}) is None
    big = decide.fill_gap(range(0, 80), set())
    assert big is not None and big.nonces == tuple(range(50)) and big.kind is Act.FILL_GAP


# ---- a broadcast's answer ------------------------------------------------------------------------------
def test_an_accepted_broadcast_is_recorded_without_error_and_now():
    record = decide.record_outcome(SendOutcome.ACCEPTED, "", now=T0, funds_hold=False, policy=POLICY)
    assert record == decide.OutcomeRecord(broadcast=True, last_sent_at=T0, last_error="")


def test_already_known_counts_as_received_and_keeps_the_answer():
    record = decide.record_outcome(SendOutcome.ALREADY_KNOWN, "already known", now=T0, funds_hold=False,
                                   policy=POLICY)
    assert record.broadcast and record.last_sent_at == T0 and record.last_error == "already_known: already known"
    assert record.hold is HoldChange.NONE


@pytest.mark.parametrize("outcome", [SendOutcome.ACCEPTED, SendOutcome.ALREADY_KNOWN])
def test_a_received_broadcast_ends_a_funds_hold(outcome):
    assert decide.record_outcome(outcome, "", now=T0, funds_hold=True, policy=POLICY).hold is HoldChange.RESUME


def test_no_funds_holds_issuance_and_tries_again_soon():
    record = decide.record_outcome(SendOutcome.INSUFFICIENT_FUNDS, "insufficient funds", now=T0, funds_hold=True,
                                   policy=POLICY)
    assert record.hold is HoldChange.HOLD and not record.broadcast
    assert record.last_sent_at == T0 - timedelta(seconds=9)  # due again after unknown_send_retry_seconds


@pytest.mark.parametrize("outcome", [SendOutcome.UNKNOWN, SendOutcome.FEE_TOO_LOW, SendOutcome.REPLACEMENT_UNDERPRICED])
def test_an_unknown_or_too_cheap_answer_makes_the_transaction_due_again_soon(outcome):
    record = decide.record_outcome(outcome, "x", now=T0, funds_hold=False, policy=POLICY)
    assert not record.broadcast and not record.reread_chain and record.hold is HoldChange.NONE
    assert record.last_sent_at == T0 - timedelta(seconds=9) and record.last_error == f"{outcome.value}: x"


def test_nonce_too_low_rereads_the_chain_and_lets_the_receipts_decide_soon():
    record = decide.record_outcome(SendOutcome.NONCE_TOO_LOW, "nonce too low", now=T0, funds_hold=False,
                                   policy=POLICY)
    assert record.reread_chain and record.last_sent_at == T0 - timedelta(seconds=9)


@pytest.mark.parametrize("outcome", [SendOutcome.REJECTED, SendOutcome.NONCE_TOO_HIGH])
def test_other_refusals_wait_the_whole_resend_timeout(outcome):
    record = decide.record_outcome(outcome, "no" * 400, now=T0, funds_hold=False, policy=POLICY)
    assert record.last_sent_at == T0 and not record.broadcast and len(record.last_error) == 500


def test_a_retry_delay_longer_than_the_resend_timeout_means_due_at_the_timeout():
    record = decide.record_outcome(SendOutcome.UNKNOWN, "", now=T0, funds_hold=False,
                                   policy=Policy(resend_after_seconds=2, unknown_send_retry_seconds=5))
    assert record.last_sent_at == T0


# ---- batch size ----------------------------------------------------------------------------------------
def needed_for(rows_gas: int) -> int:
    return fees.gas_limit(rows_gas, margin_percent=POLICY.batch_gas_margin_percent)


def test_a_batch_over_the_gas_budget_is_split_to_what_fits():
    resize = decide.resize_batch(rows=100, estimate=20_000_000, limit=100, block_gas_limit=30_000_000, policy=POLICY)
    assert resize.rebuild and resize.kind is Act.SPLIT
    assert resize.limit == 100 * 15_000_000 // needed_for(20_000_000)


def test_a_batch_just_over_the_budget_loses_rows():
    resize = decide.resize_batch(rows=100, estimate=14_990_000, limit=100, block_gas_limit=30_000_000, policy=POLICY)
    assert resize.rebuild and resize.limit == 95


def test_a_single_row_over_the_budget_is_not_split():
    resize = decide.resize_batch(rows=1, estimate=20_000_000, limit=1, block_gas_limit=30_000_000, policy=POLICY)
    assert resize == Resize(1, rebuild=False) and resize.kind is Act.RESIZE


def test_a_full_batch_with_room_grows_the_next_ones_up_to_batch_size():
    assert decide.resize_batch(rows=60, estimate=6_000_000, limit=60, block_gas_limit=30_000_000,
                               policy=POLICY) == Resize(60 * 15_000_000 // needed_for(6_000_000), rebuild=False)
    assert decide.resize_batch(rows=60, estimate=600_000, limit=60, block_gas_limit=30_000_000,
                               policy=POLICY) == Resize(250, rebuild=False)


def test_a_short_batch_leaves_the_size_alone():
    assert decide.resize_batch(rows=10, estimate=600_000, limit=60, block_gas_limit=30_000_000,
                               policy=POLICY) == Resize(60, rebuild=False)
    assert needed_for(14_266_667) == 15_000_000  # exactly the budget: no room to grow
    assert decide.resize_batch(rows=60, estimate=14_266_667, limit=60, block_gas_limit=30_000_000,
                               policy=POLICY) == Resize(60, rebuild=False)


def test_a_pre_flight_too_big_for_the_node_halves_the_batch_and_anything_else_is_raised():
    assert decide.split_too_big(batch_extension=True, rows=9, too_big=True) == Resize(4, rebuild=True)
    assert decide.split_too_big(batch_extension=True, rows=9, too_big=False) is None
    assert decide.split_too_big(batch_extension=True, rows=1, too_big=True) is None
    assert decide.split_too_big(batch_extension=False, rows=9, too_big=True) is None


# ---- the loop's pace -----------------------------------------------------------------------------------
def test_a_lost_lease_stops_the_signer_for_good():
    assert decide.after_failure(decide.Failure.LEASE_LOST, 4.0).stop


def test_a_wrong_chain_waits_longer_each_time_without_the_stall_alert():
    then = decide.after_failure(decide.Failure.WRONG_CHAIN, 4.0)
    assert (then.stop, then.wait, then.next_backoff, then.watch_progress) == (False, 4.0, 8.0, False)


@pytest.mark.parametrize("failure", [decide.Failure.UNAVAILABLE, decide.Failure.UNEXPECTED])
def test_an_unavailable_service_or_an_unexpected_answer_backs_off_to_at_most_30_seconds(failure):
    backoff, waits = decide.FIRST_BACKOFF, []
    for _ in range(10):
        then = decide.after_failure(failure, backoff)
        assert not then.stop and then.watch_progress
        waits.append(then.wait)
        backoff = then.next_backoff
    assert waits[:4] == [0.5, 1.0, 2.0, 4.0] and max(waits) == decide.MAX_BACKOFF


def test_a_step_that_did_work_is_followed_at_once_and_an_idle_one_after_the_poll_interval():
    assert decide.pause_after_step(worked=True, poll_seconds=0.2) == 0.0
    assert decide.pause_after_step(worked=False, poll_seconds=0.2) == 0.2


# ---- how often the chain is asked ----------------------------------------------------------------------
def test_receipts_are_asked_only_for_nonces_the_chain_has_used():
    views = [TxView(id=i, nonce=i, status=TxStatus.PENDING, attempts=()) for i in range(4)]
    views.append(TxView(id=9, nonce=0, status=TxStatus.MINED, attempts=()))
    assert decide.receipts_to_fetch(views, chain_nonce=2) == [0, 1]


def test_no_reorg_check_before_the_head_is_known_or_while_it_has_not_changed():
    mined = [Mined(1, 40, "0xa")]
    assert decide.reorg_check(mined, None, head=None, checked_head=None).empty
    assert decide.reorg_check(mined, None, head=Head(41, "0xh"), checked_head=Head(41, "0xh")).empty


def test_a_new_head_checks_one_header_per_block_not_covered_and_receipts_where_the_block_is_unknown():
    mined = [Mined(1, 40, "0xa"), Mined(2, 40, "0xa"), Mined(3, 43, "0xc"), Mined(4, 44, None)]
    check = decide.reorg_check(mined, None, head=Head(45, "0xh"), checked_head=Head(44, "0xg"))
    assert check == ReorgCheck({40: "0xa", 43: "0xc"}, frozenset({4})) and not check.empty


def test_blocks_covered_by_the_anchor_cost_only_the_anchors_header():
    anchor = Anchor(43, "0xc", frozenset({1, 2, 3}))
    mined = [Mined(1, 40, "0xa"), Mined(2, 41, "0xb"), Mined(3, 43, "0xc"), Mined(5, 46, "0xe")]
    check = decide.reorg_check(mined, anchor, head=Head(47, "0xh"), checked_head=Head(46, "0xg"))
    assert check.headers == {43: "0xc", 46: "0xe"} and not check.receipts_for


def test_headers_as_we_saw_them_make_the_highest_block_the_anchor_of_them_all():
    mined = [Mined(1, 40, "0xa"), Mined(3, 43, "0xc"), Mined(4, 44, None)]
    check = ReorgCheck({40: "0xa", 43: "0xc"}, frozenset({4}))
    verdict = decide.after_reorg_check(check, {40: "0xa", 43: "0xc"}, mined, None)
    assert verdict.anchor == Anchor(43, "0xc", frozenset({1, 3})) and verdict.receipts_for == {4}


@pytest.mark.parametrize("seen", [{40: "0xa", 43: "0xOTHER"}, {40: "0xa", 43: None}, {40: "0xa"}])
def test_a_header_that_changed_or_vanished_sends_every_mined_transaction_to_its_receipts(seen):
    mined = [Mined(1, 40, "0xa"), Mined(3, 43, "0xc")]
    verdict = decide.after_reorg_check(ReorgCheck({40: "0xa", 43: "0xc"}, frozenset()), seen, mined,
                                       Anchor(40, "0xa", frozenset({1})))
    assert verdict.anchor is None and verdict.receipts_for == {1, 3}


def test_with_only_unknown_blocks_the_anchor_stays_and_their_receipts_are_read():
    anchor = Anchor(40, "0xa", frozenset({1}))
    verdict = decide.after_reorg_check(ReorgCheck({}, frozenset({4})), {}, [Mined(4, 44, None)], anchor)
    assert verdict.anchor == anchor and verdict.receipts_for == {4}


# ---- the views and the policy --------------------------------------------------------------------------
def test_views_and_policy_are_read_from_rows_and_settings():
    row = SimpleNamespace(id=7, tx_hash="0x1", status="signed", max_fee_per_gas="10", max_priority_fee_per_gas=2,
                          created_at=T0, last_error=None)
    view = TxView.of(SimpleNamespace(id=3, nonce=9, status="mined", last_sent_at=T0, block_number=4, mined_hash="0x1",
                                     gas_limit=21_000), [row])
    assert view.status is TxStatus.MINED and view.attempts == (
        AttemptView(7, "0x1", AttemptStatus.SIGNED, 10, 2, T0, ""),)
    assert view.gas_limit == 21_000
    settings = Settings(max_fee_gwei=7, resend_after_seconds=5, max_tx_fee_wei=10**16)
    policy = Policy.from_settings(settings)
    assert policy.max_fee_wei == 7 * GWEI and policy.resend_after_seconds == 5 and policy.max_tx_fee_wei == 10**16
    assert policy.batch_size == settings.batch_size and policy.max_tx_gas == settings.max_tx_gas


def test_under_the_per_transaction_fee_cap_a_batch_is_sized_to_what_the_cap_pays_for_and_does_not_grow_back():
    capped = Policy(max_tx_fee_wei=6_000_000 * 10 * GWEI, batch_size=250)  # 6M gas at 10 gwei (base fee + tip)
    shrink = decide.resize_batch(rows=100, estimate=10_000_000, limit=100, block_gas_limit=30_000_000, policy=capped,
                                 least_fee=10 * GWEI)
    assert shrink.rebuild and shrink.limit < 60  # 100 rows of 100k gas need 10M; the cap pays for 6M
    settled = decide.resize_batch(rows=50, estimate=5_000_000, limit=50, block_gas_limit=30_000_000, policy=capped,
                                  least_fee=10 * GWEI)
    assert not settled.rebuild and 50 <= settled.limit <= 60  # the block alone would let it grow to 140 rows
    cheaper = decide.resize_batch(rows=50, estimate=5_000_000, limit=50, block_gas_limit=30_000_000, policy=capped,
                                  least_fee=2 * GWEI)
    assert cheaper.limit > 60  # fees fell: the cap pays for more
