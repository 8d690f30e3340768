"""The event consumer: follows CredentialIssued / CredentialRevoked from a checkpoint, detects
reorgs by block hash, stores events idempotently and reconciles jobs."""
from __future__ import annotations

import logging
import threading

from sqlalchemy import delete, select
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from blockproof import vault
from blockproof.errors import RpcError, RpcUnavailable
from blockproof.rpc import Rpc
from blockproof.settings import Settings
from eth_utils import to_checksum_address
from models.alerts import raise_alert
from models.db import session_scope
from models.states import utcnow
from models.tables import ConsumerCheckpoint, CredentialEvent, IndexedBlock, RevocationEvent
from workers.consumer import reconcile
from workers.consumer.logs import ChunkSizer, fetch_range
from workers.consumer.store import insert_ignoring_duplicates

log = logging.getLogger("blockproof.consumer")
CHECKPOINT = "vault-events"


class DeepReorg(Exception):
    """The chain replaced blocks deeper than the finality depth: stop and ask a person."""


class Follower:
    def __init__(self, settings: Settings, engine, rpc: Rpc | None = None):
        self.settings = settings
        self.engine = engine
        self.rpc = rpc or Rpc(settings.rpc_url, settings.rpc_timeout_seconds)
        self.vault = to_checksum_address(settings.vault_address)
        self.sizer = ChunkSizer(settings.getlogs_chunk, settings.getlogs_chunk_max)
        self.stop_event = threading.Event()

    def checkpoint(self, s: Session) -> ConsumerCheckpoint:
        cp = s.get(ConsumerCheckpoint, CHECKPOINT)
        if cp is None:
            cp = ConsumerCheckpoint(name=CHECKPOINT, block_number=self.settings.vault_deploy_block - 1)
            s.add(cp)
            s.flush()
        return cp

    def run(self) -> None:
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                caught_up = self.step()
                backoff = 0.5
            except (RpcUnavailable, OperationalError, RpcError) as exc:
                log.warning("consumer waiting %.1fs: %s", backoff, str(exc)[:200])
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if caught_up:
                self.stop_event.wait(self.settings.consumer_poll_seconds)

    def stop(self) -> None:
        self.stop_event.set()

    def step(self) -> bool:
        """Ingest one range. Returns True when caught up with the head (or halted)."""
        head = self.rpc.block_number()
        with session_scope(self.engine) as s:
            cp = self.checkpoint(s)
            if cp.halted_reason:
                return True
            try:
                self._check_reorg(s, cp)
            except DeepReorg as exc:
                cp.halted_reason = str(exc)
                raise_alert(s, "deep_reorg", CHECKPOINT, str(exc))
                log.error("%s", exc)
                return True
            cp.head_block = head
            start = cp.block_number + 1
            if start > head:
                reconcile.confirm_deep_enough(s, head, self.settings.confirmations)
                cp.updated_at = utcnow()
                return True
        end_before = self.rpc.get_block(min(head, start + self.sizer.size - 1))
        stop, logs = fetch_range(self.rpc, self.vault, start, head, self.sizer)
        end_block = self.rpc.get_block(stop)
        if end_block is None or (stop == int(end_before["number"], 16) and end_block["hash"] != end_before["hash"]):
            return False  # the chain moved under us mid-read; read the range again
        with session_scope(self.engine) as s:
            self._store(s, logs, end_block)
            cp = self.checkpoint(s)
            cp.block_number = stop
            cp.block_hash = end_block["hash"]
            cp.getlogs_chunk = self.sizer.size
            cp.updated_at = utcnow()
            reconcile.confirm_deep_enough(s, head, self.settings.confirmations)
        return stop >= head

    def _store(self, s: Session, logs: list[dict], end_block: dict) -> None:
        issued, revoked, blocks = [], [], {}
        for entry in logs:
            if entry.get("removed"):
                continue
            number = int(entry["blockNumber"], 16)
            base = {"tx_hash": entry["transactionHash"], "log_index": int(entry["logIndex"], 16),
                    "block_number": number, "block_hash": entry["blockHash"]}
            blocks[number] = (entry["blockHash"], "")
            if entry["topics"][0] == vault.ISSUED_TOPIC:
                issued.append(base | vault.decode_issued(entry))
            elif entry["topics"][0] == vault.REVOKED_TOPIC:
                revoked.append(base | vault.decode_revoked(entry))
        blocks[int(end_block["number"], 16)] = (end_block["hash"], end_block["parentHash"])
        insert_ignoring_duplicates(s, CredentialEvent, issued, ["tx_hash", "log_index"])
        insert_ignoring_duplicates(s, RevocationEvent, revoked, ["tx_hash", "log_index"])
        for number, (block_hash, parent) in blocks.items():
            s.merge(IndexedBlock(number=number, hash=block_hash, parent_hash=parent))
        if issued:
            reconcile.attach_issued(s, issued)
        if revoked:
            reconcile.attach_revoked(s, revoked)
        floor = int(end_block["number"], 16) - 4 * max(self.settings.finality_depth, 64)
        s.execute(delete(IndexedBlock).where(IndexedBlock.number < floor))

    def _check_reorg(self, s: Session, cp: ConsumerCheckpoint) -> None:
        if cp.block_number < 0 or not cp.block_hash:
            return
        block = self.rpc.get_block(cp.block_number)
        if block is not None and block["hash"] == cp.block_hash:
            return
        ancestor = self._common_ancestor(s, cp.block_number)
        depth = cp.block_number - ancestor
        if depth > self.settings.finality_depth:
            raise DeepReorg(
                f"Reorg of {depth} blocks below block {cp.block_number}, deeper than the finality depth "
                f"({self.settings.finality_depth}). The consumer stopped; nothing was rewritten. "
                f"Check the node, then run `blockproof consumer --resync-from {ancestor}`.")
        log.warning("reorg: blocks after %s replaced (depth %s); re-ingesting", ancestor, depth)
        s.execute(delete(CredentialEvent).where(CredentialEvent.block_number > ancestor))
        s.execute(delete(RevocationEvent).where(RevocationEvent.block_number > ancestor))
        s.execute(delete(IndexedBlock).where(IndexedBlock.number > ancestor))
        reconcile.roll_back_after(s, ancestor)
        self._rebuild_revocations(s)
        cp.block_number = ancestor
        known = s.get(IndexedBlock, ancestor)
        cp.block_hash = known.hash if known else ""

    def _common_ancestor(self, s: Session, below: int) -> int:
        stored = s.execute(select(IndexedBlock).where(IndexedBlock.number <= below)
                           .order_by(IndexedBlock.number.desc())).scalars()
        for block in stored:
            chain_block = self.rpc.get_block(block.number)
            if chain_block is not None and chain_block["hash"] == block.hash:
                return block.number
        return self.settings.vault_deploy_block - 1

    def _rebuild_revocations(self, s: Session) -> None:
        from sqlalchemy import update

        s.execute(update(CredentialEvent).values(revoked=False, revoked_at=None, revocation_reason_hash=None))
        rows = s.execute(select(RevocationEvent)).scalars().all()
        reconcile.attach_revoked(s, [{"credential_id": r.credential_id, "revoked_at": r.revoked_at,
                                      "reason_hash": r.reason_hash, "tx_hash": r.tx_hash,
                                      "block_number": r.block_number} for r in rows])


def resync_from(engine, block: int) -> None:
    """Operator recovery after a deep-reorg alert: forget everything after `block` and ingest again."""
    with session_scope(engine) as s:
        cp = s.get(ConsumerCheckpoint, CHECKPOINT)
        s.execute(delete(CredentialEvent).where(CredentialEvent.block_number > block))
        s.execute(delete(RevocationEvent).where(RevocationEvent.block_number > block))
        s.execute(delete(IndexedBlock).where(IndexedBlock.number > block))
        reconcile.roll_back_after(s, block)
        if cp is not None:
            cp.block_number = block
            cp.block_hash = ""
            cp.halted_reason = ""
            s.add(cp)
        from models.alerts import resolve_alerts

        resolve_alerts(s, "deep_reorg", CHECKPOINT)
