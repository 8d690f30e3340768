"""Pre-flight: simulate calls with eth_call before anything spends a nonce, and decode why they revert."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from eth_abi import encode

from blockproof.errors import RpcError
from chain.rpc import Rpc
from chain.vault import decode_issue_batch_result
from contracts.artifacts import BATCH_INTERFACE_ID, PACKED_BATCH_INTERFACE_ID
from contracts.errors import decode_revert
from chain.rpc_errors import is_too_big

# errors that are a state of the contract or the signer, not of one row: issuance waits for them to clear;
# a contract-wide one holds every job, an institution's own holds only that institution's jobs
CONTRACT_CONDITIONS = frozenset({"ContractPaused"})
INSTITUTION_CONDITIONS = frozenset({"UnauthorizedController", "InstitutionInactive", "InstitutionNotFound"})
CONDITION_ERRORS = CONTRACT_CONDITIONS | INSTITUTION_CONDITIONS


@dataclass(frozen=True)
class Revert:
    code: str
    message: str
    retryable: bool

    @property
    def is_condition(self) -> bool:
        return self.code in CONDITION_ERRORS

    @property
    def holds_everything(self) -> bool:
        return self.code in CONTRACT_CONDITIONS


def revert_from(exc: RpcError) -> Revert:
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data") or data.get("result")
    decoded = decode_revert(data) if isinstance(data, str) and data.startswith("0x") and len(data) >= 10 else None
    if decoded is None:
        return Revert("Reverted", f"The contract refused the call: {exc.message}", True)
    return Revert(decoded.name, decoded.message, decoded.retryable)


@dataclass(frozen=True)
class Simulation:
    ok: bool
    result: str | None = None
    gas: int | None = None
    revert: Revert | None = None


def simulate_many(rpc: Rpc, sender: str, to: str, datas: list[str], *, with_gas: bool) -> list[Simulation]:
    """eth_call (and eth_estimateGas) for each calldata, in one JSON-RPC batch round trip."""
    calls: list[tuple[str, list[Any]]] = []
    for data in datas:
        tx = {"from": sender, "to": to, "data": data}
        calls.append(("eth_call", [tx, "latest"]))
        if with_gas:
            calls.append(("eth_estimateGas", [tx, "latest"]))
    replies = rpc.batch(calls)
    step = 2 if with_gas else 1
    out = []
    for i in range(len(datas)):
        call_reply = replies[i * step]
        gas_reply = replies[i * step + 1] if with_gas else None
        for reply in (call_reply, gas_reply):
            if isinstance(reply, RpcError) and is_too_big(reply):  # a statement about the call's size, not its rows: the caller splits
                raise reply
        if isinstance(call_reply, RpcError):
            if call_reply.code in (3, -32000, -32015) or "revert" in call_reply.message.lower():
                out.append(Simulation(False, revert=revert_from(call_reply)))
                continue
            raise call_reply
        if isinstance(gas_reply, RpcError):
            out.append(Simulation(False, revert=revert_from(gas_reply)))
            continue
        out.append(Simulation(True, result=call_reply, gas=int(gas_reply, 16) if gas_reply else None))
    return out


ALREADY_ISSUED = Revert("FingerprintAlreadyUsed",
                        "This credential is already on chain (its fingerprint was used before); it is not issued twice.",
                        False)


def has_batch_extension(rpc: Rpc, vault: str) -> bool:
    """ERC-165 probe for our batch calls; an interface-only contract reverts or answers false."""
    return _supports(rpc, vault, BATCH_INTERFACE_ID)


def has_packed_batch(rpc: Rpc, vault: str) -> bool:
    """ERC-165 probe for issueCredentialBatchPacked (the same batch in about a quarter of the calldata)."""
    return _supports(rpc, vault, PACKED_BATCH_INTERFACE_ID)


def _supports(rpc: Rpc, vault: str, interface_id: bytes) -> bool:
    data = "0x01ffc9a7" + encode(["bytes4"], [interface_id]).hex()
    try:
        result = rpc.call("eth_call", {"to": vault, "data": data}, "latest")
    except RpcError:
        return False
    return bool(result) and len(result) >= 66 and int(result, 16) == 1


def skipped_rows(result: str | None) -> list[int]:
    """Positions in a simulated issueCredentialBatch that the contract would skip (fingerprint already used)."""
    return [i for i, cid in enumerate(decode_issue_batch_result(result)) if cid == 0] if result else []


Row = TypeVar("Row")


@dataclass(frozen=True)
class Group(Generic[Row]):
    """Rows simulated together in one batch call (``data``), or one by one when ``data`` is None: rows that have
    no batch call, or whose batch is already known to revert."""
    rows: Sequence[Row]
    data: str | None = None


def refused_rows(rpc: Rpc, sender: str, to: str, groups: Sequence[Group[Row]],
                 alone: Callable[[Row], str]) -> list[tuple[Row, Revert]]:
    """Rows the contract would refuse for the row's own sake, with the decoded reason. One eth_call covers a
    batch; only when it reverts (or the node cannot simulate it) are its rows simulated one by one, each with the
    calldata ``alone`` gives it. A batch that passes names the rows it would skip (fingerprint already used). A
    condition of the contract or the signer (paused, not a controller, …) is not a row's fault: its rows pass,
    and the signer holds issuance until the condition clears."""
    batches = [g for g in groups if g.data is not None]
    singles = [row for g in groups if g.data is None for row in g.rows]
    sims: Sequence[Simulation | None]
    try:
        sims = simulate_many(rpc, sender, to, [g.data for g in batches if g.data is not None], with_gas=False)
    except RpcError:  # e.g. out of gas under a node's call cap: simulate the rows one by one instead
        sims = [None] * len(batches)
    bad: list[tuple[Row, Revert]] = []
    for group, sim in zip(batches, sims):
        if sim is not None and sim.ok:
            bad.extend((group.rows[i], ALREADY_ISSUED) for i in skipped_rows(sim.result))
        elif sim is None or sim.revert is None or not sim.revert.is_condition:
            singles.extend(group.rows)
    alone_sims = simulate_many(rpc, sender, to, [alone(row) for row in singles], with_gas=False)
    bad.extend((row, sim.revert) for row, sim in zip(singles, alone_sims)
               if sim.revert is not None and not sim.revert.is_condition)
    return bad
