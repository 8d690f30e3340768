"""The event consumer: follows CredentialIssued / CredentialRevoked from a checkpoint, stores them idempotently,
detects reorgs by block hash and parent hash, and reconciles jobs with what the canonical chain says.

Every poll:
1. the checkpoint block's hash is compared with the chain; if it changed, the common ancestor is found from the
   stored block hashes, everything after it is forgotten (events, hashes, job states) and read again. A reorg
   deeper than `finality_depth` halts the consumer with a `deep_reorg` alert instead; nothing is rewritten.
2. the next range is read with eth_getLogs (chunked; halves on range errors, grows back when calm), then the
   headers of the blocks involved are fetched in one batch and checked: each log's block hash, the first new
   block's parent hash against the checkpoint, the parent links near the head, and the head itself unchanged.
   A mismatch means the chain moved mid-read: nothing is written and the range is read again.
3. events, block hashes, job updates and the checkpoint are written in ONE database transaction.
"""
from __future__ import annotations

import logging
import threading
import time

from eth_utils import to_checksum_address
from sqlalchemy import delete, select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from blockproof.errors import RpcError, RpcUnavailable
from chain.rpc import Rpc, WrongChain
from blockproof.settings import Settings
from models.alerts import raise_alert, resolve_alerts
from models.db import session_scope
from models.states import utcnow
from models.states import JobState
from models.tables import ConsumerCheckpoint, CredentialEvent, IndexedBlock, Job, RevocationEvent
from workers.consumer import finality, reconcile
from workers.consumer.decode import rows_from_logs
from workers.consumer.logs import ChunkSizer, fetch_range
from workers.consumer.store import insert_ignoring_duplicates, upsert

log = logging.getLogger("blockproof.consumer")
CHECKPOINT = "vault-events"
RECONCILE_EVERY_SECONDS = 5.0
HEADER_BATCH = 200


class DeepReorg(Exception):
    """The chain replaced blocks deeper than the finality depth: stop and ask a person."""


class ChainMoved(Exception):
    """The chain changed while a range was being read; the range is read again."""


class Follower:
    def __init__(self, settings: Settings, engine, rpc: Rpc | None = None):
        self.settings = settings
        self.engine = engine
        self.rpc = rpc or Rpc.for_settings(settings)
        self.vault = to_checksum_address(settings.vault_address)
        self.sizer = ChunkSizer(settings.getlogs_chunk, max(settings.getlogs_chunk, settings.getlogs_chunk_max))
        self.stop_event = threading.Event()
        self._reconciled_at = 0.0
        self.tagged_block: int | None = None  # the node's safe / finalized block (BLOCKPROOF_FINALITY)
        self._suspect = True  # the checkpoint block is looked up before the next range (start-up, chain moved)

    def checkpoint(self, s: Session) -> ConsumerCheckpoint:
        cp = s.get(ConsumerCheckpoint, CHECKPOINT)
        if cp is None:
            cp = ConsumerCheckpoint(name=CHECKPOINT, block_number=self.settings.vault_deploy_block - 1)
            s.add(cp)
            s.flush()
        return cp

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                caught_up = self.step()
                backoff = 0.5
            except WrongChain as exc:  # nothing read from another chain is stored
                log.error("consumer stopped reading: %s", exc)
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            except (RpcUnavailable, OperationalError, RpcError) as exc:
                log.warning("consumer waiting %.1fs: %s", backoff, str(exc)[:200])
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if caught_up:
                self._wait_for_work()

    def stop(self) -> None:
        self.stop_event.set()

    def _wait_for_work(self) -> None:
        """Caught up: read again after consumer_poll_seconds while jobs wait for the chain, otherwise after
        consumer_idle_poll_seconds (or as soon as a job is sent)."""
        idle_until = time.monotonic() + self.settings.idle_interval(self.settings.consumer_idle_poll_seconds)
        while not self.stop_event.wait(self.settings.consumer_poll_seconds):
            if time.monotonic() >= idle_until:
                return
            try:
                if self._jobs_wait_for_chain():
                    return
            except OperationalError:
                return

    def _jobs_wait_for_chain(self) -> bool:
        with Session(self.engine) as s:
            return s.execute(select(Job.id).where(Job.state.in_([JobState.SUBMITTED.value, JobState.MINED.value]))
                             .limit(1)).first() is not None

    def catch_up(self, max_steps: int = 100_000) -> None:
        """Step until the checkpoint reaches the head (or the consumer halts). For tools and tests."""
        for _ in range(max_steps):
            if self.step():
                return
        raise RuntimeError(f"not caught up after {max_steps} steps")

    def step(self) -> bool:
        """Ingest one range. Returns True when caught up with the head (or halted)."""
        latest = self._head()
        head = int(latest["number"], 16)
        with session_scope(self.engine) as s:
            cp = self.checkpoint(s)
            if cp.halted_reason:
                return True
            try:
                self._check_reorg(s, cp, latest)
            except DeepReorg as exc:
                cp.halted_reason = str(exc)
                cp.updated_at = utcnow()
                raise_alert(s, "deep_reorg", CHECKPOINT, str(exc))
                log.error("%s", exc)
                return True
            cp.head_block = head
            start, known_hash = cp.block_number + 1, cp.block_hash
            if start > head:
                self._confirm(s, cp, head)
                cp.updated_at = utcnow()
                self._maybe_reconcile(s, head)
                return True
        stop, logs = fetch_range(self.rpc, self.vault, start, head, self.sizer)
        dense = bool(logs) or self._jobs_wait_for_chain()
        try:
            headers = self._checked_headers(start, stop, latest, known_hash, logs, dense=dense)
        except ChainMoved as exc:
            log.info("chain moved while reading blocks %s-%s (%s); reading again", start, stop, exc)
            self._suspect = True
            return False
        issued, revoked = rows_from_logs(logs)
        with session_scope(self.engine) as s:
            cp = self.checkpoint(s)
            if cp.block_number != start - 1 or cp.halted_reason:
                return False  # moved by a resync meanwhile
            self._write(s, cp, issued, revoked, headers, stop, head)
            if stop >= head:
                self._maybe_reconcile(s, head)
        return stop >= head

    # ---- finality ------------------------------------------------------------------------
    def _head(self) -> dict:
        """The latest block; with BLOCKPROOF_FINALITY=safe|finalized also that block's number, in the same
        HTTP request."""
        tag = finality.tag_for(self.settings.finality)
        if tag is None:
            return self.rpc.get_block("latest")
        latest, tagged = self.rpc.batch([("eth_getBlockByNumber", ["latest", False]),
                                         ("eth_getBlockByNumber", [tag, False])])
        for reply in (latest, tagged):
            if isinstance(reply, RpcError):
                raise reply
        self.tagged_block = int(tagged["number"], 16) if tagged else None
        return latest

    def _confirm(self, s: Session, cp: ConsumerCheckpoint, head: int) -> None:
        mode = self.settings.finality
        through = finality.confirmable_through(mode, head, self.settings.confirmations, self.tagged_block)
        reconcile.confirm_deep_enough(s, cp, head, self.settings.confirmations, through=through, mode=mode)

    # ---- reading -------------------------------------------------------------------------
    def _headers(self, numbers: set[int]) -> dict[int, dict]:
        ordered = sorted(numbers)
        out: dict[int, dict] = {}
        for first in range(0, len(ordered), HEADER_BATCH):
            chunk = ordered[first : first + HEADER_BATCH]
            replies = self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in chunk])
            for number, reply in zip(chunk, replies):
                if isinstance(reply, RpcError):
                    raise reply
                if reply is None:
                    raise ChainMoved(f"block {number} is gone")
                out[number] = reply
        return out

    def _checked_headers(self, start: int, stop: int, latest: dict, known_hash: str,
                         logs: list[dict], *, dense: bool = True) -> dict[int, dict]:
        """Headers of the blocks to remember, each verified against the logs and its neighbours. Not dense
        (no event in the range, no job waiting): only the range's ends, enough to find a common ancestor
        later at most one range too low. The head read before the logs stands for itself (a block that
        changed since shows in the logs' block hashes and the parent links); a head beyond the range is read
        again to see that it did not change."""
        head, head_hash = int(latest["number"], 16), latest["hash"]
        window_from = max(start, head - self.settings.finality_depth - 1) if dense else stop
        wanted = {start, stop, head} | {int(e["blockNumber"], 16) for e in logs} | set(range(window_from, stop + 1))
        headers = self._headers(wanted - {head} if stop == head else wanted)
        headers.setdefault(head, latest)
        if headers[head]["hash"] != head_hash:
            raise ChainMoved(f"head block {head} changed")
        # block `start` builds on the checkpoint block: then that block is still canonical too
        if known_hash and start > 0 and headers[start]["parentHash"] != known_hash:
            raise ChainMoved(f"block {start}'s parent is not the checkpoint block")
        for entry in logs:
            if headers[int(entry["blockNumber"], 16)]["hash"] != entry["blockHash"]:
                raise ChainMoved(f"a log's block {int(entry['blockNumber'], 16)} was replaced")
        for number in range(window_from + 1, stop + 1):
            if headers[number]["parentHash"] != headers[number - 1]["hash"]:
                raise ChainMoved(f"block {number} does not follow block {number - 1}")
        return {n: h for n, h in headers.items() if start <= n <= stop}

    # ---- writing -------------------------------------------------------------------------
    def _write(self, s: Session, cp: ConsumerCheckpoint, issued: list[dict], revoked: list[dict],
               headers: dict[int, dict], stop: int, head: int) -> None:
        insert_ignoring_duplicates(s, CredentialEvent, issued, ["tx_hash", "log_index"])
        insert_ignoring_duplicates(s, RevocationEvent, revoked, ["tx_hash", "log_index"])
        upsert(s, IndexedBlock, [{"number": n, "hash": h["hash"], "parent_hash": h["parentHash"]}
                                 for n, h in sorted(headers.items())], ["number"])
        if issued:
            reconcile.attach_issued(s, issued)
        if revoked:
            reconcile.attach_revoked(s, revoked)
        keep = max(4 * self.settings.finality_depth, 256)
        s.execute(delete(IndexedBlock).where(IndexedBlock.number < stop - keep))
        cp.block_number = stop
        cp.block_hash = headers[stop]["hash"]
        cp.getlogs_chunk = self.sizer.size
        cp.head_block = head
        cp.updated_at = utcnow()
        self._confirm(s, cp, head)

    # ---- reorgs --------------------------------------------------------------------------
    def _check_reorg(self, s: Session, cp: ConsumerCheckpoint, latest: dict) -> None:
        head = int(latest["number"], 16)
        look = finality.checkpoint_lookup(has_checkpoint=cp.block_number >= 0 and bool(cp.block_hash),
                                          suspect=self._suspect, checkpoint=cp.block_number, head=head)
        if look is finality.Lookup.NONE:
            return
        block = latest if look is finality.Lookup.HEAD else self.rpc.get_block(cp.block_number)
        if block is not None and block["hash"] == cp.block_hash:
            self._suspect = False
            return
        ancestor = self._common_ancestor(s, cp.block_number)
        # how deep the first replaced block was in the chain we had seen
        depth = max(cp.block_number, cp.head_block) - ancestor
        if depth > self.settings.finality_depth:
            raise DeepReorg(
                f"Reorg replaced blocks after {ancestor}: {depth} blocks deep, deeper than the finality depth "
                f"({self.settings.finality_depth}). The consumer stopped; nothing was rewritten. Check the node "
                f"and the chain, then run `blockproof consumer --resync-from {ancestor}`.")
        forgotten = reconcile.forget_after(s, ancestor)
        log.warning("reorg: blocks after %s replaced (%s deep); %s", ancestor, depth, forgotten)
        cp.block_number = ancestor
        cp.confirmed_through = min(cp.confirmed_through, ancestor)
        known = s.get(IndexedBlock, ancestor)
        cp.block_hash = known.hash if known else ""

    def _common_ancestor(self, s: Session, below: int) -> int:
        """The highest stored block that is still canonical."""
        offset = 0
        while True:
            page = s.execute(select(IndexedBlock).where(IndexedBlock.number <= below)
                             .order_by(IndexedBlock.number.desc()).offset(offset).limit(HEADER_BATCH)).scalars().all()
            if not page:
                return self.settings.vault_deploy_block - 1
            replies = self.rpc.batch([("eth_getBlockByNumber", [hex(b.number), False]) for b in page])
            for stored, reply in zip(page, replies):
                if isinstance(reply, RpcError):
                    raise reply
                if reply is not None and reply["hash"] == stored.hash:
                    return stored.number
            offset += len(page)

    # ---- reconciliation ------------------------------------------------------------------
    def _maybe_reconcile(self, s: Session, head: int) -> None:
        if time.monotonic() - self._reconciled_at < RECONCILE_EVERY_SECONDS:
            return
        self._reconciled_at = time.monotonic()
        reconcile.confirm_late_matches(s, self.checkpoint(s))
        found = reconcile.report(s, head, self.settings.missing_event_blocks, limit=20)
        if found["mined_without_event_count"]:
            raise_alert(s, "missing_event", CHECKPOINT,
                        f"{found['mined_without_event_count']} job(s) were mined more than "
                        f"{self.settings.missing_event_blocks} blocks ago but their event is not on the canonical "
                        f"chain (first: job {found['mined_without_event'][0]['id']}). See `blockproof status --json`.")
        else:
            resolve_alerts(s, "missing_event", CHECKPOINT)
        if found["events_without_job_count"]:
            raise_alert(s, "unmatched_events", CHECKPOINT,
                        f"{found['events_without_job_count']} credential(s) on chain match no job here (issued "
                        f"with this institution's key elsewhere, or before this database existed). "
                        f"See `blockproof status --json`.")
        else:
            resolve_alerts(s, "unmatched_events", CHECKPOINT)


def resync_from(engine, block: int) -> dict:
    """Operator recovery after a deep-reorg alert: forget everything after `block` and ingest again.
    Never moves the checkpoint forward (that would skip events)."""
    with session_scope(engine) as s:
        cp = s.get(ConsumerCheckpoint, CHECKPOINT)
        if cp is not None and block > cp.block_number:
            block = cp.block_number
        forgotten = reconcile.forget_after(s, block)
        if cp is not None:
            cp.block_number = block
            cp.confirmed_through = min(cp.confirmed_through, block)
            cp.block_hash = ""
            cp.halted_reason = ""
            cp.updated_at = utcnow()
            s.add(cp)
        resolve_alerts(s, "deep_reorg", CHECKPOINT)
    return forgotten
