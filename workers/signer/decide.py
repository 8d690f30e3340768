"""What the signer does next, decided from plain facts: a transaction and its attempts, the receipts found,
the head, the chain's nonce, the base fee and the time. No I/O here: the loop (workers/signer/loop.py)
reads, asks these functions, and records or sends what they answer."""
from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from chain.rpc_errors import SendOutcome
from models.states import AttemptStatus, TxStatus
from workers.signer import fees

GWEI = 10**9
REPRICE_EVERY = timedelta(seconds=1)  # an attempt priced below the base fee is re-priced at most this often
GAP_FILLS_PER_PASS = 50
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
REFUSED_AS_CHEAP = (SendOutcome.REPLACEMENT_UNDERPRICED.value, SendOutcome.FEE_TOO_LOW.value)
# outcomes after which the same transaction is tried again soon rather than after the resend timeout:
# unknown (the identical bytes), refused as too cheap (a replacement), no funds (the hold says why),
# nonce too low (the receipt check decides)
RETRY_SOON = frozenset({SendOutcome.UNKNOWN, SendOutcome.FEE_TOO_LOW, SendOutcome.REPLACEMENT_UNDERPRICED,
                        SendOutcome.INSUFFICIENT_FUNDS, SendOutcome.NONCE_TOO_LOW})


class Act(enum.Enum):
    WAIT = "wait"
    REBROADCAST = "rebroadcast"  # the latest attempt's identical bytes again
    BUMP = "bump"  # a replacement signed with higher fees
    STUCK_ALERT = "stuck_alert"  # priced out by the fee ceiling: alert, and send the latest attempt again
    FILL_GAP = "fill_gap"
    MARK_MINED = "mark_mined"
    MARK_UNMINED = "mark_unmined"  # a reorg removed its block
    MOVED = "moved"  # a reorg re-mined it elsewhere (or mined another of its attempts)
    SUPERSEDED = "superseded"  # its nonce was used by a transaction we did not sign
    SPLIT = "split"  # rebuild this batch smaller
    RESIZE = "resize"  # the next batches take another size


# ---- what the loop knows --------------------------------------------------------------------------------
@dataclass(frozen=True)
class AttemptView:
    id: int
    tx_hash: str
    status: AttemptStatus
    max_fee: int
    tip: int
    created_at: datetime
    last_error: str = ""

    @classmethod
    def of(cls, row: Any) -> AttemptView:
        return cls(id=row.id, tx_hash=row.tx_hash, status=AttemptStatus(row.status), max_fee=int(row.max_fee_per_gas),
                   tip=int(row.max_priority_fee_per_gas), created_at=row.created_at, last_error=row.last_error or "")


@dataclass(frozen=True)
class TxView:
    id: int
    nonce: int
    status: TxStatus
    attempts: tuple[AttemptView, ...]  # oldest first
    last_sent_at: datetime | None = None
    block_number: int | None = None
    mined_hash: str | None = None
    gas_limit: int = 0

    @classmethod
    def of(cls, row: Any, attempts: Iterable[Any]) -> TxView:
        return cls(id=row.id, nonce=row.nonce, status=TxStatus(row.status),
                   attempts=tuple(AttemptView.of(a) for a in attempts), last_sent_at=row.last_sent_at,
                   gas_limit=row.gas_limit,
                   block_number=row.block_number, mined_hash=row.mined_hash)


@dataclass(frozen=True)
class Policy:
    """The settings the decisions read."""
    resend_after_seconds: float = 12.0
    unknown_send_retry_seconds: float = 3.0
    fee_bump_percent: int = 12
    base_fee_multiplier: float = 2.0
    max_fee_wei: int = 500 * GWEI
    batch_gas_margin_percent: float = 5.0
    batch_size: int = 250
    max_tx_gas: int = 15_000_000
    max_tx_fee_wei: int = 0  # one transaction may cost at most this (gas limit × maxFeePerGas); 0: no cap

    @classmethod
    def from_settings(cls, settings: Any) -> Policy:
        return cls(resend_after_seconds=settings.resend_after_seconds,
                   unknown_send_retry_seconds=settings.unknown_send_retry_seconds,
                   fee_bump_percent=settings.fee_bump_percent, base_fee_multiplier=settings.base_fee_multiplier,
                   max_fee_wei=int(settings.max_fee_gwei * GWEI),
                   batch_gas_margin_percent=settings.batch_gas_margin_percent, batch_size=settings.batch_size,
                   max_tx_gas=settings.max_tx_gas, max_tx_fee_wei=settings.max_tx_fee_wei)


# ---- what the loop does -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Wait:
    kind: ClassVar[Act] = Act.WAIT


@dataclass(frozen=True)
class Rebroadcast:
    attempt_id: int
    kind: ClassVar[Act] = Act.REBROADCAST


@dataclass(frozen=True)
class Bump:
    max_fee: int
    tip: int
    kind: ClassVar[Act] = Act.BUMP


@dataclass(frozen=True)
class StuckAlert:
    attempt_id: int  # sent again as it is
    kind: ClassVar[Act] = Act.STUCK_ALERT


@dataclass(frozen=True)
class MarkMined:
    attempt_id: int
    kind: ClassVar[Act] = Act.MARK_MINED


@dataclass(frozen=True)
class MarkUnmined:
    kind: ClassVar[Act] = Act.MARK_UNMINED


@dataclass(frozen=True)
class Moved:
    attempt_id: int
    block_number: int
    kind: ClassVar[Act] = Act.MOVED


@dataclass(frozen=True)
class Superseded:
    kind: ClassVar[Act] = Act.SUPERSEDED


@dataclass(frozen=True)
class FillGap:
    nonces: tuple[int, ...]
    kind: ClassVar[Act] = Act.FILL_GAP


TxAction = Wait | Rebroadcast | Bump | StuckAlert | MarkMined | MarkUnmined | Moved | Superseded


def changes_something(action: TxAction) -> bool:
    return action.kind is not Act.WAIT


# ---- one transaction -----------------------------------------------------------------------------------
def decide_tx(tx: TxView, mined_in: Mapping[str, int], *, unanswered: bool, chain_nonce: int, base_fee: int,
              now: datetime, policy: Policy) -> TxAction:
    """`mined_in`: attempt hash → block of its receipt, for the attempts that have one; `unanswered`: a
    receipt lookup of this transaction failed, so the absence of a receipt proves nothing."""
    mined = next((a for a in tx.attempts if a.tx_hash in mined_in), None)
    if tx.status is TxStatus.MINED:
        if mined is None:
            return Wait() if unanswered else MarkUnmined()
        block = mined_in[mined.tx_hash]
        if block == tx.block_number and mined.tx_hash == tx.mined_hash:
            return Wait()
        return Moved(mined.id, block)
    if mined is not None:
        return MarkMined(mined.id)
    if tx.nonce < chain_nonce:
        # the nonce is used and none of our attempts for it has a receipt: another transaction from this key
        # took it. Its jobs are signed anew (the contract refuses a fingerprint twice, and pre-flight sees it,
        # so a job can never be issued twice this way)
        return Wait() if unanswered else Superseded()
    if not tx.attempts:
        return Wait()
    return keep_moving(tx, tx.attempts[-1], base_fee=base_fee, now=now, policy=policy)


def due_for_resend(last_sent_at: datetime | None, now: datetime, resend_after: float) -> bool:
    return last_sent_at is None or now - last_sent_at >= timedelta(seconds=resend_after)


def due_for_bump(created_at: datetime, now: datetime, resend_after: float) -> bool:
    return now - created_at >= timedelta(seconds=2 * resend_after)


def keep_moving(tx: TxView, latest: AttemptView, *, base_fee: int, now: datetime, policy: Policy) -> TxAction:
    """An unmined transaction: its latest attempt's identical bytes again when due (never sent since a crash,
    dropped, unknown outcome); a replacement with higher fees when it is stuck or was refused as too cheap."""
    sent = latest.status is not AttemptStatus.SIGNED
    underpriced = fees.is_underpriced(latest.max_fee, base_fee)
    if sent and underpriced:
        # its cap is below the base fee: it cannot be mined, and it blocks every later nonce; re-price it now
        # (at most once a second) rather than after the resend timeout
        if now - latest.created_at < REPRICE_EVERY:
            return Wait()
    elif not due_for_resend(tx.last_sent_at, now, policy.resend_after_seconds):
        return Wait()
    refused_as_cheap = not sent and latest.last_error.startswith(REFUSED_AS_CHEAP)
    if not (refused_as_cheap or (sent and (underpriced
                                           or due_for_bump(latest.created_at, now, policy.resend_after_seconds)))):
        return Rebroadcast(latest.id)
    bumped = fees.bumped_fees(max_fee=latest.max_fee, tip=latest.tip, base_fee=base_fee,
                              bump_percent=policy.fee_bump_percent, base_fee_multiplier=policy.base_fee_multiplier,
                              ceiling=fees.fee_ceiling_for(gas_limit=tx.gas_limit, ceiling=policy.max_fee_wei,
                                                           cap_wei=policy.max_tx_fee_wei))
    if bumped:
        return Bump(*bumped)
    if underpriced:
        return StuckAlert(latest.id)
    return Rebroadcast(latest.id)


def stuck_alert_resolved(*, alerted: bool, pending_latest_fees: Iterable[int], base_fee: int) -> bool:
    """The stuck alert lasts as long as a pending transaction of ours is priced below the base fee."""
    return alerted and not any(fees.is_underpriced(fee, base_fee) for fee in pending_latest_fees)


# ---- nonce gaps ----------------------------------------------------------------------------------------
def gap_candidates(*, next_nonce: int | None, chain_nonce: int) -> range:
    """The nonces that could be a gap: from the chain's to our next one."""
    return range(chain_nonce, next_nonce) if next_nonce is not None else range(0)


def fill_gap(candidates: range, occupied: Collection[int]) -> FillGap | None:
    """A nonce with no live transaction (a lost record, a transaction a reorg orphaned after it was superseded)
    blocks everything behind it: fill it (at most GAP_FILLS_PER_PASS a pass)."""
    missing = tuple(n for n in candidates if n not in occupied)
    return FillGap(missing[:GAP_FILLS_PER_PASS]) if missing else None


# ---- a broadcast's answer ------------------------------------------------------------------------------
class HoldChange(enum.Enum):
    NONE = "none"
    HOLD = "hold"  # no funds: issuance waits
    RESUME = "resume"  # a funds hold ends


@dataclass(frozen=True)
class OutcomeRecord:
    broadcast: bool  # the node has the attempt: it moves to broadcast, its count rises
    last_sent_at: datetime
    last_error: str
    hold: HoldChange = HoldChange.NONE
    reread_chain: bool = False  # the next pass reads the chain's nonce and receipts afresh


def record_outcome(outcome: SendOutcome, error: str, *, now: datetime, funds_hold: bool,
                   policy: Policy) -> OutcomeRecord:
    """What to write after a broadcast answered `outcome`; `funds_hold`: issuance holds for lack of funds."""
    accepted = outcome in (SendOutcome.ACCEPTED, SendOutcome.ALREADY_KNOWN)
    hold = HoldChange.NONE
    if accepted and funds_hold:
        hold = HoldChange.RESUME
    elif outcome is SendOutcome.INSUFFICIENT_FUNDS:
        hold = HoldChange.HOLD
    sent_at = now
    if outcome in RETRY_SOON:
        sent_at = now - timedelta(seconds=max(0.0, policy.resend_after_seconds - policy.unknown_send_retry_seconds))
    last_error = "" if outcome is SendOutcome.ACCEPTED else f"{outcome.value}: {error}"[:500]
    return OutcomeRecord(broadcast=accepted, last_sent_at=sent_at, last_error=last_error, hold=hold,
                         reread_chain=outcome is SendOutcome.NONCE_TOO_LOW)


# ---- batch size ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Resize:
    limit: int
    rebuild: bool  # this batch must be rebuilt with at most `limit` rows

    @property
    def kind(self) -> Act:
        return Act.SPLIT if self.rebuild else Act.RESIZE


def resize_batch(*, rows: int, estimate: int, limit: int, block_gas_limit: int, policy: Policy,
                 least_fee: int = 0) -> Resize:
    """Fit batches to the gas budget that tiles a block, and under the per-transaction fee cap at `least_fee`
    (base fee + tip: the lowest maxFeePerGas that is still mined), so that a batch the cap shrank does not
    grow back while the fees stay where they are."""
    budget = fees.tx_gas_budget(block_gas_limit, policy.max_tx_gas)
    if policy.max_tx_fee_wei > 0 and least_fee > 0:
        budget = min(budget, policy.max_tx_fee_wei // least_fee)
    needed = fees.gas_limit(estimate, margin_percent=policy.batch_gas_margin_percent)
    fitting = max(1, rows * budget // needed)
    if needed > budget and rows > 1:
        return Resize(min(fitting, rows - 1), rebuild=True)
    if rows == limit and fitting > rows:  # room to grow next time, up to batch_size
        return Resize(min(policy.batch_size, fitting), rebuild=False)
    return Resize(limit, rebuild=False)


def split_too_big(*, batch_extension: bool, rows: int, too_big: bool) -> Resize | None:
    """A pre-flight the node refused: halve a batch that is bigger than it will simulate (call gas cap,
    memory); None when the error is something else (it is raised)."""
    if batch_extension and rows > 1 and too_big:
        return Resize(max(1, rows // 2), rebuild=True)
    return None


# ---- the loop's pace -----------------------------------------------------------------------------------
class Failure(enum.Enum):
    LEASE_LOST = "lease_lost"  # another signer owns the key now
    WRONG_CHAIN = "wrong_chain"
    UNAVAILABLE = "unavailable"  # the node or the database
    UNEXPECTED = "unexpected"


@dataclass(frozen=True)
class AfterFailure:
    stop: bool
    wait: float
    next_backoff: float
    watch_progress: bool  # the stall alert may have to speak


def after_failure(failure: Failure, backoff: float) -> AfterFailure:
    """A failed step: stop for good when the key is someone else's, otherwise wait longer each time."""
    if failure is Failure.LEASE_LOST:
        return AfterFailure(stop=True, wait=0.0, next_backoff=backoff, watch_progress=False)
    return AfterFailure(stop=False, wait=backoff, next_backoff=min(backoff * 2, MAX_BACKOFF),
                        watch_progress=failure is not Failure.WRONG_CHAIN)


def pause_after_step(*, worked: bool, poll_seconds: float) -> float:
    return 0.0 if worked else poll_seconds


# ---- how often the chain is asked ----------------------------------------------------------------------
def receipts_to_fetch(pending: Iterable[TxView], *, chain_nonce: int) -> list[int]:
    """The pending transactions whose receipts are worth asking for: only a nonce below the chain's can have
    been mined (the chain's nonce counts this key's mined transactions), so the others are not asked about."""
    return [tx.id for tx in pending if tx.status is TxStatus.PENDING and tx.nonce < chain_nonce]


@dataclass(frozen=True)
class Head:
    number: int
    hash: str


@dataclass(frozen=True)
class Mined:
    """A mined transaction of ours as last seen: its block and that block's hash (None since a restart)."""
    tx_id: int
    block_number: int
    block_hash: str | None


@dataclass(frozen=True)
class Anchor:
    """The highest block holding a transaction of ours that was seen canonical together with the blocks of
    `covered`: while its hash is still at its height, all of theirs are too (a block fixes its ancestors)."""
    number: int
    hash: str
    covered: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True)
class ReorgCheck:
    headers: dict[int, str]  # height → the hash we saw there: one header each to compare
    receipts_for: frozenset[int]  # transactions whose block we do not know: their receipts instead

    @property
    def empty(self) -> bool:
        return not self.headers and not self.receipts_for


def reorg_check(mined: Iterable[Mined], anchor: Anchor | None, *, head: Head | None,
                checked_head: Head | None) -> ReorgCheck:
    """Mined transactions are re-checked for reorgs only when the head changed since the last check, and then
    by headers, not receipts: the anchor's, and one per block not yet covered by it."""
    if head is None or head == checked_head:
        return ReorgCheck({}, frozenset())
    headers: dict[int, str] = {}
    receipts: set[int] = set()
    for tx in mined:
        if tx.block_hash is None:
            receipts.add(tx.tx_id)
        elif anchor is not None and tx.tx_id in anchor.covered:
            headers[anchor.number] = anchor.hash
        else:
            headers[tx.block_number] = tx.block_hash
    return ReorgCheck(headers, frozenset(receipts))


@dataclass(frozen=True)
class ReorgVerdict:
    anchor: Anchor | None
    receipts_for: frozenset[int]  # transactions to look up by receipt (their block may be gone)


def after_reorg_check(check: ReorgCheck, seen: Mapping[int, str | None], mined: Iterable[Mined],
                      anchor: Anchor | None) -> ReorgVerdict:
    """`seen`: height → the hash the chain has there now (None: no such block). All as we saw them: the
    highest block becomes the anchor covering them all. Any changed: every mined transaction is looked up by
    its receipts, and the anchor is built again from what they say."""
    mined = list(mined)
    if any(seen.get(number) != expected for number, expected in check.headers.items()):
        return ReorgVerdict(None, frozenset(tx.tx_id for tx in mined))
    known = [tx for tx in mined if tx.block_hash is not None and tx.tx_id not in check.receipts_for]
    if not known:
        return ReorgVerdict(anchor, check.receipts_for)
    top = max(known, key=lambda tx: tx.block_number)
    assert top.block_hash is not None
    return ReorgVerdict(Anchor(top.block_number, top.block_hash, frozenset(tx.tx_id for tx in known)),
                        check.receipts_for)
