"""Load the compiled contract artifacts written by ``node contracts/compile.mjs``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from eth_utils import function_signature_to_4byte_selector

BUILD_DIR = Path(__file__).resolve().parent / "build"

VAULT = "BlockProofCredentialVault"
BASIC = "BlockProofCredentialVaultBasic"
V1 = "BlockProofCredentialVaultV1"  # the vault before the blob layout (issue 17), for bench/gas.py
ARTIFACT_NAMES = (VAULT, BASIC, V1)
L1_FEE_ORACLE_STUB = "L1FeeOracleStub"  # tests only: getL1Fee of an OP-stack GasPriceOracle, for Anvil

_BATCH_CREDENTIAL = "(address,bytes32,string,string,uint64)"
ISSUE_BATCH_SIGNATURE = f"issueCredentialBatch(address,string,{_BATCH_CREDENTIAL}[])"
REVOKE_BATCH_SIGNATURE = "revokeCredentialBatch(uint256[],bytes32[])"


def _xor4(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


#: ERC-165 interface id of IBlockProofBatch (XOR of the two batch selectors).
BATCH_INTERFACE_ID: bytes = _xor4(
    function_signature_to_4byte_selector(ISSUE_BATCH_SIGNATURE),
    function_signature_to_4byte_selector(REVOKE_BATCH_SIGNATURE),
)
PACKED_BATCH_SIGNATURE = "issueCredentialBatchPacked(address,string,bytes)"
#: ERC-165 interface id of IBlockProofPackedBatch (its one selector).
PACKED_BATCH_INTERFACE_ID: bytes = function_signature_to_4byte_selector(PACKED_BATCH_SIGNATURE)
#: ERC-165's own interface id.
ERC165_INTERFACE_ID: bytes = bytes.fromhex("01ffc9a7")


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]] = field(repr=False)
    bytecode: str = field(repr=False)  # 0x-prefixed creation code
    compiler: dict[str, Any]
    settings: dict[str, Any]
    deployed_bytecode: str = field(default="", repr=False)


@lru_cache(maxsize=None)
def load_artifact(name: str = VAULT) -> Artifact:
    """The artifact ``contracts/build/<name>.json``; FileNotFoundError names the compile command."""
    path = BUILD_DIR / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: run `node contracts/compile.mjs` (known: {', '.join(ARTIFACT_NAMES)})")
    data = json.loads(path.read_text())
    return Artifact(
        name=data["contractName"],
        abi=data["abi"],
        bytecode=data["bytecode"],
        compiler=data["compiler"],
        settings=data["settings"],
        deployed_bytecode=data.get("deployedBytecode", ""),
    )
