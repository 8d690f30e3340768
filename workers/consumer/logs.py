"""Fetching the contract's logs in block ranges that shrink when the node refuses and grow back when calm."""
from __future__ import annotations

from dataclasses import dataclass

from blockproof.errors import RpcError
from chain.rpc import Rpc
from chain.vault import ISSUED_TOPIC, REVOKED_TOPIC

RANGE_ERROR_CODES = {-32005, -32602, -32600, -32614}
RANGE_ERROR_WORDS = ("too many", "range", "limit", "exceed", "query returned more than", "block range")


def is_range_error(exc: RpcError) -> bool:
    text = exc.message.lower()
    return exc.code in RANGE_ERROR_CODES and any(w in text for w in RANGE_ERROR_WORDS) or any(
        w in text for w in ("too many results", "query returned more than", "block range is too large")
    )


@dataclass
class ChunkSizer:
    size: int
    maximum: int
    calm_rounds: int = 0

    def shrink(self) -> None:
        self.size = max(1, self.size // 2)
        self.calm_rounds = 0

    def calm(self) -> None:
        self.calm_rounds += 1
        if self.calm_rounds >= 3 and self.size < self.maximum:
            self.size = min(self.maximum, self.size * 2)
            self.calm_rounds = 0


def get_logs(rpc: Rpc, address: str, start: int, end: int) -> list[dict]:
    return rpc.call(
        "eth_getLogs",
        {"address": address, "fromBlock": hex(start), "toBlock": hex(end), "topics": [[ISSUED_TOPIC, REVOKED_TOPIC]]},
    )


def fetch_range(rpc: Rpc, address: str, start: int, end: int, sizer: ChunkSizer) -> tuple[int, list[dict]]:
    """Logs from `start` to at most `end`; returns (last block covered, logs). Halves the range on refusal."""
    while True:
        stop = min(end, start + sizer.size - 1)
        try:
            logs = get_logs(rpc, address, start, stop)
        except RpcError as exc:
            if is_range_error(exc) and sizer.size > 1:
                sizer.shrink()
                continue
            raise
        sizer.calm()
        return stop, logs
