"""What the chain says about an upload before anything is written: fingerprints already used,
and a pre-flight simulation of the contract rules (paused, institution, controller)."""
from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account

from blockproof import vault
from blockproof.errors import RpcError, RpcUnavailable
from blockproof.rpc import Rpc
from blockproof.settings import Settings
from workers.signer.simulate import simulate_many

FINGERPRINT_USED = "fingerprintUsed(bytes32)"
CALLS_PER_REQUEST = 1000


def used_on_chain(rpc: Rpc, vault_address: str, fingerprints: list[str], *, strict: bool = True) -> set[str]:
    """The fingerprints for which the contract's ``fingerprintUsed`` is true (batched eth_calls).

    strict: a call the node refuses raises its RpcError (else that fingerprint counts as unused)."""
    used: set[str] = set()
    sel = vault.selector(FINGERPRINT_USED).hex()
    for start in range(0, len(fingerprints), CALLS_PER_REQUEST):
        part = fingerprints[start : start + CALLS_PER_REQUEST]
        calls = [("eth_call", [{"to": vault_address, "data": "0x" + sel + fp[2:]}, "latest"]) for fp in part]
        for fp, reply in zip(part, rpc.batch(calls)):
            if isinstance(reply, RpcError) and strict:
                raise reply
            if isinstance(reply, str) and int(reply, 16) == 1:
                used.add(fp)
    return used


@dataclass(frozen=True)
class Preflight:
    """The outcome of simulating one row's issueCredential from the signer's address."""

    institution: str
    sender: str
    ok: bool
    code: str = ""      # the contract's custom error (ContractPaused, InstitutionInactive, ...)
    message: str = ""   # in plain words


def signer_address(settings: Settings) -> str | None:
    key = settings.signer_key.get_secret_value() if settings.signer_key else None
    return Account.from_key(key).address if key else None


def preflight(rpc: Rpc, settings: Settings, row: dict) -> Preflight:
    """Simulate ``issueCredential`` for ``row`` (a validated row) as the signer would send it.

    Raises RpcUnavailable / RpcError when the node cannot be asked. A revert that concerns the row
    itself (e.g. its fingerprint was used in the meantime) is not a file-level problem: ok=True.
    """
    sender = signer_address(settings) or row["institution"]
    item = vault.IssueItem(student_wallet=row["student_wallet"], fingerprint=bytes.fromhex(row["fingerprint"][2:]),
                           metadata_uri=f"{int(row['line'])}.json", payload_uri="", expires_at=int(row["expires_at"]))
    data = vault.issue_single(row["institution"], settings.resolved_document_base_uri() + "preflight/", item)
    [sim] = simulate_many(rpc, sender, settings.vault_address, [data], with_gas=False)
    if sim.ok or not sim.revert.is_condition:
        return Preflight(row["institution"], sender, True)
    return Preflight(row["institution"], sender, False, sim.revert.code, sim.revert.message)


__all__ = ["Preflight", "RpcError", "RpcUnavailable", "preflight", "signer_address", "used_on_chain"]
