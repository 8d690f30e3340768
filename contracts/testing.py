"""Small helpers for driving a deployed vault from tests and benchmarks (real chain, no mocks)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from web3.exceptions import ContractLogicError
from web3.types import TxReceipt

from blockproof.devchain import DevChain, DevEnvironment
from contracts.deploy import transact, vault_contract
from contracts.errors import DecodedError, decode_revert, revert_data_from_exception

ZERO_ADDRESS = "0x" + "00" * 20
ZERO32 = b"\x00" * 32


def fp(label: object) -> bytes:
    """A deterministic non-zero bytes32 fingerprint."""
    return hashlib.sha256(f"fingerprint:{label}".encode()).digest()


class RevertExpected(AssertionError):
    pass


@dataclass
class VaultHarness:
    chain: DevChain
    env: DevEnvironment

    def __post_init__(self) -> None:
        self.w3 = self.chain.w3
        self.contract = vault_contract(self.w3, self.env.vault_address, self.env.artifact_name)
        self.f = self.contract.functions

    # ------------------------------------------------------------- txs
    def tx(self, fn: Any, key: str | None = None, gas: int | None = None) -> TxReceipt:
        return transact(self.w3, fn, key or self.env.signer_key, gas=gas)

    def events(self, receipt: TxReceipt, name: str) -> list[dict[str, Any]]:
        from web3.logs import DISCARD

        return [dict(e.args) for e in getattr(self.contract.events, name)().process_receipt(receipt, errors=DISCARD)]

    def revert_of(self, fn: Any, sender: str) -> DecodedError:
        """The decoded error of calling ``fn`` from ``sender`` (eth_call); fails if it does not revert."""
        try:
            fn.call({"from": sender})
        except ContractLogicError as exc:
            err = decode_revert(revert_data_from_exception(exc))
            if err is None:
                raise RevertExpected(f"undecodable revert: {exc!r}") from exc
            return err
        raise RevertExpected(f"{fn.fn_name} did not revert")

    def block_timestamp(self, receipt: TxReceipt | None = None) -> int:
        block = self.w3.eth.get_block(receipt["blockNumber"] if receipt else "latest")
        return int(block["timestamp"])

    # ------------------------------------------------------------- issuing
    def request(self, student: str, fingerprint: bytes, meta: str = "", payload: str = "", expires_at: int = 0,
                institution: str | None = None) -> tuple[str, str, bytes, str, str, int]:
        return (institution or self.env.institution_address, student, fingerprint, meta, payload, expires_at)

    def issue(self, student: str, fingerprint: bytes, meta: str = "", payload: str = "", expires_at: int = 0,
              key: str | None = None, institution: str | None = None) -> int:
        receipt = self.tx(self.f.issueCredential(self.request(student, fingerprint, meta, payload, expires_at,
                                                              institution)), key)
        return int(self.events(receipt, "CredentialIssued")[0]["credentialId"])
