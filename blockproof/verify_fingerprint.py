"""Which credential carries this fingerprint, and is it valid? The public verification page's question.

A document's holder has no credential id, only the document; the browser recomputes its fingerprint and asks here.
The database answers first (the consumer's CredentialIssued events); for a fingerprint it has not seen, the chain's
``fingerprintUsed`` says whether to look further, and the logs after the consumer's checkpoint (the only blocks the
database may be missing) give the credential id. The verdict is blockproof.verify's, in the page's words: a
fingerprint no credential carries is ``altered`` when the document names a student wallet that holds a credential of
the same institution (the document was changed after issue), else ``not_issued``.

Only non-personal facts are answered: institution, dates, status, transaction. Never the graduate's name or wallet.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from eth_abi import decode, encode
from eth_utils import to_checksum_address
from sqlalchemy import select
from sqlmodel import Session

from chain import vault
from blockproof.errors import RpcError, RpcUnavailable
from chain.rpc import Rpc
from blockproof.settings import Settings
from blockproof.verify import ChainClock, credential_status, parse_fingerprint
from models.tables import ConsumerCheckpoint, CredentialEvent

VERDICTS = ("valid", "revoked", "expired", "not_issued", "altered")
FINGERPRINT_USED = "fingerprintUsed(bytes32)"
GET_INSTITUTION = "getInstitution(address)"
STUDENT_IDS = "studentCredentialIds(address)"
STATUS = "credentialStatus(uint256)"
STATUS_TYPES = ["(bool,bool,bool,bytes32,address,address,uint64,uint64,uint64)"]
MAX_SCAN_CHUNKS = 20  # blocks past the checkpoint searched for a fingerprint, in getlogs_chunk steps


class Facts:
    """What never changes once on chain (a block's time) or rarely (an institution's name), asked once."""

    def __init__(self, ttl: float = 300.0, *, monotonic=time.monotonic):
        self.ttl, self._monotonic = ttl, monotonic
        self._names: dict[str, tuple[float, str]] = {}
        self._times: dict[int, int] = {}
        self._lock = threading.Lock()

    def institution_name(self, rpc: Rpc, vault_address: str, institution: str) -> str:
        with self._lock:
            hit = self._names.get(institution)
            if hit and self._monotonic() - hit[0] < self.ttl:
                return hit[1]
        data = rpc.call("eth_call", {"to": vault_address, "data": vault.calldata(GET_INSTITUTION, institution)},
                        "latest")
        name = decode(["(string,bool,bool,uint64,uint64)"], bytes.fromhex(data[2:]))[0][0]
        with self._lock:
            self._names[institution] = (self._monotonic(), name)
        return name

    def block_time(self, rpc: Rpc, number: int) -> int:
        with self._lock:
            if number in self._times:
                return self._times[number]
        stamp = int(rpc.get_block(number)["timestamp"], 16)
        with self._lock:
            if len(self._times) > 100_000:
                self._times.clear()
            self._times[number] = stamp
        return stamp


def _utc_date(seconds: int | None) -> str | None:
    return None if not seconds else datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _event_in_database(engine, fingerprint: str) -> dict | None:
    with Session(engine) as s:
        e = s.execute(select(CredentialEvent.credential_id, CredentialEvent.tx_hash, CredentialEvent.block_number)
                      .where(CredentialEvent.fingerprint == fingerprint).limit(1)).first()
    return None if e is None else {"credential_id": e.credential_id, "tx_hash": e.tx_hash, "block": e.block_number}


def _scan_from(engine, settings: Settings) -> int:
    with Session(engine) as s:
        checkpoint = s.execute(select(ConsumerCheckpoint.block_number)).scalars().first()
    return max(settings.vault_deploy_block, (checkpoint if checkpoint is not None else -1) + 1)


def _event_on_chain(rpc: Rpc, settings: Settings, engine, fingerprint: str) -> dict | None:
    """The CredentialIssued event with this fingerprint in the blocks the database has not indexed (fingerprint is
    not an indexed topic: the logs are read and compared)."""
    used = rpc.call("eth_call", {"to": settings.vault_address,
                                 "data": vault.calldata(FINGERPRINT_USED, bytes.fromhex(fingerprint[2:]))}, "latest")
    if not int(used, 16):
        return None
    head, start = rpc.block_number(), _scan_from(engine, settings)
    step = max(1, settings.getlogs_chunk)
    start = max(start, head - step * MAX_SCAN_CHUNKS + 1)
    for first in range(start, head + 1, step):
        logs = rpc.call("eth_getLogs", {"address": settings.vault_address, "topics": [vault.ISSUED_TOPIC],
                                        "fromBlock": hex(first), "toBlock": hex(min(head, first + step - 1))})
        for log in logs:
            if vault.decode_issued(log)["fingerprint"] == fingerprint:
                return {"credential_id": int(log["topics"][1], 16), "tx_hash": log["transactionHash"],
                        "block": int(log["blockNumber"], 16)}
    return None


def _holds_credential_of(rpc: Rpc, settings: Settings, engine, wallet: str, institution: str) -> bool:
    """Does this student wallet hold any credential issued by this institution (database, then chain)?"""
    with Session(engine) as s:
        if s.execute(select(CredentialEvent.id).where(CredentialEvent.student_wallet == wallet,
                                                      CredentialEvent.institution == institution).limit(1)).first():
            return True
    data = rpc.call("eth_call", {"to": settings.vault_address, "data": vault.calldata(STUDENT_IDS, wallet)}, "latest")
    ids = decode(["uint256[]"], bytes.fromhex(data[2:]))[0][:50]
    answers = rpc.batch([("eth_call", [{"to": settings.vault_address,
                                        "data": "0x" + (vault.selector(STATUS) + encode(["uint256"], [i])).hex()},
                                       "latest"]) for i in ids]) if ids else []
    return any(not isinstance(a, Exception) and to_checksum_address(decode(STATUS_TYPES, bytes.fromhex(a[2:]))[0][5])
               == institution for a in answers)


def _address(text: str | None) -> str | None:
    try:
        return to_checksum_address(text) if text else None
    except ValueError:
        return None


def verify_fingerprint(fingerprint: str, *, settings: Settings, engine, rpc: Rpc, wallet: str | None = None,
                       institution: str | None = None, clock: ChainClock | None = None,
                       facts: Facts | None = None) -> dict:
    """The verdict on the credential carrying ``fingerprint`` (InvalidFingerprint for a malformed one; RpcError /
    RpcUnavailable when the chain had to be asked and could not answer). ``wallet`` and ``institution`` are the
    document's claims, used only to tell an altered document from one never issued."""
    fingerprint = parse_fingerprint(fingerprint)
    facts = facts or Facts()
    found, source = _event_in_database(engine, fingerprint), "database"
    if found is None:
        found, source = _event_on_chain(rpc, settings, engine, fingerprint), "chain"
    out = {"fingerprint": fingerprint, "credential_id": None, "institution": None, "institution_name": None,
           "issued_at": None, "issued_on": None, "expires_at": None, "expires_on": None, "revoked_at": None,
           "revoked_on": None, "tx_hash": None, "tx_url": None, "block": None, "source": source,
           "checked_at": None, "clock": None, "contract": settings.vault_address}
    if found is None:
        wallet, institution = _address(wallet), _address(institution)
        altered = bool(wallet and institution and _holds_credential_of(rpc, settings, engine, wallet, institution))
        if altered:
            return out | {"verdict": "altered", "institution": institution, "reason": (
                "This document does not match any credential on chain: it names a graduate who holds a credential "
                "from this institution, but the document was changed after it was issued (its fingerprint is not "
                "the one on chain).")}
        return out | {"verdict": "not_issued", "reason": "No credential with this document's fingerprint was issued "
                                                         "by this contract."}
    status = credential_status(found["credential_id"], fingerprint=fingerprint, settings=settings, engine=engine,
                               rpc=rpc, clock=clock)
    try:  # the verdict stands without them: a database answer while the chain is away
        issued_at = facts.block_time(rpc, found["block"])
        name = facts.institution_name(rpc, settings.vault_address, status["institution"])
    except (RpcError, RpcUnavailable):
        issued_at, name = None, None
    reasons = {"valid": "This credential is valid: issued on chain by the institution below, not revoked, "
                        + ("with no expiry." if not status["expires_at"] else
                           f"valid until {_utc_date(status['expires_at'])}."),
               "revoked": f"This credential was revoked by its institution on {_utc_date(status['revoked_at'])}.",
               "expired": f"This credential expired on {_utc_date(status['expires_at'])}."}
    return out | {
        "verdict": status["verdict"], "reason": reasons.get(status["verdict"], status["reason"]),
        "credential_id": found["credential_id"], "institution": status["institution"], "institution_name": name,
        "issued_at": issued_at, "issued_on": _utc_date(issued_at), "expires_at": status["expires_at"] or None,
        "expires_on": _utc_date(status["expires_at"]), "revoked_at": status["revoked_at"],
        "revoked_on": _utc_date(status["revoked_at"]), "tx_hash": found["tx_hash"],
        "tx_url": settings.explorer_tx_url(found["tx_hash"]), "block": found["block"],
        "checked_at": status["checked_at"], "clock": status["clock"]}
