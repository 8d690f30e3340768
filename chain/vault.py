"""Calldata and event codec for the BlockProofCredentialVault interface (and our batch extension).

Written against the interface's ABI signatures (docs/contract.md), so it works with any deployment of the interface.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address

ISSUE_SINGLE = "issueCredential((address,address,bytes32,string,string,uint64))"
ISSUE_BATCH = "issueCredentialBatch(address,string,(address,bytes32,string,string,uint64)[])"
ISSUE_BATCH_PACKED = "issueCredentialBatchPacked(address,string,bytes)"
REVOKE_SINGLE = "revokeCredential(uint256,bytes32)"
REVOKE_BATCH = "revokeCredentialBatch(uint256[],bytes32[])"
ISSUED_EVENT = "CredentialIssued(uint256,address,address,bytes32,string,string,uint64)"
REVOKED_EVENT = "CredentialRevoked(uint256,address,bytes32,uint64)"

ISSUED_TOPIC = "0x" + keccak(text=ISSUED_EVENT).hex()
REVOKED_TOPIC = "0x" + keccak(text=REVOKED_EVENT).hex()


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _types(signature: str) -> list[str]:
    inner = signature[signature.index("(") + 1 : -1]
    out, depth, current = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    if current:
        out.append(current)
    return out


def calldata(signature: str, *args: Any) -> str:
    return "0x" + (selector(signature) + encode(_types(signature), list(args))).hex()


@dataclass(frozen=True)
class IssueItem:
    student_wallet: str
    fingerprint: bytes
    metadata_uri: str  # relative to the batch base URI in a batch call, full in a single call
    payload_uri: str
    expires_at: int


def issue_single(institution: str, base_uri: str, item: IssueItem) -> str:
    full_meta = base_uri + item.metadata_uri if item.metadata_uri else ""
    full_payload = base_uri + item.payload_uri if item.payload_uri else ""
    request = (institution, item.student_wallet, item.fingerprint, full_meta, full_payload, item.expires_at)
    return calldata(ISSUE_SINGLE, request)


def issue_batch(institution: str, base_uri: str, items: list[IssueItem]) -> str:
    rows = [(i.student_wallet, i.fingerprint, i.metadata_uri, i.payload_uri, i.expires_at) for i in items]
    return calldata(ISSUE_BATCH, institution, base_uri, rows)


def pack_rows(items: list[IssueItem]) -> bytes:
    """issueCredentialBatchPacked's rows: wallet (20 bytes) ‖ fingerprint (32) ‖ expiry length (1) ‖ expiry
    (big-endian, no leading zeros) ‖ uint16 length ‖ metadata suffix ‖ uint16 length ‖ payload suffix."""
    out = bytearray()
    for item in items:
        wallet, fingerprint = bytes.fromhex(item.student_wallet[2:]), bytes(item.fingerprint)
        if len(wallet) != 20 or len(fingerprint) != 32 or not 0 <= item.expires_at < 2**64:
            raise ValueError(f"row for {item.student_wallet}: wallet, fingerprint or expiry out of range")
        expires = item.expires_at.to_bytes(8, "big").lstrip(b"\0")
        out += wallet + fingerprint + bytes([len(expires)]) + expires
        for uri in (item.metadata_uri, item.payload_uri):
            raw = uri.encode()
            if len(raw) > 0xFFFF:
                raise ValueError(f"row for {item.student_wallet}: a URI longer than 65,535 bytes cannot be packed")
            out += len(raw).to_bytes(2, "big") + raw
    return bytes(out)


def issue_batch_packed(institution: str, base_uri: str, items: list[IssueItem]) -> str:
    return calldata(ISSUE_BATCH_PACKED, institution, base_uri, pack_rows(items))


def decode_issue_batch_result(data: str) -> list[int]:
    return list(decode(["uint256[]"], bytes.fromhex(data[2:]))[0])


def revoke_single(credential_id: int, reason_hash: bytes) -> str:
    return calldata(REVOKE_SINGLE, credential_id, reason_hash)


def revoke_batch(credential_ids: list[int], reason_hashes: list[bytes]) -> str:
    return calldata(REVOKE_BATCH, credential_ids, reason_hashes)


def reason_hash(reason: str) -> bytes:
    return keccak(text=reason)


def _addr(topic: str) -> str:
    return to_checksum_address("0x" + topic[-40:])


def decode_issued(log: dict[str, Any]) -> dict[str, Any]:
    fingerprint, meta, payload, expires = decode(
        ["bytes32", "string", "string", "uint64"], bytes.fromhex(log["data"][2:])
    )
    return {
        "credential_id": int(log["topics"][1], 16),
        "student_wallet": _addr(log["topics"][2]),
        "institution": _addr(log["topics"][3]),
        "fingerprint": "0x" + fingerprint.hex(),
        "metadata_uri": meta,
        "encrypted_payload_uri": payload,
        "expires_at": expires,
    }


def decode_revoked(log: dict[str, Any]) -> dict[str, Any]:
    reason, revoked_at = decode(["bytes32", "uint64"], bytes.fromhex(log["data"][2:]))
    return {
        "credential_id": int(log["topics"][1], 16),
        "revoked_by": _addr(log["topics"][2]),
        "reason_hash": "0x" + reason.hex(),
        "revoked_at": revoked_at,
    }
