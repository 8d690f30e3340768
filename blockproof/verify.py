"""The seed's read path: credential status and fingerprint verification, database first, chain fallback."""
from __future__ import annotations

import time

from eth_abi import decode, encode
from sqlalchemy import select
from sqlmodel import Session

from blockproof.rpc import Rpc
from blockproof.settings import Settings
from blockproof.vault import selector
from models.tables import CredentialEvent

STATUS = "credentialStatus(uint256)"
STATUS_TYPES = ["(bool,bool,bool,bytes32,address,address,uint64,uint64,uint64)"]
# The contract numbers credentials 1, 2, 3, … and the database keeps them in BIGINT columns: any other id was never
# issued, and asking the database about it would be an error rather than an answer.
CREDENTIAL_ID_MAX = 2**63 - 1


def is_credential_id(value: int) -> bool:
    return 1 <= value <= CREDENTIAL_ID_MAX


def _from_db(session: Session, credential_id: int, now: int) -> dict | None:
    table = CredentialEvent.__table__  # a Core row: the read path answers verifiers in well under a millisecond
    event = session.execute(select(table).where(table.c.credential_id == credential_id).limit(1)).first()
    if event is None:
        return None
    expired = event.expires_at != 0 and event.expires_at < now
    return {"credential_id": credential_id, "exists": True, "valid": not event.revoked and not expired,
            "revoked": event.revoked, "expired": expired, "fingerprint": event.fingerprint,
            "student_wallet": event.student_wallet, "institution": event.institution,
            "metadata_uri": event.metadata_uri, "expires_at": event.expires_at, "revoked_at": event.revoked_at,
            "tx_hash": event.tx_hash, "block_number": event.block_number, "source": "database"}


def _from_chain(rpc: Rpc, vault: str, credential_id: int) -> dict:
    data = "0x" + (selector(STATUS) + encode(["uint256"], [credential_id])).hex()
    raw = rpc.call("eth_call", {"to": vault, "data": data}, "latest")
    exists, valid, revoked, fp, wallet, inst, issued, expires, revoked_at = decode(STATUS_TYPES, bytes.fromhex(raw[2:]))[0]
    if not exists:
        return {"credential_id": credential_id, "exists": False, "valid": False, "source": "chain"}
    return {"credential_id": credential_id, "exists": True, "valid": valid, "revoked": revoked,
            "fingerprint": "0x" + fp.hex(), "student_wallet": wallet, "institution": inst, "issued_at": issued,
            "expires_at": expires, "revoked_at": revoked_at or None, "source": "chain"}


def credential_status(credential_id: int, *, fingerprint: str | None = None, settings: Settings, engine,
                      rpc: Rpc | None = None) -> dict:
    if not is_credential_id(credential_id):
        result = {"credential_id": credential_id, "exists": False, "valid": False, "source": "database"}
    else:
        with Session(engine) as s:
            result = _from_db(s, credential_id, int(time.time()))
    if result is None:
        result = _from_chain(rpc or Rpc(settings.rpc_url, settings.rpc_timeout_seconds), settings.vault_address,
                             credential_id)
    if fingerprint is not None:
        result["fingerprint_matches"] = bool(result.get("exists")) and \
            result.get("fingerprint", "").lower() == fingerprint.lower()
        result["verified"] = result["fingerprint_matches"] and bool(result.get("valid"))
    return result
