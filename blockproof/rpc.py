"""A narrow JSON-RPC client: only what the signer and the consumer use, with batching."""
from __future__ import annotations

import itertools
import threading
from typing import Any, Sequence

import requests

from blockproof.errors import RpcError, RpcUnavailable


class Rpc:
    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._local = threading.local()

    @property
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _post(self, payload):
        try:
            response = self._session.post(self.url, json=payload, timeout=self.timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise RpcUnavailable(f"RPC node at {self.url} did not answer: {exc.__class__.__name__}") from exc
        if response.status_code >= 500 or not response.content:
            raise RpcUnavailable(f"RPC node at {self.url} answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise RpcUnavailable(f"RPC node at {self.url} answered something that is not JSON") from exc

    @staticmethod
    def _unwrap(method: str, reply: dict) -> Any:
        if "error" in reply and reply["error"] is not None:
            err = reply["error"]
            raise RpcError(err.get("code", 0), err.get("message", ""), err.get("data"), method)
        return reply.get("result")

    def call(self, method: str, *params) -> Any:
        reply = self._post({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)})
        if isinstance(reply, list):  # some proxies always batch
            reply = reply[0]
        return self._unwrap(method, reply)

    def batch(self, calls: Sequence[tuple[str, list]]) -> list[Any | RpcError]:
        """Many requests in one HTTP round trip; each result is a value or an RpcError (not raised)."""
        if not calls:
            return []
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": method, "params": list(params)}
            for i, (method, params) in enumerate(calls)
        ]
        replies = self._post(payload)
        if isinstance(replies, dict):  # a node that refuses batches answers one error
            raise RpcError(replies.get("error", {}).get("code", 0), str(replies.get("error")), None, "batch")
        by_id = {r.get("id"): r for r in replies}
        out: list[Any | RpcError] = []
        for i, (method, _) in enumerate(calls):
            try:
                out.append(self._unwrap(method, by_id.get(i, {"error": {"code": -1, "message": "no reply"}})))
            except RpcError as exc:
                out.append(exc)
        return out

    # conveniences
    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def chain_id(self) -> int:
        return int(self.call("eth_chainId"), 16)

    def nonce(self, address: str, block: str = "latest") -> int:
        return int(self.call("eth_getTransactionCount", address, block), 16)

    def balance(self, address: str) -> int:
        return int(self.call("eth_getBalance", address, "latest"), 16)

    def get_block(self, number: int | str, full: bool = False) -> dict | None:
        tag = hex(number) if isinstance(number, int) else number
        return self.call("eth_getBlockByNumber", tag, full)
