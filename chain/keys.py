"""Where the signer's key lives, behind one small interface: `address` and `sign_transaction(tx) -> signed`
(`raw_transaction` and `hash`, as eth-account returns them). Only the signer process builds one.

- an encrypted keystore (Web3 Secret Storage v3 JSON, as geth and Foundry write it), decrypted once at start;
- a remote signer speaking JSON-RPC `eth_signTransaction` (Web3Signer, Clef): every answer is checked
  (sender recovered, fields as requested) before it is stored; many transactions go in one batch request;
- a plain hex key: development only, refused in production.

A cloud KMS plugs in as one more class with the same two members (docs/operations.md).
"""
from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

from blockproof.errors import ConfigurationError, RpcError
from chain.rpc import Rpc

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from blockproof.settings import SignerSettings

SAFE_OPTIONS = ("an encrypted keystore (BLOCKPROOF_SIGNER_KEYSTORE with BLOCKPROOF_SIGNER_PASSWORD_FILE; "
                "`blockproof key new` or `blockproof key import` makes one) or a remote signer "
                "(BLOCKPROOF_SIGNER_URL with BLOCKPROOF_SIGNER_ADDRESS)")


@dataclass(frozen=True)
class Signed:
    raw_transaction: bytes
    hash: bytes


class RemoteSigner:
    """A signer at `url` holding the key of `address`; it never leaves there."""

    def __init__(self, url: str, address: str, *, timeout: float = 10.0):
        self.rpc, self.address = Rpc(url, timeout), to_checksum_address(address)

    def _request(self, tx: dict[str, Any]) -> dict[str, Any]:
        return {"from": self.address, "to": tx["to"], "data": tx["data"], "value": hex(tx["value"]),
                "nonce": hex(tx["nonce"]), "gas": hex(tx["gas"]), "maxFeePerGas": hex(tx["maxFeePerGas"]),
                "maxPriorityFeePerGas": hex(tx["maxPriorityFeePerGas"]), "chainId": hex(tx["chainId"]), "type": "0x2"}

    def sign_transaction(self, tx: dict[str, Any]) -> Signed:
        return self.sign_many([tx])[0]

    def sign_many(self, txs: list[dict[str, Any]]) -> list[Signed]:
        """Pipelined: every request in one JSON-RPC batch round trip."""
        replies = self.rpc.batch([("eth_signTransaction", [self._request(tx)]) for tx in txs])
        out = []
        for tx, reply in zip(txs, replies):
            if isinstance(reply, RpcError):
                raise reply
            raw = reply if isinstance(reply, str) else reply.get("raw", "")
            out.append(checked(bytes.fromhex(raw.removeprefix("0x")), tx, self.address))
        return out


def checked(raw: bytes, tx: dict[str, Any], address: str) -> Signed:
    """The remote signer's bytes, only if they are what was asked for, signed by the expected key."""
    sender = Account.recover_transaction(raw)
    if sender.lower() != address.lower():
        raise ConfigurationError(f"the remote signer signed as {sender}, not as {address}: nothing is stored")
    fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    wanted = {"chainId": tx["chainId"], "nonce": tx["nonce"], "gas": tx["gas"], "maxFeePerGas": tx["maxFeePerGas"],
              "maxPriorityFeePerGas": tx["maxPriorityFeePerGas"], "value": tx["value"]}
    for name, value in wanted.items():
        if int(fields[name]) != int(value):
            raise ConfigurationError(f"the remote signer changed {name} ({fields[name]} instead of {value})")
    if to_checksum_address(fields["to"]) != to_checksum_address(tx["to"]) or \
            bytes(fields["data"]) != bytes.fromhex(tx["data"].removeprefix("0x")):
        raise ConfigurationError("the remote signer changed the recipient or the call data")
    return Signed(raw, keccak(raw))


def read_password(settings: SignerSettings) -> str:
    if settings.signer_password_file:
        return Path(settings.signer_password_file).read_text().rstrip("\n")
    return getpass.getpass(f"password of {settings.signer_keystore}: ")


def from_keystore(path: str, password: str) -> LocalAccount:
    try:
        key = Account.decrypt(json.loads(Path(path).read_text()), password)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot open the keystore {path}: {str(exc).splitlines()[0][:120]}") from None
    account: LocalAccount = Account.from_key(key)
    return account


def load(settings: SignerSettings) -> LocalAccount | RemoteSigner:
    """The configured backend; a plain key only outside production."""
    from blockproof.settings import signer_private_key

    if settings.signer_keystore:
        return from_keystore(settings.signer_keystore, read_password(settings))
    if settings.signer_url:
        if not settings.signer_address:
            raise ConfigurationError("BLOCKPROOF_SIGNER_URL needs BLOCKPROOF_SIGNER_ADDRESS, the key's address there")
        return RemoteSigner(settings.signer_url, settings.signer_address, timeout=settings.rpc_timeout_seconds)
    if settings.production:
        raise ConfigurationError(f"a plain BLOCKPROOF_SIGNER_KEY is refused in production; use {SAFE_OPTIONS}")
    account: LocalAccount = Account.from_key(signer_private_key(settings))
    return account
