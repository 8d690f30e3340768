"""`blockproof deploy` and `blockproof admin …` on any chain, without dev shortcuts.

Every administrative action is a list of contract calls (to, data, value), built by the pure functions below.
Each is then either signed with BLOCKPROOF_ADMIN_KEY (read by these commands only, never logged) and sent, or
printed as unsigned calldata for a multisig (a Safe) to propose. The node must serve BLOCKPROOF_CHAIN_ID."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from eth_utils import is_address, to_checksum_address
from pydantic import Field, SecretStr

from blockproof.errors import ConfigurationError
from chain.rpc import Rpc, refuse_wrong_chain
from blockproof.settings import Settings
from chain.vault import calldata

RECEIPT_TIMEOUT_SECONDS = 300.0


class AdminSettings(Settings):
    """The shared settings plus the admin key; built only by `deploy` and `admin`."""

    admin_key: SecretStr | None = Field(None, description="hex private key of the contract's superAdmin, read by "
                                                          "`blockproof deploy` and `blockproof admin` only")


@dataclass(frozen=True)
class Call:
    to: str
    data: str
    value: int = 0
    what: str = ""

    def unsigned(self) -> dict:
        return {"to": self.to, "data": self.data, "value": str(self.value), "operation": 0, "what": self.what}


def address(text: str, what: str) -> str:
    if not is_address(text or ""):
        raise ConfigurationError(f"{what}: {text!r} is not an address (0x and 40 hex digits)")
    return to_checksum_address(text)


def register_institution(vault: str, institution: str, name: str, *, sender: str,
                         sender_is_registrar: bool) -> list[Call]:
    """upsertInstitution needs a registrar: the admin makes itself one first when it is not."""
    if not name.strip():
        raise ConfigurationError("--name: the institution needs a name")
    calls = [] if sender_is_registrar else [Call(vault, calldata("setRegistrar(address,bool)", sender, True),
                                                 what=f"setRegistrar({sender}, true)")]
    calls.append(Call(vault, calldata("upsertInstitution(address,string,bool)", institution, name.strip(), True),
                      what=f"upsertInstitution({institution}, {name.strip()!r}, true)"))
    return calls


def set_controller(vault: str, institution: str, controller: str, allowed: bool) -> list[Call]:
    return [Call(vault, calldata("setInstitutionController(address,address,bool)", institution, controller, allowed),
                 what=f"setInstitutionController({institution}, {controller}, {str(allowed).lower()})")]


def set_paused(vault: str, paused: bool) -> list[Call]:
    return [Call(vault, calldata("setPaused(bool)", paused), what=f"setPaused({str(paused).lower()})")]


def transfer_admin(vault: str, new_admin: str) -> list[Call]:
    return [Call(vault, calldata("transferSuperAdmin(address)", new_admin), what=f"transferSuperAdmin({new_admin}); "
                 f"{new_admin} then runs `blockproof admin accept-admin`")]


def accept_admin(vault: str) -> list[Call]:
    return [Call(vault, calldata("acceptSuperAdmin()"), what="acceptSuperAdmin()")]


# ---- the chain ------------------------------------------------------------------------------------
def admin_key(settings: AdminSettings) -> str:
    from eth_account import Account

    if settings.admin_key is None or not settings.admin_key.get_secret_value().strip():
        raise ConfigurationError("BLOCKPROOF_ADMIN_KEY is not set: set it to the admin's key to send, or add "
                                 "--print-calldata to print the calls for a multisig")
    key = settings.admin_key.get_secret_value().strip()
    try:
        Account.from_key(key)
    except Exception:  # the library's message may quote the key
        raise ConfigurationError("BLOCKPROOF_ADMIN_KEY is not a valid private key (the value is not shown)") from None
    return key


def connect(settings: Settings) -> Rpc:
    rpc = Rpc.for_settings(settings)
    if refuse_wrong_chain(rpc) is None:
        raise ConfigurationError(f"no JSON-RPC node answers at {rpc.endpoints[0].label}")
    if settings.chain_id is None:
        raise ConfigurationError("BLOCKPROOF_CHAIN_ID is not set: set the chain you mean to change (the node "
                                 f"serves chain {rpc.chain_id()})")
    return rpc


def view_bool(rpc: Rpc, vault: str, signature: str, *args) -> bool:
    return int(rpc.call("eth_call", {"to": vault, "data": calldata(signature, *args)}, "latest"), 16) != 0


def send(rpc: Rpc, key: str, chain_id: int, calls: list[Call], *, deploy_code: str | None = None) -> list[dict]:
    """Sign and send each call in order with consecutive nonces, waiting for each receipt (a later call may
    depend on an earlier one). Fees: twice the base fee plus the node's suggested tip."""
    from eth_account import Account

    account = Account.from_key(key)
    nonce = int(rpc.call("eth_getTransactionCount", account.address, "pending"), 16)
    receipts = []
    items = [Call("", deploy_code, what="deploy")] if deploy_code else calls
    for call in items:
        tx = {"from": account.address, "data": call.data, "value": hex(call.value)}
        if call.to:
            tx["to"] = call.to
        gas = int(rpc.call("eth_estimateGas", tx, "latest"), 16)
        base = int(rpc.get_block("latest").get("baseFeePerGas", "0x0"), 16)
        tip = int(rpc.call("eth_maxPriorityFeePerGas"), 16)
        signed = account.sign_transaction({
            "chainId": chain_id, "nonce": nonce, "gas": gas * 12 // 10, "maxFeePerGas": 2 * base + tip,
            "maxPriorityFeePerGas": tip, "data": call.data, "value": call.value,
            **({"to": call.to} if call.to else {})})
        tx_hash = rpc.call("eth_sendRawTransaction", "0x" + signed.raw_transaction.hex().removeprefix("0x"))
        receipt = wait_for_receipt(rpc, tx_hash)
        if int(receipt["status"], 16) != 1:
            raise ConfigurationError(f"{call.what or 'the call'} reverted in {tx_hash} (is the key the admin's?)")
        receipts.append({"what": call.what, "tx_hash": tx_hash, "block": int(receipt["blockNumber"], 16),
                         "contract_address": receipt.get("contractAddress")})
        nonce += 1
    return receipts


def wait_for_receipt(rpc: Rpc, tx_hash: str) -> dict:
    deadline = time.monotonic() + RECEIPT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        receipt = rpc.call("eth_getTransactionReceipt", tx_hash)
        if receipt:
            return receipt
        time.sleep(1.0)
    raise ConfigurationError(f"{tx_hash} was not mined within {RECEIPT_TIMEOUT_SECONDS:.0f} s; check it in an "
                             f"explorer before sending again")


def print_calldata(calls: list[Call], chain_id: int, out) -> None:
    """Unsigned calls for a Safe's transaction builder (one JSON object; operation 0 = CALL)."""
    print(json.dumps({"chainId": str(chain_id), "transactions": [c.unsigned() for c in calls]}, indent=2), file=out)


def super_admin(rpc: Rpc, vault: str) -> str:
    answer = rpc.call("eth_call", {"to": vault, "data": calldata("superAdmin()")}, "latest")
    return to_checksum_address("0x" + answer[-40:])


def run(action: str, args, out, err) -> int:
    """One `blockproof admin` action: build its calls, then send them or print them."""
    from eth_account import Account

    settings = AdminSettings()
    vault = address(settings.vault_address, "BLOCKPROOF_VAULT_ADDRESS")
    rpc = connect(settings)
    key = None if args.print_calldata else admin_key(settings)
    sender = Account.from_key(key).address if key else super_admin(rpc, vault)
    if action == "register-institution":
        institution = address(args.institution, "--institution")
        calls = register_institution(vault, institution, args.name, sender=sender, sender_is_registrar=view_bool(
            rpc, vault, "registrars(address)", sender))
    elif action in ("add-controller", "remove-controller"):
        calls = set_controller(vault, address(args.institution, "--institution"),
                               address(args.controller, "--controller"), action == "add-controller")
    elif action in ("pause", "unpause"):
        calls = set_paused(vault, action == "pause")
    elif action == "transfer-admin":
        calls = transfer_admin(vault, address(args.to, "--to"))
    else:
        calls = accept_admin(vault)
    if key is None:
        print_calldata(calls, settings.chain_id, out)
        print(f"{len(calls)} unsigned call(s) for {sender} (the contract's admin) to propose; nothing was sent",
              file=err)
        return 0
    for receipt in send(rpc, key, settings.chain_id, calls):
        print(f"{receipt['what']}: mined in block {receipt['block']} ({receipt['tx_hash']})", file=out)
    return 0


def deploy(out, err, artifact_name: str | None = None) -> int:
    """Deploy the vault with the admin key (it becomes the contract's superAdmin); prints the settings to set."""
    from contracts.artifacts import VAULT, load_artifact

    settings = AdminSettings()
    rpc = connect(settings)
    key = admin_key(settings)
    [receipt] = send(rpc, key, settings.chain_id, [], deploy_code=load_artifact(artifact_name or VAULT).bytecode)
    vault = to_checksum_address(receipt["contract_address"])
    print(f"deployed {artifact_name or VAULT} at {vault} in block {receipt['block']} ({receipt['tx_hash']}); "
          f"set these, then register the institution and its signer (`blockproof admin register-institution`, "
          f"`blockproof admin add-controller`):", file=err)
    print(f"BLOCKPROOF_CHAIN_ID={settings.chain_id}\nBLOCKPROOF_VAULT_ADDRESS={vault}\n"
          f"BLOCKPROOF_VAULT_DEPLOY_BLOCK={receipt['block']}", file=out)
    return 0
