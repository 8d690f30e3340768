"""The one place where a node's answer to eth_sendRawTransaction is classified."""
from __future__ import annotations

import enum
import re

from blockproof.errors import RpcError, RpcUnavailable


class SendOutcome(enum.Enum):
    ACCEPTED = "accepted"
    ALREADY_KNOWN = "already_known"  # the node has these exact bytes: success
    NONCE_TOO_LOW = "nonce_too_low"  # the nonce is used: ours mined, or someone else's did
    REPLACEMENT_UNDERPRICED = "replacement_underpriced"  # another tx holds the nonce in the pool
    NONCE_TOO_HIGH = "nonce_too_high"  # a gap below us
    INSUFFICIENT_FUNDS = "insufficient_funds"
    FEE_TOO_LOW = "fee_too_low"  # below the base fee or the node's minimum
    UNKNOWN = "unknown"  # timeout or connection lost: it may or may not have arrived
    REJECTED = "rejected"


_PATTERNS: list[tuple[SendOutcome, tuple[str, ...]]] = [
    (SendOutcome.ALREADY_KNOWN, ("already known", "known transaction", "already imported", "alreadyknown", "already exists")),
    (SendOutcome.REPLACEMENT_UNDERPRICED, ("replacement transaction underpriced", "replacement underpriced", "replacementunderpriced")),
    (SendOutcome.NONCE_TOO_LOW, ("nonce too low", "noncetoolow", "nonce has already been used", "invalid nonce", "oldnonce")),
    (SendOutcome.NONCE_TOO_HIGH, ("nonce too high", "noncetoohigh", "nonce gap")),
    (SendOutcome.INSUFFICIENT_FUNDS, ("insufficient funds", "insufficientfunds", "not enough funds", "lack of funds")),
    (SendOutcome.FEE_TOO_LOW, ("max fee per gas less than block base fee", "fee cap less than block base fee", "feecaptoolow", "transaction underpriced", "underpriced")),
]


def classify_send_error(exc: Exception) -> SendOutcome:
    if isinstance(exc, RpcUnavailable):
        return SendOutcome.UNKNOWN
    if isinstance(exc, RpcError):
        text = f"{exc.message} {exc.data or ''}".lower().replace("_", " ")
        compact = text.replace(" ", "")
        for outcome, needles in _PATTERNS:
            if any(n in text or n.replace(" ", "") in compact for n in needles):
                return outcome
    return SendOutcome.REJECTED


# how nodes say "this call needs more gas than I will spend on it": geth, Anvil (whose wording depends on
# where in the call the gas ran out, e.g. "OutOfGas" or "MemoryOOG"), Erigon, Nethermind, providers' caps
_TOO_BIG = ("out of gas", "outofgas", "exceeds allowance", "gas required exceeds",
            "exceeds block gas limit", "gas limit reached", "gas cap", "intrinsic gas too high")


_REVM_OOG = re.compile(r"[a-z]*oog\b")  # revm's MemoryOOG, MemoryLimitOOG, PrecompileOOG, InvalidOperandOOG


def is_too_big(exc: Exception) -> bool:
    """A simulation refused for its size, not for its content: the answer is a smaller call."""
    if not isinstance(exc, RpcError):
        return False
    text = f"{exc.message} {exc.data if isinstance(exc.data, str) else ''}".lower().replace("_", " ")
    compact = text.replace(" ", "")
    return bool(_REVM_OOG.search(text)) or any(n in text or n.replace(" ", "") in compact for n in _TOO_BIG)
