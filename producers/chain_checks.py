"""What the chain says about an upload before anything is written: fingerprints already used,
and a pre-flight simulation of the contract rules (paused, institution, controller)."""
from __future__ import annotations

from dataclasses import dataclass

from eth_abi import decode, encode

from chain import vault
from blockproof.errors import RpcError, RpcUnavailable
from chain.rpc import Rpc
from blockproof.settings import Settings
from contracts.errors import decode_revert
from chain.preflight import simulate_many

FINGERPRINT_USED = "fingerprintUsed(bytes32)"
GET_INSTITUTION = "getInstitution(address)"
INSTITUTION_NOT_FOUND = "InstitutionNotFound(address)"
CALLS_PER_REQUEST = 1000


# Runtime code of producers/contracts/FingerprintProbe.sol (solc 0.8.37, evmVersion cancun, optimizer 200 runs,
# metadata.bytecodeHash "none"; tests/integration/test_fingerprint_probe.py recompiles it with compile_probe.mjs beside it and
# compares). It is never deployed: eth_call places it at PROBE_ADDRESS with a state override (geth, Anvil, Erigon,
# Nethermind and the large providers support the third eth_call parameter), so one call answers for PROBE_CHUNK
# fingerprints.
PROBE_RUNTIME = (
    "608060405234801561000f575f5ffd5b5060043610610029575f3560e01c80631416ea8a1461002d575b5f5ffd5b61004061"
    "003b3660046101d9565b610056565b60405161004d9190610267565b60405180910390f35b60608167ffffffffffffffff81"
    "11156100715761007161029c565b6040519080825280601f01601f19166020018201604052801561009b5760208201818036"
    "83370190505b5090505f5b828110156101d1575f806001600160a01b038716632293cc7960e01b8787868181106100ce5761"
    "00ce6102b0565b905060200201356040516024016100e791815260200190565b60408051601f198184030181529181526020"
    "820180516001600160e01b03166001600160e01b031990941693909317909252905161012591906102c4565b5f6040518083"
    "0381855afa9150503d805f811461015d576040519150601f19603f3d011682016040523d82523d5f602084013e610162565b"
    "606091505b509150915081801561017657506020815110155b801561019457508080602001905181019061019191906102da"
    "565b15155b156101c757600160f81b8484815181106101b0576101b06102b0565b60200101906001600160f81b0319169081"
    "5f1a9053505b50506001016100a0565b509392505050565b5f5f5f604084860312156101eb575f5ffd5b83356001600160a0"
    "1b0381168114610201575f5ffd5b9250602084013567ffffffffffffffff81111561021c575f5ffd5b8401601f8101861361"
    "022c575f5ffd5b803567ffffffffffffffff811115610242575f5ffd5b8660208260051b8401011115610256575f5ffd5b93"
    "9660209190910195509293505050565b602081525f82518060208401528060208501604085015e5f60408285010152604060"
    "1f19601f83011684010191505092915050565b634e487b7160e01b5f52604160045260245ffd5b634e487b7160e01b5f5260"
    "3260045260245ffd5b5f82518060208501845e5f920191825250919050565b5f602082840312156102ea575f5ffd5b505191"
    "905056fea164736f6c6343000825000a"
)
PROBE_ADDRESS = "0x00000000000000000000000000000000b10cb007"
PROBE_USED = "used(address,bytes32[])"
PROBE_CHUNK = 2_000          # about 4,500 gas per fingerprint: 9M gas per call, under any eth_call gas cap
PROBE_CALLS_PER_REQUEST = 5


def _probe(rpc: Rpc, vault_address: str, fingerprints: list[str]) -> set[str] | None:
    """fingerprintUsed for all ``fingerprints`` through the probe; None when the node refuses state overrides."""
    used: set[str] = set()
    override = {PROBE_ADDRESS: {"code": "0x" + PROBE_RUNTIME}}
    chunks = [fingerprints[i : i + PROBE_CHUNK] for i in range(0, len(fingerprints), PROBE_CHUNK)]
    for start in range(0, len(chunks), PROBE_CALLS_PER_REQUEST):
        group = chunks[start : start + PROBE_CALLS_PER_REQUEST]
        calls = [("eth_call", [{"to": PROBE_ADDRESS, "data": vault.calldata(
            PROBE_USED, vault_address, [bytes.fromhex(fp[2:]) for fp in part])}, "latest", override]) for part in group]
        for part, reply in zip(group, rpc.batch(calls)):
            if isinstance(reply, RpcError) or not isinstance(reply, str):
                return None
            flags = decode(["bytes"], bytes.fromhex(reply[2:]))[0]
            if len(flags) != len(part):
                return None
            used.update(fp for fp, flag in zip(part, flags) if flag)
    return used


def used_on_chain(rpc: Rpc, vault_address: str, fingerprints: list[str], *, strict: bool = True) -> set[str]:
    """The fingerprints for which the contract's ``fingerprintUsed`` is true.

    Through the probe (thousands per eth_call) when the node supports state overrides, else one
    eth_call per fingerprint, batched. strict: a call the node refuses raises its RpcError (else that
    fingerprint counts as unused)."""
    if len(fingerprints) > 50:
        found = _probe(rpc, vault_address, fingerprints)
        if found is not None:
            return found
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
    return settings.signer_address or None


def institution_registered(rpc: Rpc, vault_address: str, institution: str) -> bool | None:
    """``getInstitution(institution).exists``; None when the contract's answer cannot be read (the simulation
    then decides). RpcUnavailable when the node cannot be reached."""
    try:
        reply = rpc.call("eth_call", {"to": vault_address, "data": vault.calldata(GET_INSTITUTION, institution)},
                         "latest")
    except RpcError:
        return None
    try:
        return bool(decode(["(string,bool,bool,uint64,uint64)"], bytes.fromhex(reply[2:]))[0][1])
    except Exception:  # not the interface's struct: leave the answer to the simulation
        return None


def _not_registered(institution: str, sender: str) -> Preflight:
    error = decode_revert(vault.selector(INSTITUTION_NOT_FOUND) + encode(["address"], [institution]))
    return Preflight(institution, sender, False, error.name, error.message)


def preflight(rpc: Rpc, settings: Settings, row: dict) -> Preflight:
    """Simulate ``issueCredential`` for ``row`` (a validated row) as the signer would send it.

    The institution's existence is asked first: a contract may check the sender's permission before
    existence (the interface-only one does), and "not a controller" would send the operator the wrong way.
    Raises RpcUnavailable / RpcError when the node cannot be asked. A revert that concerns the row
    itself (e.g. its fingerprint was used in the meantime) is not a file-level problem: ok=True.
    """
    sender = signer_address(settings) or row["institution"]
    if institution_registered(rpc, settings.vault_address, row["institution"]) is False:
        return _not_registered(row["institution"], sender)
    item = vault.IssueItem(student_wallet=row["student_wallet"], fingerprint=bytes.fromhex(row["fingerprint"][2:]),
                           metadata_uri=settings.metadata_suffix(int(row["line"]), row["fingerprint"]), payload_uri="",
                           expires_at=int(row["expires_at"]))
    data = vault.issue_single(row["institution"], settings.metadata_base_uri(0), item)
    [sim] = simulate_many(rpc, sender, settings.vault_address, [data], with_gas=False)
    if sim.ok or not sim.revert.is_condition:
        return Preflight(row["institution"], sender, True)
    return Preflight(row["institution"], sender, False, sim.revert.code, sim.revert.message)


__all__ = ["Preflight", "RpcError", "RpcUnavailable", "preflight", "signer_address", "used_on_chain"]
