"""The signer: the one thread that owns a key's nonces. Packs ready jobs into calls, signs,
writes ahead, broadcasts, and keeps every sent transaction moving until it is mined."""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from blockproof.errors import RpcError, RpcUnavailable
from chain.rpc import Rpc, WrongChain
from blockproof.settings import Settings
from eth_abi import encode as abi_encode
from eth_utils import to_checksum_address
from models.alerts import raise_alert, resolve_alerts
from models.db import session_scope
from models.fees import spend, utc_midnight, worst_case
from models.states import AttemptStatus, JobState, TxStatus, utcnow
from models.tables import Batch, ChainTransaction, Job, SignerState, TxAttempt
from models.transitions import claim_ready, link_submitted, move_attempt, transition_many
from workers.signer import already_issued, decide, fees, nonce, packer, pacing, sender, stall, tracker
from workers.signer.lease import LeaseLost
from chain.rpc_errors import SendOutcome, is_too_big
from chain.preflight import (ALREADY_ISSUED, Group, Revert, has_batch_extension, has_packed_batch, refused_rows,
                             simulate_many, skipped_rows)

log = logging.getLogger("blockproof.signer")
GWEI = 10**9
HOLD_RECHECK_SECONDS = 2.0
# rough gas per credential for the low-balance estimate (bench/results/gas.md: batch ≈123k, single ≈250k)
BATCH_GAS_PER_CREDENTIAL = 130_000
SINGLE_GAS_PER_CREDENTIAL = 280_000
# the first batch is sized for the dearest rows measured (distinct 66-character URIs, ≈238k gas each), so
# its pre-flight fits the gas budget and the node's call gas cap; estimates then size the next ones
FIRST_BATCH_GAS_PER_CREDENTIAL = 240_000
# OP-stack chains: the GasPriceOracle predeploy quotes the L1 data fee of a transaction's bytes (getL1Fee(bytes))
GAS_PRICE_ORACLE = "0x420000000000000000000000000000000000000F"
GET_L1_FEE = "0x49948e0e"
# the oracle's rate is read from a sample this big (incompressible, like a signature); calldata bytes per
# credential for the runway, and the bytes a signed transaction adds to its calldata (measured on the vault)
L1_SAMPLE = bytes(hashlib.sha256(i.to_bytes(4, "big")).digest()[j] for i in range(32) for j in range(32))
BATCH_BYTES_PER_CREDENTIAL = 130
SINGLE_BYTES_PER_CREDENTIAL = 420
ENVELOPE_BYTES = 120
# holds the signer itself sets (not a contract condition): the pre-flight passing does not lift them
SIGNER_HOLDS = ("Insufficient funds", "Daily fee budget", "Per-transaction fee cap")
FEE_HOLDS = ("Daily fee budget", "Per-transaction fee cap")


def get_l1_fee_data(raw: bytes) -> str:
    return GET_L1_FEE + abi_encode(["bytes"], [raw]).hex()


class Signer:
    def __init__(self, settings: Settings, engine, *, private_key: str | None = None, key_backend=None,
                 rpc: Rpc | None = None):
        """`key_backend`: chain.keys (keystore, remote signer); `private_key`: a dev key, for tests."""
        if key_backend is None:
            key = private_key or (settings.signer_key.get_secret_value() if getattr(settings, "signer_key", None)
                                  else None)
            if not key:
                raise ValueError("BLOCKPROOF_SIGNER_KEY is not set: the signer needs the controller's private key")
            key_backend = sender.new_account(key)
        self.settings = settings
        self.engine = engine
        self.account = key_backend
        self.address = to_checksum_address(key_backend.address)
        self.vault = to_checksum_address(settings.vault_address)
        self.rpc = rpc or Rpc.for_settings(settings)
        self.stop_event = threading.Event()
        self.hold_reason = ""
        self._hold_checked = 0.0
        self._facts_at = 0.0
        self.base_fee = 0
        self.balance = 0
        self.chain_nonce = 0
        self.head = 0
        self.chain_id = 0
        self.batch_extension = False
        self.packed_rows = False  # the batch extension takes packed rows (issueCredentialBatchPacked)
        self._base_uris: dict[int, str] = {}
        self._batch_limit = 0  # sized from the block gas limit once it is known
        self.institution_holds: dict[str, tuple[str, float]] = {}  # institution → (reason, last checked)
        self._progress_at = time.monotonic()
        self._stall_alerted = True  # a stall alert left open by an earlier run is resolved on first progress
        self._stuck_alerted = True  # likewise a stuck alert, once nothing is stuck
        self.last_error = ""
        self.lease = None  # workers.signer.lease.Lease: checked in every transaction that signs
        self.on_lease_lost = lambda: None
        self.draining = False  # `blockproof signer --drain`: finish what is in flight, take nothing new, stop
        self.on_drained = lambda: None
        self.head_hash = ""
        self._mined_blocks: dict[int, tuple[int | None, str | None]] = {}  # tx id → (block, its hash) as seen
        self._anchor: decide.Anchor | None = None
        self._checked_head: decide.Head | None = None  # the head at the last reorg check
        self._watched = 0  # transactions the last track() looked at
        self._idle = False
        self.block_gas_limit = 0
        self.tip = int(settings.priority_fee_gwei * GWEI)  # from eth_feeHistory once it answers
        self._fee_history_at: float | None = None
        self.l1_oracle = False  # the chain has an OP-stack GasPriceOracle: L1 data fees count
        self.l1_wei_per_byte = 0.0
        self.batch_holds: dict[int, tuple[str, float]] = {}  # batch → (reason, last checked): its budget is spent
        self._budget_checked: set[int] = set()  # batches whose hold alert a budget check has looked at
        self._seen_blocks: deque[pacing.Block] = deque(maxlen=2 * pacing.WINDOW_BLOCKS)  # the latest blocks read
        self._pace: pacing.Pace | None = None
        self._pace_rows = 0  # at most this many credentials in the next batch (pacing's gas allowance); 0: no cap
        self._pace_facts: tuple[int, pacing.Deadline | None] = (BATCH_GAS_PER_CREDENTIAL, None)
        self._pace_facts_at = 0.0

    @property
    def policy(self) -> decide.Policy:
        return decide.Policy.from_settings(self.settings)

    # ---- start-up ------------------------------------------------------------------------
    def prepare(self) -> None:
        self.chain_id = self.rpc.chain_id()
        self.batch_extension = has_batch_extension(self.rpc, self.vault)
        self.packed_rows = self.batch_extension and has_packed_batch(self.rpc, self.vault)
        self.l1_oracle = self.rpc.call("eth_getCode", GAS_PRICE_ORACLE, "latest") not in ("0x", "0x0", "", None)
        with session_scope(self.engine) as s:
            state = nonce.load_state(s, self.rpc, self.address)
            self.hold_reason = state.hold_reason  # looked at again: lifted when its cause is gone
        log.info("signer %s ready (chain %s, batch extension: %s)", self.address, self.chain_id, self.batch_extension)

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        backoff = decide.FIRST_BACKOFF
        prepared = False
        while not self.stop_event.is_set():
            try:
                if not prepared:
                    self.prepare()
                    prepared = True
                worked = self.step()
                backoff = decide.FIRST_BACKOFF
            except Exception as exc:  # an unexpected answer must not end the one thread that owns the nonce
                then = decide.after_failure(self._failure(exc, backoff), backoff)
                if then.stop:
                    self.stop_event.set()
                    self.on_lease_lost()
                    return
                if then.watch_progress:
                    self._watch_progress()
                self.stop_event.wait(then.wait)
                backoff = then.next_backoff
                continue
            self._watch_progress()
            pause = decide.pause_after_step(worked=worked, poll_seconds=self.settings.signer_poll_seconds)
            if pause:
                self.stop_event.wait(pause)

    def _failure(self, exc: Exception, backoff: float) -> decide.Failure:
        """Name a failed step (and say it): the decision of what follows is decide.after_failure's."""
        if isinstance(exc, LeaseLost):  # another signer owns the key now: not one more signature from here
            log.error("%s", exc)
            return decide.Failure.LEASE_LOST
        if isinstance(exc, WrongChain):  # not one signature for, or one broadcast to, another chain
            self.last_error = str(exc)
            log.error("signer stopped sending: %s", exc)
            return decide.Failure.WRONG_CHAIN
        self.last_error = exc.__class__.__name__ + ": " + str(exc)[:200]
        if isinstance(exc, (RpcUnavailable, OperationalError)):
            log.warning("signer waiting %.1fs: %s", backoff, self.last_error)
            return decide.Failure.UNAVAILABLE
        log.error("signer step failed; trying again in %.1fs", backoff, exc_info=exc)
        return decide.Failure.UNEXPECTED

    def stop(self) -> None:
        self.stop_event.set()

    def step(self) -> bool:
        self._idle = self._nothing_to_watch()
        self.refresh_chain_facts(idle=self._idle)
        tracked = self.track()
        if self.draining:
            self._progressed()  # taking nothing new is the point, not a stall
            if self._drained():
                log.info("drained: nothing of %s is in flight any more; stopping", self.address)
                self.stop_event.set()
                self.on_drained()
            return tracked
        sent = self.fill()
        return tracked or sent

    def _drained(self) -> bool:
        with session_scope(self.engine) as s:
            return self.in_flight(s) == 0

    def _nothing_to_watch(self) -> bool:
        """No transaction of ours unmined or recently mined, no job ready: the chain can be asked less often
        (providers bill per call)."""
        if self._watched:
            return False
        with session_scope(self.engine) as s:
            state = s.get(SignerState, self.address)
            if state is None or state.next_nonce > self.chain_nonce:
                return False
            return not packer.any_ready(s)

    def refresh_chain_facts(self, force: bool = False, idle: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._facts_at < (self.settings.idle_interval(self.settings.signer_idle_refresh_seconds) if idle else 1.0):
            return
        calls = [
            ("eth_getBlockByNumber", ["latest", False]),
            ("eth_getBalance", [self.address, "latest"]),
            ("eth_getTransactionCount", [self.address, "latest"]),
        ]
        market = self._fee_history_at is None or now - self._fee_history_at >= self.settings.fee_history_seconds
        if market:
            calls.append(("eth_feeHistory", [hex(self.settings.fee_history_blocks), "latest",
                                             [self.settings.tip_percentile]]))
            if self.l1_oracle:
                calls.append(("eth_call", [{"to": GAS_PRICE_ORACLE, "data": get_l1_fee_data(L1_SAMPLE)}, "latest"]))
        replies = self.rpc.batch(calls)
        for reply in replies[:3]:
            if isinstance(reply, RpcError):
                raise reply
        block, balance, chain_nonce = replies[:3]
        if market:
            self._read_market(replies[3:])
            self._fee_history_at = now
        self.head = int(block["number"], 16)
        self.head_hash = block.get("hash") or ""
        self.base_fee = int(block.get("baseFeePerGas", "0x0"), 16)
        self.block_gas_limit = int(block.get("gasLimit", "0x0"), 16)
        if not self._seen_blocks or self._seen_blocks[-1].number < self.head:  # pacing reuses this read
            self._seen_blocks.append(pacing.Block(self.head, int(block.get("gasUsed", "0x0"), 16), self.block_gas_limit,
                                                  self.base_fee, int(block.get("timestamp", "0x0"), 16)))
        if not self._batch_limit:
            self._batch_limit = fees.batch_size_for(
                fees.tx_gas_budget(self.block_gas_limit, self.settings.max_tx_gas),
                FIRST_BATCH_GAS_PER_CREDENTIAL, most=self.settings.batch_size)
        self.balance = int(balance, 16)
        self.chain_nonce = int(chain_nonce, 16)
        self._facts_at = now
        with session_scope(self.engine) as s:
            state = s.get(SignerState, self.address)
            state.chain_nonce = self.chain_nonce
            state.balance_wei = str(self.balance)
            state.heartbeat_at = utcnow()
            s.add(state)
            self._check_low_balance(s)

    def _read_market(self, replies: list) -> None:
        """The tip from eth_feeHistory; the L1 data fee rate from the oracle. A node without eth_feeHistory
        leaves the tip at BLOCKPROOF_PRIORITY_FEE_GWEI."""
        settings = self.settings
        history = replies[0]
        if isinstance(history, RpcError):
            log.info("eth_feeHistory unanswered (%s): tip stays %s gwei", history.message[:80], self.tip / GWEI)
        else:
            tip = fees.tip_from_fee_history(history.get("reward") or [], floor=int(settings.tip_floor_gwei * GWEI),
                                            ceiling=int(settings.tip_ceiling_gwei * GWEI))
            if tip != self.tip:
                log.info("tip %s gwei (eth_feeHistory, percentile %s of %s blocks)", tip / GWEI,
                         settings.tip_percentile, settings.fee_history_blocks)
            self.tip = tip
        if len(replies) > 1 and not isinstance(replies[1], RpcError):
            self.l1_wei_per_byte = int(replies[1], 16) / len(L1_SAMPLE)

    def _l1_fee(self, size_bytes: int) -> int:
        return fees.l1_fee_estimate(wei_per_byte=self.l1_wei_per_byte, size_bytes=size_bytes) if self.l1_oracle else 0

    def _check_low_balance(self, s: Session) -> None:
        """Alert before the money runs out, not after: how many more credentials does the balance pay for?"""
        gas, size = ((BATCH_GAS_PER_CREDENTIAL, BATCH_BYTES_PER_CREDENTIAL) if self.batch_extension
                     else (SINGLE_GAS_PER_CREDENTIAL, SINGLE_BYTES_PER_CREDENTIAL))
        per_credential = max(gas * self._initial_fees()[0] + self._l1_fee(size), 1)
        left = self.balance // per_credential
        if left < self.settings.low_balance_issuances:
            raise_alert(s, "low_balance", self.address,
                        f"The signer {self.address} can pay for about {left:,} more credentials at current fees "
                        f"(balance {self.balance / 10**18:.6f} ETH). Fund it before it runs out.")
        else:
            resolve_alerts(s, "low_balance", self.address)

    # ---- receipts, resends, bumps --------------------------------------------------------
    def track(self) -> bool:
        """Record what the chain says about our transactions and keep the unmined ones moving. Receipts are
        asked only for nonces the chain has used; mined transactions are re-checked for reorgs by block
        headers, when the head changed (workers/signer/decide.py decides both)."""
        chain_nonce = self.chain_nonce
        filled = self.fill_gaps(chain_nonce)
        now = utcnow()
        with session_scope(self.engine) as s:
            txs = list(s.execute(
                select(ChainTransaction)
                .where(ChainTransaction.signer == self.address)
                .where((ChainTransaction.status == TxStatus.PENDING.value)
                       | ((ChainTransaction.status == TxStatus.MINED.value)
                          & (ChainTransaction.block_number >= self.head - self.settings.finality_depth)))
                .order_by(ChainTransaction.nonce)
            ).scalars().all())
            self._watched = len(txs)
            if not txs:
                self._clear_stuck_alert(s, [])
                return filled
            rows: dict[int, list[TxAttempt]] = {t.id: [] for t in txs}
            for attempt in s.execute(select(TxAttempt).where(TxAttempt.transaction_id.in_(list(rows)))
                                     .order_by(TxAttempt.id)).scalars():
                rows[attempt.transaction_id].append(attempt)
            views = {t.id: decide.TxView.of(t, rows[t.id]) for t in txs}
            lookups = set(decide.receipts_to_fetch(views.values(), chain_nonce=chain_nonce))
            lookups |= self._reorg_lookups(txs)
            receipts, unanswered = tracker.receipts(self.rpc, [a for i in sorted(lookups) for a in rows[i]])
            mined_in = {h: int(r["blockNumber"], 16) for h, r in receipts.items()}
            changed = False
            for tx in txs:
                if tx.status == TxStatus.MINED.value and tx.id not in lookups:
                    continue  # its block is still where we saw it
                action = decide.decide_tx(views[tx.id], mined_in, unanswered=tx.id in unanswered,
                                          chain_nonce=chain_nonce, base_fee=self.base_fee, now=now,
                                          policy=self.policy)
                changed |= self._act(s, tx, rows[tx.id], action, receipts)
            self._clear_stuck_alert(s, [views[t.id].attempts[-1].max_fee for t in txs
                                        if t.status == TxStatus.PENDING.value and views[t.id].attempts])
            watched = {t.id for t in txs if t.status == TxStatus.MINED.value}
            self._mined_blocks = {i: seen for i, seen in self._mined_blocks.items() if i in watched}
            return changed or filled

    def _reorg_lookups(self, txs: list[ChainTransaction]) -> set[int]:
        """The mined transactions whose receipts must be read again: none while the blocks we saw them in
        are still canonical (one header each, or only the anchor's), all of them when one is not."""
        head = decide.Head(self.head, self.head_hash) if self.head_hash else None
        mined = [decide.Mined(t.id, t.block_number, self._block_hash(t)) for t in txs if t.status == TxStatus.MINED.value]
        check = decide.reorg_check(mined, self._anchor, head=head, checked_head=self._checked_head)
        if head is None or head == self._checked_head:
            return set()
        seen = tracker.block_hashes(self.rpc, check.headers)
        if seen is None:
            return set()  # asked again next pass
        verdict = decide.after_reorg_check(check, seen, mined, self._anchor)
        self._anchor = verdict.anchor
        self._checked_head = head
        return set(verdict.receipts_for)

    def _block_hash(self, tx: ChainTransaction) -> str | None:
        number, block_hash = self._mined_blocks.get(tx.id, (None, None))
        return block_hash if number == tx.block_number else None

    def _act(self, s: Session, tx: ChainTransaction, attempts: list[TxAttempt], action: decide.TxAction,
             receipts: dict[str, dict]) -> bool:
        by_id = {a.id: a for a in attempts}
        if isinstance(action, decide.MarkMined):
            attempt = by_id[action.attempt_id]
            tracker.record_mined(s, tx, attempt, receipts[attempt.tx_hash], max_retries=self.settings.max_retries)
            self._mined_blocks[tx.id] = (tx.block_number, receipts[attempt.tx_hash].get("blockHash"))
        elif isinstance(action, decide.Moved):
            attempt = by_id[action.attempt_id]
            tracker.record_moved(s, tx, attempt, receipts[attempt.tx_hash])
            self._mined_blocks[tx.id] = (tx.block_number, receipts[attempt.tx_hash].get("blockHash"))
            self._anchor = None
        elif isinstance(action, decide.MarkUnmined):
            tracker.record_unmined(s, tx)
            self._mined_blocks.pop(tx.id, None)
            self._anchor = None
        elif isinstance(action, decide.Superseded):
            tracker.record_superseded(s, tx)
        elif isinstance(action, decide.Wait):
            if tx.status == TxStatus.MINED.value:  # seen where we left it: remember its block's hash
                receipt = receipts.get(tx.mined_hash or "")
                if receipt is not None:
                    self._mined_blocks[tx.id] = (tx.block_number, receipt.get("blockHash"))
            return False
        else:
            self._keep_moving(s, tx, attempts[-1], action)
        return True

    def _clear_stuck_alert(self, s: Session, pending_latest_fees: list[int]) -> None:
        if decide.stuck_alert_resolved(alerted=self._stuck_alerted, pending_latest_fees=pending_latest_fees,
                                       base_fee=self.base_fee):
            resolve_alerts(s, "stuck_transaction", self.address)
            self._stuck_alerted = False

    # ---- nonce gaps ----------------------------------------------------------------------
    def fill_gaps(self, chain_nonce: int) -> bool:
        """A nonce between the chain's and our next one with no live transaction blocks everything behind it:
        fill it with a no-op self-transfer, signed and written ahead like any other transaction."""
        with session_scope(self.engine) as s:
            state = s.get(SignerState, self.address)
            candidates = decide.gap_candidates(next_nonce=state.next_nonce if state else None, chain_nonce=chain_nonce)
            if not candidates:
                return False
            occupied = set(s.execute(select(ChainTransaction.nonce).where(
                ChainTransaction.signer == self.address, ChainTransaction.nonce >= chain_nonce,
                ChainTransaction.status.in_([TxStatus.PENDING.value, TxStatus.MINED.value, TxStatus.REVERTED.value]))).scalars())
            gap = decide.fill_gap(candidates, occupied)
            if gap is None:
                return False
            max_fee, tip = self._initial_fees()
            capped = fees.fees_under_cap(gas_limit=21_000, max_fee=max_fee, tip=tip, base_fee=self.base_fee,
                                         cap_wei=self.settings.max_tx_fee_wei)
            if capped is None:  # not even a no-op fits the per-transaction cap at today's base fee: wait
                log.warning("nonce gap %s waits: a no-op self-transfer would pass BLOCKPROOF_MAX_TX_FEE_WEI",
                            list(gap.nonces))
                return False
            max_fee, tip = capped
            self._check_lease(s)
            made = []
            for n in gap.nonces:
                tx = ChainTransaction(signer=self.address, nonce=n, kind="noop", to_address=self.address,
                                      data="0x", gas_limit=21_000, job_count=0)
                s.add(tx)
                s.flush()
                made.append((tx, sender.new_attempt(s, self.account, chain_id=self.chain_id, tx=tx,
                                                    max_fee=max_fee, tip=tip)))
            s.commit()  # write-ahead
            log.warning("nonce gap: %s had no transaction; filling with no-op self-transfers", list(gap.nonces))
            for tx, attempt in made:
                self._send(s, tx, attempt)
            return True

    def _initial_fees(self) -> tuple[int, int]:
        settings = self.settings
        return fees.initial_fees(base_fee=self.base_fee, tip=self.tip, base_fee_multiplier=settings.base_fee_multiplier,
                                 ceiling=int(settings.max_fee_gwei * GWEI))

    def _keep_moving(self, s: Session, tx: ChainTransaction, latest: TxAttempt, action: decide.TxAction) -> None:
        """Send the latest attempt again, or a replacement signed with the decided fees."""
        if isinstance(action, decide.Bump):
            self._check_lease(s)
            latest = sender.new_attempt(s, self.account, chain_id=self.chain_id, tx=tx, max_fee=action.max_fee,
                                        tip=action.tip)
            s.commit()  # write-ahead: the replacement is on disk before the node sees it
            log.info("nonce %s: replacement %s with max fee %s gwei", tx.nonce, latest.tx_hash, action.max_fee / GWEI)
        elif isinstance(action, decide.StuckAlert):
            self._stuck_alerted = True
            raise_alert(s, "stuck_transaction", self.address,
                        f"Transaction nonce {tx.nonce} is stuck: the base fee is above the fee ceiling "
                        f"({self.settings.max_fee_gwei} gwei). Raise BLOCKPROOF_MAX_FEE_GWEI or wait for fees to fall.")
        self._send(s, tx, latest)

    def _send(self, s: Session, tx: ChainTransaction, attempt: TxAttempt) -> SendOutcome:
        outcome, error = sender.broadcast(self.rpc, attempt.raw)
        return self._apply_outcome(s, tx, attempt, outcome, error)

    def _apply_outcome(self, s: Session, tx: ChainTransaction, attempt: TxAttempt, outcome: SendOutcome,
                       error: str) -> SendOutcome:
        record = decide.record_outcome(outcome, error, now=utcnow(), policy=self.policy,
                                       funds_hold=self.hold_reason.startswith("Insufficient funds"))
        tx.last_sent_at = record.last_sent_at
        if record.broadcast:
            move_attempt(attempt, AttemptStatus.BROADCAST)
            attempt.broadcast_count += 1
        if record.hold is decide.HoldChange.RESUME:
            self._clear_hold(s)
        elif record.hold is decide.HoldChange.HOLD:
            self._set_hold(s, f"Insufficient funds: the signer {self.address} cannot pay for its transactions "
                              f"(balance {self.balance / 10**18:.6f} ETH). Jobs wait; issuance resumes once funded.")
        if record.reread_chain:
            self._facts_at = 0.0
        attempt.last_error = record.last_error
        s.add(tx)
        s.add(attempt)
        return outcome

    # ---- new work ------------------------------------------------------------------------
    def in_flight(self, s: Session) -> int:
        return s.execute(select(func.count()).select_from(ChainTransaction).where(
            ChainTransaction.signer == self.address, ChainTransaction.status == TxStatus.PENDING.value)).scalar_one()

    def fill(self) -> bool:
        with session_scope(self.engine) as s:
            state = s.get(SignerState, self.address)
            if state.paused:
                self._progressed()  # an operator's pause is not a stall
                return False
            if self.hold_reason and time.monotonic() - self._hold_checked < HOLD_RECHECK_SECONDS:
                return False
            limit = self.settings.max_in_flight if self.batch_extension else self.settings.max_in_flight_single
            room = limit - self.in_flight(s)
            self._pace_rows = 0
            if room > 0:  # idle (nothing ready when the step began): one transaction at most, no pacing queries
                room = min(room, 1) if self._idle else min(room, self._paced_room(s))
        if room <= 0:
            self._progressed()  # waiting for our own transactions to be mined; the stuck alert watches those
        worked = False
        while room > 0 and not self.stop_event.is_set():
            sent = self._fill_once(room)
            if sent is None:
                break
            worked = True
            room -= sent
        return worked

    # ---- pacing ----------------------------------------------------------------------------
    def _paced_room(self, s: Session) -> int:
        """How many transactions pacing lets this pass send (workers/signer/pacing.py decides), and, when
        its allowance is less than a full transaction, the credentials the next batch may hold."""
        self._pace_rows = 0
        mode = pacing.PacingMode(self.settings.pacing)
        if mode is pacing.PacingMode.MAX:
            if self._pace is not pacing.Pace.MAX:
                log.info("pacing: BLOCKPROOF_PACING=max (every block as full as max_in_flight allows)")
                self._pace = pacing.Pace.MAX
            return 1 << 30
        blocks = list(self._seen_blocks)
        low = self.head - 2 * pacing.WINDOW_BLOCKS
        own = dict(s.execute(
            select(ChainTransaction.block_number, func.sum(ChainTransaction.gas_used))
            .where(ChainTransaction.signer == self.address, ChainTransaction.block_number > low,
                   ChainTransaction.status.in_([TxStatus.MINED.value, TxStatus.REVERTED.value]))
            .group_by(ChainTransaction.block_number)).all())
        pending = s.execute(select(func.coalesce(func.sum(ChainTransaction.gas_limit), 0)).where(
            ChainTransaction.signer == self.address, ChainTransaction.status == TxStatus.PENDING.value)).scalar_one()
        if time.monotonic() - self._pace_facts_at >= 1.0:  # these change slowly: looked up once a second
            per_credential = self._gas_per_credential(s)
            self._pace_facts = per_credential, self._deadline(s, per_credential)
            self._pace_facts_at = time.monotonic()
        per_credential, deadline = self._pace_facts
        decision = pacing.allowance(blocks=blocks, own_gas={int(n): int(g or 0) for n, g in own.items()},
                                    own_pending_gas=int(pending), mode=mode, now=utcnow(),
                                    block_seconds=pacing.block_seconds(blocks, default=1.0), deadline=deadline)
        if decision.pace is not self._pace:
            log.info("pacing: %s", decision.reason)
            self._pace = decision.pace
        if decision.gas is None:
            return 1 << 30
        # the next transaction's gas: a batch is sized to the gas budget, or fewer rows (BLOCKPROOF_BATCH_SIZE)
        per_tx = (min(fees.tx_gas_budget(self.block_gas_limit, self.settings.max_tx_gas),
                      max(self._batch_limit, 1) * per_credential) if self.batch_extension else SINGLE_GAS_PER_CREDENTIAL)
        count = decision.transactions(per_tx) or 0
        if count == 0 and self.batch_extension and decision.worth_a_smaller_transaction(per_tx):
            self._pace_rows = max(1, decision.gas // per_credential)  # a smaller batch that fits what is left
            return 1
        return count

    def _gas_per_credential(self, s: Session) -> int:
        """Gas a credential took in our recent batch transactions (an estimate before the first)."""
        if not self.batch_extension:
            return SINGLE_GAS_PER_CREDENTIAL
        used, jobs = s.execute(select(func.sum(ChainTransaction.gas_used), func.sum(ChainTransaction.job_count)).where(
            ChainTransaction.signer == self.address, ChainTransaction.block_number > self.head - 64,
            ChainTransaction.status == TxStatus.MINED.value, ChainTransaction.job_count > 0)).one()
        return int(used) // int(jobs) if used and jobs else BATCH_GAS_PER_CREDENTIAL

    def _deadline(self, s: Session, per_credential: int) -> pacing.Deadline | None:
        """The earliest deadline among batches with jobs not sent yet, and the gas those jobs need."""
        unsent = [JobState.VALIDATED.value, JobState.QUEUED.value, JobState.READY.value, JobState.RETRYING.value]
        query = (select(Batch.deadline, func.count(Job.id)).join(Job, Job.batch_id == Batch.id)
                 .where(Batch.deadline != None, Batch.paused == False, Job.state.in_(unsent)))  # noqa: E711,E712
        if self.batch_holds:  # a held batch's deadline must not speed up every other batch while it waits
            query = query.where(Batch.id.not_in(list(self.batch_holds)))
        if self.institution_holds:
            query = query.where(Job.institution.not_in(list(self.institution_holds)))
        row = s.execute(query.group_by(Batch.id, Batch.deadline).order_by(Batch.deadline).limit(1)).first()
        if row is None:
            return None
        at, count = row
        if at.tzinfo is None:
            at = at.replace(tzinfo=utcnow().tzinfo)
        return pacing.Deadline(at=at, gas_needed=int(count) * per_credential)

    def _base_uri(self, s: Session, batch_id: int) -> str:
        if batch_id not in self._base_uris:
            self._base_uris[batch_id] = s.get(Batch, batch_id).base_uri
        return self._base_uris[batch_id]

    def _held_institutions(self) -> set[str]:
        """Institutions whose jobs wait, except those due for a new look at their condition."""
        now = time.monotonic()
        return {i for i, (_, checked) in self.institution_holds.items() if now - checked < HOLD_RECHECK_SECONDS}

    def _fill_once(self, room: int) -> int | None:
        """Pick one group of ready jobs, pre-flight it, sign and send it. Returns transactions sent (0 when
        every job of the group failed pre-flight or its institution is on hold), or None when there is
        nothing to do or all issuance is held."""
        self._hold_checked = time.monotonic()
        with session_scope(self.engine) as s:
            size = self._batch_limit if self.batch_extension else min(room, self.settings.batch_size)
            if self._pace_rows:
                size = min(size, self._pace_rows)
            jobs = packer.next_ready_jobs(s, max(1, size), skip_institutions=self._held_institutions(),
                                          skip_batches=self._held_batches())
            if not jobs:
                self._progressed()  # nothing to do is not a stall
                return None
            base_uri = self._base_uri(s, jobs[0].batch_id)
            if self.batch_extension:
                calls = [packer.build_call(jobs, base_uri, batch_extension=True, packed=self.packed_rows)]
            else:
                calls = packer.single_calls(jobs, base_uri)
            try:
                sims = simulate_many(self.rpc, self.address, self.vault, [c.data for c in calls], with_gas=True)
            except RpcError as exc:  # bigger than the node will simulate (call gas cap, memory): halve it
                split = decide.split_too_big(batch_extension=self.batch_extension, rows=len(jobs),
                                             too_big=is_too_big(exc))
                if split is None:
                    raise
                self._batch_limit = split.limit
                log.info("pre-flight of %d rows too big for the node (%s): batches of %d from now on",
                         len(jobs), exc.message[:80], self._batch_limit)
                return self._fill_once(room)
            if self.batch_extension and sims[0].ok and self._resize_batch(len(jobs), sims[0].gas):
                return self._fill_once(room)
            condition = next((sim.revert for sim in sims if not sim.ok and sim.revert.is_condition), None)
            if condition and condition.holds_everything:
                self._set_hold(s, condition.message)
                return None
            if self.hold_reason and not self.hold_reason.startswith(SIGNER_HOLDS):
                self._clear_hold(s)
            institution = jobs[0].institution
            if condition:
                self._hold_institution(s, institution, condition.message)
                return 0
            if institution in self.institution_holds:
                self._release_institution(s, institution)
            ready: list[tuple[packer.Call, int]] = []
            for call, sim in zip(calls, sims):
                if sim.ok:
                    call = self._drop_skipped(s, call, sim.result, base_uri)
                    if call:
                        ready.append((call, sim.gas))
                elif len(call.jobs) == 1:
                    self._fail(s, call.jobs, sim.revert)
                else:
                    self._isolate(s, call.jobs, base_uri)
            if not ready:
                return 0
            return self._sign_and_send(s, ready)

    def _gas_limit(self, call: packer.Call, estimate: int) -> int:
        batch = call.kind.endswith("_batch")
        margin = self.settings.batch_gas_margin_percent if batch else self.settings.single_gas_margin_percent
        return fees.gas_limit(estimate, margin_percent=margin)

    def _resize_batch(self, size: int, estimate: int) -> bool:
        """Fit batches to the gas budget that tiles a block; True when this batch must be rebuilt smaller."""
        resize = decide.resize_batch(rows=size, estimate=estimate, limit=self._batch_limit,
                                     block_gas_limit=self.block_gas_limit, policy=self.policy,
                                     least_fee=self.base_fee + self.tip)
        self._batch_limit = resize.limit
        return resize.rebuild

    def _drop_skipped(self, s: Session, call: packer.Call, result: str | None, base_uri: str):
        """In a batch call the contract skips fingerprints already on chain: those jobs are not sent."""
        if call.kind != "issue_batch":
            return call
        skipped = set(skipped_rows(result))
        if not skipped:
            return call
        self._fail(s, [j for i, j in enumerate(call.jobs) if i in skipped], ALREADY_ISSUED)
        kept = [j for i, j in enumerate(call.jobs) if i not in skipped]
        return packer.build_call(kept, base_uri, batch_extension=True, packed=self.packed_rows) if kept else None

    def _isolate(self, s: Session, jobs: list[Job], base_uri: str) -> None:
        """A batch reverted for a row's sake: simulate each row alone and fail only the bad ones."""
        bad = refused_rows(self.rpc, self.address, self.vault, [Group(jobs)],
                           alone=lambda job: packer.build_call([job], base_uri, batch_extension=False).data)
        for job, revert in bad:
            self._fail(s, [job], revert)
        if not bad:  # the batch reverts but no row does alone: smaller batches from now on
            self._batch_limit = max(1, len(jobs) // 2)
        s.commit()

    def _fail(self, s: Session, jobs: list[Job], revert: Revert) -> None:
        if revert.code == ALREADY_ISSUED.code:
            already_issued.wait_for_event(s, jobs, max_checks=self.settings.max_retries)
            return
        transition_many(s, [j.id for j in jobs], JobState.FAILED, f"pre-flight: {revert.code}",
                        error_code=revert.code, error_message=revert.message, retryable=revert.retryable)
        self._progressed()

    def _sign_and_send(self, s: Session, ready: list[tuple[packer.Call, int]]) -> int | None:
        limits = [self._gas_limit(call, gas) for call, gas in ready]
        priced = self._price(s, ready, limits)
        if priced is None or isinstance(priced, int):
            return priced
        max_fee, tip = priced
        need = sum(limits) * max_fee + sum(self._l1_fee(len(call.data) // 2) for call, _ in ready)
        if need > self.balance:
            self._set_hold(s, f"Insufficient funds: the signer {self.address} has {self.balance / 10**18:.6f} ETH "
                              f"and the next transactions need up to {need / 10**18:.6f} ETH. Jobs wait; "
                              f"issuance resumes once it is funded.")
            return None
        ready, limits = self._claim(s, ready, limits)
        if not ready:
            s.commit()
            return 0
        self._check_lease(s)
        first = nonce.reserve(s, self.address, self.chain_nonce, count=len(ready))
        txs = [ChainTransaction(signer=self.address, nonce=first + i, kind=call.kind, to_address=self.vault,
                                data=call.data, gas_limit=limit, job_count=len(call.jobs),
                                batch_id=call.jobs[0].batch_id)
               for i, ((call, _), limit) in enumerate(zip(ready, limits))]
        s.add_all(txs)
        s.flush()
        attempts = sender.new_attempts(s, self.account, chain_id=self.chain_id, txs=txs, max_fee=max_fee, tip=tip)
        link_submitted(s, [(call.jobs, tx, attempt) for (call, _), tx, attempt in zip(ready, txs, attempts)])
        s.commit()  # write-ahead: every signed attempt is on disk before any is broadcast
        self._quote_l1_fees(txs, attempts)  # the oracle's eth_call carries the signed bytes: only after the commit
        outcomes = sender.broadcast_many(self.rpc, [a.raw for a in attempts])
        for (call, _), tx, attempt, (outcome, error) in zip(ready, txs, attempts, outcomes):
            sender.log_sent(tx, attempt, call.jobs, outcome)
            self._apply_outcome(s, tx, attempt, outcome, error)
        self._progressed()
        return len(txs)

    def _price(self, s: Session, ready: list[tuple[packer.Call, int]], limits: list[int]):
        """(maxFeePerGas, tip) for these first attempts under the per-transaction cap and the spend budgets; or
        what _sign_and_send returns instead: None when all issuance holds, 0 when only this batch waits or it is
        to be rebuilt smaller."""
        settings = self.settings
        max_fee, tip = self._initial_fees()
        largest = max(limits)
        capped = fees.fees_under_cap(gas_limit=largest, max_fee=max_fee, tip=tip, base_fee=self.base_fee,
                                     cap_wei=settings.max_tx_fee_wei)
        if capped is None:
            rows = len(ready[0][0].jobs)
            fitting = fees.rows_under_cap(rows=rows, gas_limit=largest, max_fee=max_fee, cap_wei=settings.max_tx_fee_wei)
            if len(ready) == 1 and ready[0][0].kind.endswith("_batch") and 1 <= fitting < rows:
                self._batch_limit = fitting
                log.info("a batch of %d rows may cost more than BLOCKPROOF_MAX_TX_FEE_WEI: batches of %d", rows, fitting)
                return 0
            self._set_hold(s, f"Per-transaction fee cap: a transaction of {largest:,} gas at the base fee of "
                              f"{self.base_fee / GWEI:.3f} gwei plus a {tip / GWEI:.3f} gwei tip may cost "
                              f"{largest * max_fee / 10**18:.6f} ETH, over BLOCKPROOF_MAX_TX_FEE_WEI "
                              f"({settings.max_tx_fee_wei / 10**18:.6f} ETH). Jobs wait until fees fall or the cap "
                              f"is raised.")
            return None
        max_fee, tip = capped
        batch_id = ready[0][0].jobs[0].batch_id
        if settings.fee_budget_daily_wei > 0 or settings.fee_budget_batch_wei > 0:
            next_cost = sum(worst_case(gas_limit=limit, max_fee=max_fee,
                                       l1_fee=self._l1_fee(len(call.data) // 2 + ENVELOPE_BYTES))
                            for (call, _), limit in zip(ready, limits))
            today = spend(s, since=utc_midnight(utcnow())) if settings.fee_budget_daily_wei > 0 else None
            batch = spend(s, batch_id=batch_id) if settings.fee_budget_batch_wei > 0 else None
            reason = fees.fee_budget_hold(
                spent_today_wei=today.total_wei if today else 0, spent_batch_wei=batch.total_wei if batch else 0,
                next_cost_wei=next_cost, daily_budget_wei=settings.fee_budget_daily_wei,
                batch_budget_wei=settings.fee_budget_batch_wei, batch_id=batch_id)
            if reason and reason.startswith("Daily"):
                self._set_hold(s, reason)
                return None
            if reason:
                self._hold_batch(s, batch_id, reason)
                return 0
        if self.hold_reason.startswith(FEE_HOLDS):
            self._clear_hold(s)
        if batch_id in self.batch_holds or batch_id not in self._budget_checked:
            self._release_batch(s, batch_id)
        return max_fee, tip

    def _quote_l1_fees(self, txs: list[ChainTransaction], attempts: list[TxAttempt]) -> None:
        """On an OP-stack chain, what the oracle says each signed transaction pays for its L1 data."""
        if not self.l1_oracle:
            return
        replies = self.rpc.batch([("eth_call", [{"to": GAS_PRICE_ORACLE, "data": get_l1_fee_data(
            bytes.fromhex(a.raw[2:]))}, "latest"]) for a in attempts])
        for tx, attempt, reply in zip(txs, attempts, replies):
            if isinstance(reply, RpcError):  # counted at the sample's rate rather than not at all
                tx.l1_fee_wei = self._l1_fee(len(attempt.raw) // 2 - 1)
            else:
                tx.l1_fee_wei = int(reply, 16)

    def _claim(self, s: Session, ready: list[tuple[packer.Call, int]], limits: list[int]):
        """Keep only the jobs still ready now; a call that lost some of its jobs is rebuilt without them (its
        gas limit, sized for more rows, stays an upper bound), one that lost all of them is dropped."""
        claimed = claim_ready(s, [j.id for call, _ in ready for j in call.jobs])
        kept, kept_limits, lost = [], [], 0
        for (call, gas), limit in zip(ready, limits):
            mine = [j for j in call.jobs if j.id in claimed]
            lost += len(call.jobs) - len(mine)
            if len(mine) < len(call.jobs):
                if not mine or not call.kind.endswith("_batch"):
                    continue
                call = packer.build_call(mine, self._base_uri(s, mine[0].batch_id), batch_extension=True,
                                         packed=self.packed_rows)
            kept.append((call, gas))
            kept_limits.append(limit)
        if lost:
            log.warning("%d job(s) were taken by another process (a second signer on this key, or cancelled) "
                        "between pre-flight and signing; they are not signed here", lost)
        return kept, kept_limits

    # ---- holds ---------------------------------------------------------------------------
    def _set_hold(self, s: Session, reason: str) -> None:
        if reason != self.hold_reason:
            log.warning("issuance on hold: %s", reason)
            raise_alert(s, "on_hold", self.address, reason)
        self.hold_reason = reason
        state = s.get(SignerState, self.address)
        state.hold_reason = reason
        s.add(state)

    def _hold_institution(self, s: Session, institution: str, reason: str) -> None:
        """Only this institution's jobs wait; every other institution's go on."""
        if self.institution_holds.get(institution, ("",))[0] != reason:
            log.warning("issuance for institution %s on hold: %s", institution, reason)
        self.institution_holds[institution] = (reason, time.monotonic())
        raise_alert(s, "institution_on_hold", institution, reason)

    def _held_batches(self) -> set[int]:
        now = time.monotonic()
        return {b for b, (_, checked) in self.batch_holds.items() if now - checked < HOLD_RECHECK_SECONDS}

    def _hold_batch(self, s: Session, batch_id: int, reason: str) -> None:
        """Only this batch's jobs wait (its fee budget is spent); every other batch's go on."""
        if self.batch_holds.get(batch_id, ("",))[0] != reason:
            log.warning("batch %s on hold: %s", batch_id, reason)
        self.batch_holds[batch_id] = (reason, time.monotonic())
        self._budget_checked.add(batch_id)
        raise_alert(s, "batch_on_hold", str(batch_id), reason)
        self._progressed()  # a spent budget is not a stall

    def _release_batch(self, s: Session, batch_id: int) -> None:
        """Its budget fits again (raised, or a pending transaction cost less than its worst case)."""
        held = self.batch_holds.pop(batch_id, None)
        if held:
            log.info("batch %s resumes (was: %s)", batch_id, held[0])
        self._budget_checked.add(batch_id)
        resolve_alerts(s, "batch_on_hold", str(batch_id))

    def _release_institution(self, s: Session, institution: str) -> None:
        reason, _ = self.institution_holds.pop(institution)
        log.info("issuance for institution %s resumes (was: %s)", institution, reason)
        resolve_alerts(s, "institution_on_hold", institution)

    def _check_lease(self, s: Session) -> None:
        if self.lease is not None:
            self.lease.check(s)

    # ---- progress ------------------------------------------------------------------------
    def _progressed(self) -> None:
        self._progress_at = time.monotonic()

    def _watch_progress(self) -> None:
        """Alert when ready work has waited too long without a transaction sent or a job settled, and
        nothing (an operator's pause, a hold) says why; the alert clears with the next progress."""
        now = time.monotonic()
        threshold = self.settings.stall_alert_minutes * 60
        quiet = now - self._progress_at
        if quiet < threshold and not self._stall_alerted:
            return
        try:
            with session_scope(self.engine) as s:
                ready = packer.count_ready(s)
                if stall.is_stalled(ready_jobs=ready, on_hold=bool(self.hold_reason), quiet_seconds=quiet,
                                    threshold_seconds=threshold):
                    raise_alert(s, "signer_stalled", self.address,
                                f"The signer {self.address} has sent nothing for {quiet / 60:.0f} minutes although "
                                f"{ready:,} jobs are ready. Last error: {self.last_error or 'none'}. "
                                f"See the signer's log.")
                    self._stall_alerted = True
                elif self._stall_alerted and quiet < threshold:
                    resolve_alerts(s, "signer_stalled", self.address)
                    self._stall_alerted = False
        except OperationalError:
            log.warning("could not check the signer's progress: database unavailable")

    def _clear_hold(self, s: Session) -> None:
        log.info("issuance resumes (was: %s)", self.hold_reason)
        self.hold_reason = ""
        state = s.get(SignerState, self.address)
        state.hold_reason = ""
        s.add(state)
        resolve_alerts(s, "on_hold", self.address)
