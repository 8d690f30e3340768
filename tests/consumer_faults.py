"""Helpers for the event consumer's tests: issuing straight to the chain with the controller key (no queue,
no signer), the truth from a fresh full eth_getLogs scan, the consumer's tables, and a loopback JSON-RPC
proxy that refuses large eth_getLogs ranges the way hosted providers do (-32005)."""
from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from eth_account import Account
from sqlalchemy import select
from sqlmodel import Session

from chain import vault
from chain.rpc import Rpc
from blockproof.settings import Settings
from models.tables import CredentialEvent, RevocationEvent

LIMIT_MESSAGE = "query returned more than 10000 results. Try with this block range [0x1, 0x2]."


@dataclass
class ChainWriter:
    """Sends issuances and revocations signed by the institution's controller key, directly."""

    rpc: Rpc
    vault_address: str
    institution: str
    key: str = field(repr=False)
    chain_id: int = 31337

    def __post_init__(self):
        self.account = Account.from_key(self.key)

    def _send(self, data: str) -> str:
        sender = self.account.address
        gas = int(self.rpc.call("eth_estimateGas", {"from": sender, "to": self.vault_address, "data": data}), 16)
        tx = {"to": self.vault_address, "data": data, "gas": gas + gas // 5, "chainId": self.chain_id,
              "nonce": self.rpc.nonce(sender, "pending"), "maxFeePerGas": 100 * 10**9,
              "maxPriorityFeePerGas": 10**9, "value": 0, "type": 2}
        raw = "0x" + bytes(self.account.sign_transaction(tx).raw_transaction).hex()
        tx_hash = self.rpc.call("eth_sendRawTransaction", raw)
        # Anvil automines asynchronously (notably right after evm_revert): wait until it is in a block
        deadline = time.monotonic() + 30
        while self.receipt(tx_hash) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"transaction {tx_hash} was not mined")
            time.sleep(0.02)
        return tx_hash

    def issue(self, count: int, *, fingerprints: list[bytes] | None = None) -> tuple[str, list[str]]:
        """One issueCredentialBatch of `count` credentials; returns (tx hash, fingerprints as 0x-hex)."""
        fps = fingerprints or [os.urandom(32) for _ in range(count)]
        items = [vault.IssueItem("0x" + os.urandom(20).hex(), fp, "", "", 0) for fp in fps]
        tx_hash = self._send(vault.issue_batch(self.institution, "", items))
        return tx_hash, ["0x" + fp.hex() for fp in fps]

    def revoke(self, credential_id: int, reason: str = "test") -> str:
        return self._send(vault.revoke_single(credential_id, vault.reason_hash(reason)))

    def receipt(self, tx_hash: str) -> dict | None:
        return self.rpc.call("eth_getTransactionReceipt", tx_hash)


def chain_truth(rpc: Rpc, vault_address: str, from_block: int) -> tuple[set, set]:
    """(issued, revoked) from one fresh full eth_getLogs scan of the canonical chain."""
    logs = rpc.call("eth_getLogs", {"address": vault_address, "fromBlock": hex(from_block), "toBlock": "latest",
                                    "topics": [[vault.ISSUED_TOPIC, vault.REVOKED_TOPIC]]})
    issued, revoked = set(), set()
    for e in logs:
        key = (e["transactionHash"], int(e["logIndex"], 16), int(e["blockNumber"], 16), e["blockHash"])
        if e["topics"][0] == vault.ISSUED_TOPIC:
            d = vault.decode_issued(e)
            issued.add(key + (d["credential_id"], d["fingerprint"], d["student_wallet"], d["institution"]))
        else:
            d = vault.decode_revoked(e)
            revoked.add(key + (d["credential_id"], d["reason_hash"], d["revoked_at"]))
    return issued, revoked


def stored(engine) -> tuple[set, set, dict]:
    """(issued, revoked, {credential_id: revoked flag}) as the consumer stored them; duplicates raise."""
    with Session(engine) as s:
        events = s.execute(select(CredentialEvent)).scalars().all()
        revocations = s.execute(select(RevocationEvent)).scalars().all()
    issued = {(e.tx_hash, e.log_index, e.block_number, e.block_hash, e.credential_id, e.fingerprint,
               e.student_wallet, e.institution) for e in events}
    revoked = {(r.tx_hash, r.log_index, r.block_number, r.block_hash, r.credential_id, r.reason_hash, r.revoked_at)
               for r in revocations}
    assert len(issued) == len(events), "duplicate CredentialEvent rows"
    assert len(revoked) == len(revocations), "duplicate RevocationEvent rows"
    return issued, revoked, {e.credential_id: e.revoked for e in events}


def consumer_settings(database_url: str, rpc_url: str, vault_address: str, deploy_block: int, **overrides) -> Settings:
    values = dict(database_url=database_url, rpc_url=rpc_url, vault_address=vault_address,
                  vault_deploy_block=deploy_block, confirmations=2, finality_depth=16, consumer_poll_seconds=0.1)
    values.update(overrides)
    return Settings(**values)


class RangeLimitProxy:
    """A loopback JSON-RPC proxy in front of a node. eth_getLogs requests spanning more than `max_range` blocks
    are refused with -32005 while `refusing` is set (or for the first `refuse_count` oversized requests);
    everything else is forwarded. Records every getLogs range it saw."""

    def __init__(self, upstream: str, max_range: int, refuse_count: int | None = None):
        self.upstream = upstream
        self.max_range = max_range
        self.refuse_count = refuse_count
        self.refusing = True
        self.served: list[tuple[int, int]] = []
        self.refused: list[tuple[int, int]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if isinstance(body, list):
                    answer = [proxy._handle(item) for item in body]
                else:
                    answer = proxy._handle(body)
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _forward(self, request: dict) -> dict:
        req = urllib.request.Request(self.upstream, data=json.dumps(request).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as response:
            return json.loads(response.read())

    def _handle(self, request: dict) -> dict:
        if request.get("method") == "eth_getLogs":
            params = request["params"][0]
            span = (int(params["fromBlock"], 16), int(params["toBlock"], 16))
            with self.lock:
                oversized = span[1] - span[0] + 1 > self.max_range
                refuse = oversized and self.refusing and (self.refuse_count is None or self.refuse_count > 0)
                if refuse:
                    if self.refuse_count is not None:
                        self.refuse_count -= 1
                    self.refused.append(span)
                else:
                    self.served.append(span)
            if refuse:
                return {"jsonrpc": "2.0", "id": request.get("id"),
                        "error": {"code": -32005, "message": LIMIT_MESSAGE}}
        return self._forward(request)

    def __enter__(self) -> "RangeLimitProxy":
        self.thread.start()
        return self

    def __exit__(self, *_):
        self.server.shutdown()
        self.server.server_close()
