"""Database tables. Schema changes go through Alembic migrations (models/migrations)."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import BigInteger, Column, Index, Numeric, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.states import JobState, utcnow


class Batch(SQLModel, table=True):
    __tablename__ = "batches"
    id: Optional[int] = Field(default=None, primary_key=True)
    filename: str = Field(max_length=255)
    institution: str = Field(max_length=42, index=True)
    base_uri: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    kind: str = Field(default="issue", max_length=16)  # issue | revoke
    row_count: int = 0
    invalid_count: int = 0
    duplicate_count: int = 0
    paused: bool = False
    created_by: str = Field(default="cli", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    # when the operator needs it done: the signer leaves the EIP-1559 target pace if that would be late
    deadline: Optional[datetime] = None


class Job(SQLModel, table=True):
    """One CSV row: one credential to issue (kind=issue) or to revoke (kind=revoke)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_batch_state", "batch_id", "state"),
        Index("ix_jobs_state_institution", "state", "institution"),
        UniqueConstraint("kind", "idempotency_key", name="uq_jobs_kind_key"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batches.id")
    kind: str = Field(default="issue", max_length=16)
    # issue: the fingerprint; revoke: "revoke:<credential id>"
    idempotency_key: str = Field(max_length=80)
    line: int = 0
    state: str = Field(default=JobState.VALIDATED.value, max_length=16)
    institution: str = Field(max_length=42)
    student_id: str = Field(default="", max_length=64, index=True)
    student_name: str = Field(default="", max_length=200)
    student_wallet: str = Field(default="", max_length=42, index=True)
    degree: str = Field(default="", max_length=200)
    major: str = Field(default="", max_length=200)
    graduation_date: str = Field(default="", max_length=10)
    expires_at: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    fingerprint: str = Field(default="", max_length=66, index=True)
    document: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    metadata_suffix: str = Field(default="", max_length=255)
    revocation_reason: str = Field(default="", max_length=500)
    credential_id: Optional[int] = Field(default=None, sa_column=Column(BigInteger, index=True))
    transaction_id: Optional[int] = Field(default=None, foreign_key="transactions.id", index=True)
    tx_hash: Optional[str] = Field(default=None, max_length=66, index=True)
    block_number: Optional[int] = Field(default=None, sa_column=Column(BigInteger))
    error_code: str = Field(default="", max_length=64)
    error_message: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    retryable: bool = False
    retries: int = 0
    next_attempt_at: Optional[datetime] = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class JobTransition(SQLModel, table=True):
    """State history of a job: every change, with why."""

    __tablename__ = "job_transitions"
    id: Optional[int] = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True)
    from_state: str = Field(max_length=16)
    to_state: str = Field(max_length=16)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    at: datetime = Field(default_factory=utcnow)


class SignerState(SQLModel, table=True):
    """Per signing key: the locally owned nonce and whether issuance is on hold."""

    __tablename__ = "signer_state"
    address: str = Field(primary_key=True, max_length=42)
    next_nonce: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    chain_nonce: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    balance_wei: str = Field(default="0", max_length=80)
    paused: bool = False  # paused by an operator
    hold_reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # paused by a condition
    heartbeat_at: Optional[datetime] = None
    updated_at: datetime = Field(default_factory=utcnow)


class SignerLease(SQLModel, table=True):
    """Who may sign for a key on a chain right now (workers/signer/lease.py)."""

    __tablename__ = "signer_lease"
    key: str = Field(primary_key=True, max_length=80)  # "<chain id>:<address>"
    holder: str = Field(max_length=32)  # a random token per process
    host: str = Field(max_length=255)
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime


class ChainTransaction(SQLModel, table=True):
    """One nonce of one signer: the call it carries; its signed attempts are TxAttempt rows."""

    __tablename__ = "transactions"
    __table_args__ = (UniqueConstraint("signer", "nonce", name="uq_transactions_signer_nonce"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    signer: str = Field(max_length=42)
    nonce: int = Field(sa_column=Column(BigInteger, nullable=False))
    kind: str = Field(max_length=24)  # issue_batch | issue_single | revoke_batch | revoke_single | noop
    to_address: str = Field(max_length=42)
    data: str = Field(sa_column=Column(Text, nullable=False))
    gas_limit: int = Field(sa_column=Column(BigInteger, nullable=False))
    job_count: int = 0
    status: str = Field(default="pending", max_length=16, index=True)  # pending | mined | reverted | superseded
    mined_hash: Optional[str] = Field(default=None, max_length=66)
    block_number: Optional[int] = Field(default=None, sa_column=Column(BigInteger))
    gas_used: Optional[int] = Field(default=None, sa_column=Column(BigInteger))
    effective_gas_price: Optional[int] = Field(default=None, sa_column=Column(Numeric(40, 0)))
    batch_id: Optional[int] = Field(default=None, index=True)  # the batch whose jobs it carries (None: a no-op)
    # the OP-stack L1 data fee: getL1Fee of the signed bytes when sent, the receipt's l1Fee once mined if it has
    # one; and what the transaction paid in all, from its receipt: gasUsed × effectiveGasPrice + that
    l1_fee_wei: Optional[int] = Field(default=None, sa_column=Column(Numeric(40, 0)))
    fee_paid_wei: Optional[int] = Field(default=None, sa_column=Column(Numeric(40, 0)))
    last_sent_at: Optional[datetime] = None
    created_at: datetime = Field(default_factory=utcnow)
    mined_at: Optional[datetime] = None


class TxAttempt(SQLModel, table=True):
    """A signed transaction, written before it is broadcast (write-ahead)."""

    __tablename__ = "tx_attempts"
    id: Optional[int] = Field(default=None, primary_key=True)
    transaction_id: int = Field(foreign_key="transactions.id", index=True)
    tx_hash: str = Field(max_length=66, unique=True)
    raw: str = Field(sa_column=Column(Text, nullable=False))
    max_fee_per_gas: int = Field(sa_column=Column(Numeric(40, 0), nullable=False))
    max_priority_fee_per_gas: int = Field(sa_column=Column(Numeric(40, 0), nullable=False))
    status: str = Field(default="signed", max_length=16)  # signed | broadcast | mined | replaced
    broadcast_count: int = 0
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)


class CredentialEvent(SQLModel, table=True):
    """A CredentialIssued event on the canonical chain, keyed by transaction hash + log index."""

    __tablename__ = "credential_events"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_credential_events_log"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    credential_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    tx_hash: str = Field(max_length=66)
    log_index: int
    block_number: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    block_hash: str = Field(max_length=66)
    fingerprint: str = Field(max_length=66, index=True)
    student_wallet: str = Field(max_length=42, index=True)
    institution: str = Field(max_length=42)
    metadata_uri: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    encrypted_payload_uri: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    expires_at: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    revoked: bool = False
    revoked_at: Optional[int] = Field(default=None, sa_column=Column(BigInteger))
    revocation_reason_hash: Optional[str] = Field(default=None, max_length=66)


class RevocationEvent(SQLModel, table=True):
    __tablename__ = "revocation_events"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_revocation_events_log"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    credential_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    tx_hash: str = Field(max_length=66)
    log_index: int
    block_number: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    block_hash: str = Field(max_length=66)
    revoked_by: str = Field(max_length=42)
    reason_hash: str = Field(max_length=66)
    revoked_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class IndexedBlock(SQLModel, table=True):
    """Hashes of blocks the consumer has ingested, to detect reorgs by parent hash."""

    __tablename__ = "indexed_blocks"
    number: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: str = Field(max_length=66)
    parent_hash: str = Field(max_length=66)


class ConsumerCheckpoint(SQLModel, table=True):
    __tablename__ = "consumer_checkpoint"
    name: str = Field(primary_key=True, max_length=64)
    block_number: int = Field(default=-1, sa_column=Column(BigInteger, nullable=False, default=-1))
    block_hash: str = Field(default="", max_length=66)
    head_block: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    # every event at or below this block has already confirmed its job: confirmation looks only above it
    confirmed_through: int = Field(default=-1, sa_column=Column(BigInteger, nullable=False, default=-1,
                                                                server_default="-1"))
    getlogs_chunk: int = 1000
    halted_reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    updated_at: datetime = Field(default_factory=utcnow)


class Alert(SQLModel, table=True):
    __tablename__ = "alerts"
    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, index=True)  # deep_reorg | stuck_transaction | low_balance | on_hold | missing_event
    subject: str = Field(default="", max_length=120)
    message: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    resolved_at: Optional[datetime] = None


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"
    id: Optional[int] = Field(default=None, primary_key=True)
    actor: str = Field(max_length=64)  # the person's user name (web), or cli:<login> / demo / signer
    ip: str = Field(default="", max_length=64)  # the client's address for a web request
    action: str = Field(max_length=64)
    target: str = Field(default="", max_length=200)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    at: datetime = Field(default_factory=utcnow)


class Person(SQLModel, table=True):
    """Someone who logs in to the web UI or owns API tokens (web/people.py)."""

    __tablename__ = "users"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)  # viewer | operator | admin
    password_hash: str = Field(sa_column=Column(Text, nullable=False))  # argon2id; never the password
    must_change_password: bool = True  # a one-time password (set-up, reset) is changed at the next login
    disabled: bool = False
    created_by: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    password_changed_at: datetime = Field(default_factory=utcnow)
    last_login_at: Optional[datetime] = None


class WebSession(SQLModel, table=True):
    """A logged-in browser. The cookie holds a random id; this row is keyed by its SHA-256 (web/sessions.py)."""

    __tablename__ = "web_sessions"
    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="users.id", index=True)
    csrf_token: str = Field(max_length=64)
    flash: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    ip: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    revoked_at: Optional[datetime] = None
    revoked_why: str = Field(default="", max_length=32)  # logout | password change | disabled | ...


class LoginThrottle(SQLModel, table=True):
    """Recent failed logins per account ("user:<name>") and per client address ("ip:<address>") (web/throttle.py)."""

    __tablename__ = "login_throttle"
    key: str = Field(primary_key=True, max_length=120)
    failures: int = 0
    last_failure_at: datetime = Field(default_factory=utcnow)
    locked_until: Optional[datetime] = None


class ApiToken(SQLModel, table=True):
    """A script's credential: shown once, stored as its SHA-256 (web/tokens.py)."""

    __tablename__ = "api_tokens"
    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    label: str = Field(default="", max_length=100)
    scope: str = Field(max_length=16)  # read | operate
    prefix: str = Field(max_length=16)  # the token's first characters, to tell tokens apart in lists
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    last_used_at: Optional[datetime] = None
    last_used_ip: str = Field(default="", max_length=64)
    revoked_at: Optional[datetime] = None
