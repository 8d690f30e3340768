"""Deploy and configure a vault with plain signed transactions (web3.py v8)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from eth_account import Account
from eth_typing import HexStr
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.types import TxReceipt

from contracts.artifacts import BATCH_INTERFACE_ID, VAULT, load_artifact

log = logging.getLogger(__name__)

RECEIPT_TIMEOUT = 120


class TransactionFailed(RuntimeError):
    """A mined transaction had status 0."""


def vault_contract(w3: Web3, vault_address: str, artifact_name: str = VAULT) -> Contract:
    """A web3 contract object for a deployed vault."""
    return w3.eth.contract(address=to_checksum_address(vault_address), abi=load_artifact(artifact_name).abi)


def _sign_and_send(w3: Web3, tx: dict[str, Any], key: str) -> HexBytes:
    signed = Account.sign_transaction(tx, key)
    return w3.eth.send_raw_transaction(signed.raw_transaction)


def _wait(w3: Web3, tx_hash: HexBytes, what: str) -> TxReceipt:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT)
    if receipt["status"] != 1:
        raise TransactionFailed(f"{what} failed in tx {tx_hash.hex()}")
    return receipt


def send_call(w3: Web3, fn: Any, key: str, *, nonce: int | None = None, gas: int | None = None) -> HexBytes:
    """Build (estimating gas unless given), sign and send a contract call; returns the tx hash.

    Estimation reverts raise web3's ContractCustomError: decode it with
    ``contracts.errors.decode_revert(revert_data_from_exception(exc))``.
    """
    sender = Account.from_key(key).address
    params: dict[str, Any] = {"from": sender, "chainId": w3.eth.chain_id}
    params["nonce"] = w3.eth.get_transaction_count(sender, "pending") if nonce is None else nonce
    if gas is not None:
        params["gas"] = gas
    tx = fn.build_transaction(params)
    return _sign_and_send(w3, tx, key)


def transact(w3: Web3, fn: Any, key: str, *, gas: int | None = None, check: bool = True) -> TxReceipt:
    """send_call and wait for the receipt; raises TransactionFailed on status 0 when ``check``."""
    tx_hash = send_call(w3, fn, key, gas=gas)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT)
    if check and receipt["status"] != 1:
        raise TransactionFailed(f"{getattr(fn, 'fn_name', 'call')} failed in tx {tx_hash.hex()}")
    return receipt


def deploy_vault(w3: Web3, deployer_key: str, artifact_name: str = VAULT) -> str:
    """Deploy the named artifact; the deployer becomes superAdmin. Returns the checksum address."""
    artifact = load_artifact(artifact_name)
    deployer = Account.from_key(deployer_key).address
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx = factory.constructor().build_transaction(
        {"from": deployer, "nonce": w3.eth.get_transaction_count(deployer, "pending"), "chainId": w3.eth.chain_id}
    )
    receipt = _wait(w3, _sign_and_send(w3, tx, deployer_key), f"deploying {artifact_name}")
    if receipt["contractAddress"] is None:
        raise TransactionFailed(f"deploying {artifact_name}: the receipt names no contract address")
    address = to_checksum_address(receipt["contractAddress"])
    log.info("deployed %s at %s (gas %s)", artifact_name, address, receipt["gasUsed"])
    return address


def configure_institution(
    w3: Web3,
    vault_address: str,
    *,
    admin_key: str,
    institution: str,
    name: str,
    controllers: Sequence[str] = (),
    artifact_name: str = VAULT,
) -> None:
    """Make the admin a registrar, upsert ``institution`` active with ``name`` and enable each controller.

    ``admin_key`` must be the superAdmin's key. Idempotent: steps already in place are skipped.
    """
    vault = vault_contract(w3, vault_address, artifact_name)
    admin = Account.from_key(admin_key).address
    institution = to_checksum_address(institution)
    nonce: int = w3.eth.get_transaction_count(admin, "pending")
    pending: list[tuple[HexBytes, str]] = []

    def send(fn: Any, what: str, gas: int | None = None) -> None:
        nonlocal nonce
        pending.append((send_call(w3, fn, admin_key, nonce=nonce, gas=gas), what))
        nonce += 1

    # Later steps depend on earlier ones that are not mined yet, so they get fixed gas limits
    # instead of estimates (an estimate would see the old state and revert).
    if not vault.functions.registrars(admin).call():
        send(vault.functions.setRegistrar(admin, True), "setRegistrar")
    name_words = (len(name.encode()) + 31) // 32
    send(vault.functions.upsertInstitution(institution, name, True), "upsertInstitution",
         gas=150_000 + 25_000 * name_words)
    for controller in controllers:
        send(vault.functions.setInstitutionController(institution, to_checksum_address(controller), True),
             f"setInstitutionController({controller})", gas=120_000)
    for tx_hash, what in pending:
        _wait(w3, tx_hash, what)
    log.info("institution %s (%s) configured on %s with %d controller(s)", institution, name, vault_address,
             len(controllers))


def has_batch_extension(w3: Web3, vault_address: str) -> bool:
    """ERC-165 probe: True only if supportsInterface(IBlockProofBatch) answers true.

    False when the call reverts (no ERC-165, e.g. the interface-only contract), returns
    nothing, or answers false.
    """
    data = "0x01ffc9a7" + BATCH_INTERFACE_ID.hex().ljust(64, "0")
    try:
        result = w3.eth.call({"to": to_checksum_address(vault_address), "data": HexStr(data)})
    except Exception:  # ContractLogicError, Web3RPCError, ...: no such function
        return False
    return len(result) >= 32 and int.from_bytes(result[:32], "big") == 1
