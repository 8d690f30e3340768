"""The seed's read path: credential status and fingerprint verification, database first, chain fallback.

Both sources give the same answer, field for field (only `source` says which one answered): the record that the
CredentialIssued and CredentialRevoked events carry, and one verdict with a plain reason, judged against one clock:
the timestamp of the chain's latest block, which is what the contract's own `valid` uses (block.timestamp).
"""
from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timezone

from eth_abi import decode, encode
from eth_utils import to_checksum_address
from sqlalchemy import select
from sqlmodel import Session

from blockproof.errors import RpcError, RpcUnavailable
from chain.rpc import Rpc
from blockproof.settings import Settings
from chain.vault import selector
from models.tables import CredentialEvent

STATUS = "credentialStatus(uint256)"
STATUS_TYPES = ["(bool,bool,bool,bytes32,address,address,uint64,uint64,uint64)"]
GET_CREDENTIAL = "getCredential(uint256)"
CREDENTIAL_TYPES = ["(uint256,address,address,bytes32,string,string,uint64,uint64,uint64,bytes32,bool)"]
FINGERPRINT = re.compile(r"^0x[0-9a-fA-F]{64}$")
# The contract numbers credentials 1, 2, 3, … and the database keeps them in BIGINT columns: any other id was never
# issued, and asking the database about it would be an error rather than an answer.
CREDENTIAL_ID_MAX = 2**63 - 1
VERDICTS = ("valid", "revoked", "expired", "not_issued", "fingerprint_mismatch")
RECORD_FIELDS = ("fingerprint", "student_wallet", "institution", "metadata_uri", "encrypted_payload_uri",
                 "expires_at", "revoked_at", "revocation_reason_hash")
ZERO_HASH = "0x" + "00" * 32


class InvalidFingerprint(ValueError):
    """A fingerprint that is not 0x followed by 64 hexadecimal digits."""


def is_credential_id(value: int) -> bool:
    return 1 <= value <= CREDENTIAL_ID_MAX


def parse_fingerprint(text: str) -> str:
    """The fingerprint in lower case, or InvalidFingerprint saying what is wrong with it."""
    value = text.strip()
    if FINGERPRINT.match(value):
        return value.lower()
    shown = value if len(value) <= 20 else value[:12] + "…" + value[-4:]
    if re.fullmatch(r"[0-9a-fA-F]{64}", value):
        problem = "the 0x prefix is missing"
    elif not value.lower().startswith("0x"):
        problem = "it does not start with 0x"
    elif re.search(r"[^0-9a-fA-F]", value[2:]):
        problem = "it has characters that are not hexadecimal digits"
    else:
        problem = f"it has {len(value) - 2} hex digits"
    raise InvalidFingerprint(f"fingerprint {shown!r} is not valid: {problem}; a fingerprint is 0x followed by "
                             "64 hexadecimal digits (the keccak-256 of the credential's fields)")


def _utc(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def judge(credential_id: int, record: dict | None, *, now: int, clock: str, fingerprint: str | None
          ) -> tuple[str, str]:
    """(verdict, reason): the contract's rule (revoked, or expiresAt != 0 and expiresAt < now), and a fingerprint,
    when one is given, must be the one the credential was issued with."""
    if record is None:
        return "not_issued", f"No credential {credential_id} has been issued on this contract."
    if fingerprint is not None and fingerprint.lower() != record["fingerprint"]:
        return "fingerprint_mismatch", (f"Credential {credential_id} exists, but it was issued with another "
                                        "fingerprint: the document checked is not the one this credential is for.")
    if record["revoked"]:
        when = f" on {_utc(record['revoked_at'])}" if record["revoked_at"] else ""
        return "revoked", f"Credential {credential_id} was revoked{when}."
    expires = record["expires_at"]
    time_of = "chain time" if clock == "chain" else "this machine's time: the chain could not be asked"
    if expires != 0 and expires < now:
        return "expired", f"Credential {credential_id} expired on {_utc(expires)} ({time_of} is {_utc(now)})."
    until = "it never expires" if expires == 0 else f"it expires on {_utc(expires)}"
    matches = ", and the fingerprint matches" if fingerprint is not None else ""
    return "valid", (f"Credential {credential_id} is valid: issued by {record['institution']}, not revoked, "
                     f"{until}{matches}.")


def answer(credential_id: int, record: dict | None, *, now: int | None, clock: str | None, source: str,
           fingerprint: str | None) -> dict:
    """The one shape both sources answer in; every key is present whether or not the credential exists."""
    verdict, reason = judge(credential_id, record, now=now or 0, clock=clock or "", fingerprint=fingerprint)
    revoked = bool(record and record["revoked"])
    expired = bool(record and record["expires_at"] != 0 and now is not None and record["expires_at"] < now)
    out = {"credential_id": credential_id, "exists": record is not None, "verdict": verdict, "reason": reason,
           "valid": record is not None and not revoked and not expired, "revoked": revoked, "expired": expired}
    out |= {name: record[name] if record else None for name in RECORD_FIELDS}
    out |= {"checked_at": now, "clock": clock, "source": source}
    if fingerprint is not None:
        out["fingerprint_matches"] = record is not None and record["fingerprint"] == fingerprint.lower()
        out["verified"] = verdict == "valid"
    return out


# ---- the two sources ------------------------------------------------------------------------------------------
def record_from_database(session: Session, credential_id: int) -> dict | None:
    table = CredentialEvent.__table__  # a Core row: the read path answers verifiers in well under a millisecond
    event = session.execute(select(table).where(table.c.credential_id == credential_id).limit(1)).first()
    if event is None:
        return None
    return {"fingerprint": event.fingerprint.lower(), "student_wallet": to_checksum_address(event.student_wallet),
            "institution": to_checksum_address(event.institution), "metadata_uri": event.metadata_uri,
            "encrypted_payload_uri": event.encrypted_payload_uri, "expires_at": event.expires_at,
            "revoked": bool(event.revoked), "revoked_at": event.revoked_at if event.revoked else None,
            "revocation_reason_hash": event.revocation_reason_hash if event.revoked else None}


def latest_block(rpc: Rpc) -> tuple[int, int]:
    """(number, timestamp) of the chain's latest block."""
    block = rpc.get_block("latest")
    return int(block["number"], 16), int(block["timestamp"], 16)


def record_from_chain(rpc: Rpc, vault: str, credential_id: int, block: int) -> dict | None:
    """The credential as of `block` (credentialStatus for existence, getCredential for the URIs)."""
    arg = encode(["uint256"], [credential_id])
    status, credential = rpc.batch([
        ("eth_call", [{"to": vault, "data": "0x" + (selector(STATUS) + arg).hex()}, hex(block)]),
        ("eth_call", [{"to": vault, "data": "0x" + (selector(GET_CREDENTIAL) + arg).hex()}, hex(block)])])
    if isinstance(status, RpcError):
        raise status
    if not decode(STATUS_TYPES, bytes.fromhex(status[2:]))[0][0]:
        return None
    if isinstance(credential, RpcError):
        raise credential
    (_, wallet, institution, fingerprint, metadata_uri, payload_uri, _, expires, revoked_at, reason,
     revoked) = decode(CREDENTIAL_TYPES, bytes.fromhex(credential[2:]))[0]
    reason_hash = "0x" + reason.hex()
    return {"fingerprint": "0x" + fingerprint.hex(), "student_wallet": to_checksum_address(wallet),
            "institution": to_checksum_address(institution), "metadata_uri": metadata_uri,
            "encrypted_payload_uri": payload_uri, "expires_at": expires, "revoked": revoked,
            "revoked_at": (revoked_at or None) if revoked else None,
            "revocation_reason_hash": reason_hash if revoked and reason_hash != ZERO_HASH else None}


class ChainClock:
    """The timestamp of the chain's latest block, asked at most once per `ttl` seconds. When the chain cannot be
    asked, the machine's clock stands in, and the answer says so (clock: "machine")."""

    def __init__(self, ttl: float = 1.0, *, monotonic=time.monotonic, wall=time.time):
        self.ttl, self._monotonic, self._wall = ttl, monotonic, wall
        self._value: tuple[int, str] | None = None
        self._at = 0.0
        self._lock = threading.Lock()

    def observe(self, timestamp: int) -> None:
        with self._lock:
            self._value, self._at = (timestamp, "chain"), self._monotonic()

    def now(self, rpc: Rpc) -> tuple[int, str]:
        with self._lock:
            if self._value is not None and self._monotonic() - self._at < self.ttl:
                return self._value
        try:
            timestamp = latest_block(rpc)[1]
        except (RpcUnavailable, RpcError):
            value = (int(self._wall()), "machine")
            with self._lock:
                self._value, self._at = value, self._monotonic()
            return value
        self.observe(timestamp)
        return timestamp, "chain"


def credential_status(credential_id: int, *, fingerprint: str | None = None, settings: Settings, engine,
                      rpc: Rpc | None = None, clock: ChainClock | None = None) -> dict:
    """Database first, the chain when the database has not seen the credential. RpcUnavailable / RpcError only when
    the chain had to be asked for the record and could not answer; InvalidFingerprint for a malformed fingerprint."""
    fingerprint = parse_fingerprint(fingerprint) if fingerprint is not None else None
    if not is_credential_id(credential_id):
        return answer(credential_id, None, now=None, clock=None, source="none", fingerprint=fingerprint)
    rpc = rpc or Rpc.for_settings(settings)
    clock = clock or ChainClock(ttl=0)
    with Session(engine) as s:
        record = record_from_database(s, credential_id)
    if record is not None:
        now, which = clock.now(rpc)
        return answer(credential_id, record, now=now, clock=which, source="database", fingerprint=fingerprint)
    block, now = latest_block(rpc)
    clock.observe(now)
    record = record_from_chain(rpc, settings.vault_address, credential_id, block)
    return answer(credential_id, record, now=now, clock="chain", source="chain", fingerprint=fingerprint)
