"""Fast decoding of the vault's logs into table rows.

The ABI layout of CredentialIssued's data is fixed (bytes32, string offset, string offset, uint64), so the
common case is sliced directly from the hex; anything unusual falls back to eth_abi (chain.vault).
"""
from __future__ import annotations

from functools import lru_cache

from Crypto.Hash import keccak

from chain import vault


@lru_cache(maxsize=65536)
def _address(topic: str) -> str:
    """EIP-55 checksum address of an indexed address topic (same result as eth_utils, a fraction of the cost)."""
    hex40 = topic[-40:].lower()
    digest = keccak.new(digest_bits=256, data=hex40.encode()).hexdigest()
    return "0x" + "".join(c.upper() if d in "89abcdef" else c for c, d in zip(hex40, digest))


def _string_at(data: str, offset: int) -> str:
    """The ABI string whose head starts `offset` bytes into the data (data without 0x)."""
    start = offset * 2
    length = int(data[start : start + 64], 16)
    if length == 0:
        return ""
    body = data[start + 64 : start + 64 + 2 * length]
    if len(body) != 2 * length:
        raise ValueError("string runs past the data")
    return bytes.fromhex(body).decode("utf-8")


def issued_fields(entry: dict) -> dict:
    topics = entry["topics"]
    data = entry["data"][2:]
    try:
        if len(topics) != 4 or len(data) < 256 + 128:
            raise ValueError("unexpected layout")
        meta_offset = int(data[64:128], 16)
        payload_offset = int(data[128:192], 16)
        expires = int(data[192:256], 16)
        if expires >= 1 << 64 or meta_offset % 32 or payload_offset % 32:
            raise ValueError("not canonical")
        meta = _string_at(data, meta_offset)
        payload = _string_at(data, payload_offset)
    except (ValueError, UnicodeDecodeError):
        return vault.decode_issued(entry)
    return {
        "credential_id": int(topics[1], 16),
        "student_wallet": _address(topics[2]),
        "institution": _address(topics[3]),
        "fingerprint": "0x" + data[0:64],
        "metadata_uri": meta,
        "encrypted_payload_uri": payload,
        "expires_at": expires,
    }


def revoked_fields(entry: dict) -> dict:
    data = entry["data"][2:]
    if len(entry["topics"]) != 3 or len(data) != 128:
        return vault.decode_revoked(entry)
    return {
        "credential_id": int(entry["topics"][1], 16),
        "revoked_by": _address(entry["topics"][2]),
        "reason_hash": "0x" + data[0:64],
        "revoked_at": int(data[64:128], 16),
    }


def rows_from_logs(logs: list[dict]) -> tuple[list[dict], list[dict]]:
    """(CredentialEvent rows, RevocationEvent rows) from raw eth_getLogs entries."""
    issued, revoked = [], []
    for entry in logs:
        if entry.get("removed"):
            continue
        topic = entry["topics"][0] if entry["topics"] else ""
        base = {"tx_hash": entry["transactionHash"], "log_index": int(entry["logIndex"], 16),
                "block_number": int(entry["blockNumber"], 16), "block_hash": entry["blockHash"]}
        if topic == vault.ISSUED_TOPIC:
            issued.append(base | issued_fields(entry))
        elif topic == vault.REVOKED_TOPIC:
            revoked.append(base | revoked_fields(entry))
    return issued, revoked
