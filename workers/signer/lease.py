"""One signer per key and chain, enforced in the database: a lease taken before the first nonce is read.

Every database: a lease row (holder, host, pid, since, expiry) taken by a guarded UPDATE or an INSERT that
only one process can win, renewed by a heartbeat, and checked in the same transaction that reserves a
nonce, so a signer that lost its lease can never sign again. PostgreSQL also: an advisory lock held on a
connection of its own for the life of the process; when a holder dies its connection closes, the lock
frees at once and a successor may take the row without waiting for it to expire.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from blockproof.errors import BlockProofError
from models.states import utcnow
from models.tables import SignerLease

log = logging.getLogger("blockproof.signer")


class LeaseHeld(BlockProofError):
    """Another signer holds this key's lease on this chain."""


class LeaseLost(BlockProofError):
    """This signer's lease was taken over (it expired while the signer could not renew it)."""


@dataclass(frozen=True)
class Holder:
    token: str
    host: str
    pid: int

    @staticmethod
    def me() -> "Holder":
        return Holder(uuid.uuid4().hex, socket.gethostname(), os.getpid())


def lease_key(chain_id: int, address: str) -> str:
    return f"{chain_id}:{address.lower()}"


def describe(row: SignerLease) -> str:
    return (f"held by pid {row.pid} on {row.host} since {row.acquired_at:%Y-%m-%d %H:%M:%S} UTC "
            f"(renewed {row.heartbeat_at:%H:%M:%S}, expires {row.expires_at:%H:%M:%S} unless renewed)")


def _aware(moment: datetime) -> datetime:
    from datetime import timezone

    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def can_take(row: SignerLease | None, me: Holder, now: datetime, *, holder_is_gone: bool = False) -> bool:
    """Pure: a lease may be taken when nobody holds it, it is ours, it expired, or its holder is known gone."""
    return row is None or row.holder == me.token or _aware(row.expires_at) <= now or holder_is_gone


class Lease:
    def __init__(self, engine: Engine, *, chain_id: int, address: str, ttl_seconds: float, clock=utcnow):
        self.engine, self.key, self.ttl = engine, lease_key(chain_id, address), timedelta(seconds=ttl_seconds)
        self.address, self.chain_id, self.clock = address, chain_id, clock
        self.me = Holder.me()
        self._lock_connection: Connection | None = None

    # ---- taking and keeping --------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lease or raise LeaseHeld naming the holder."""
        holder_is_gone = False
        if self.engine.dialect.name == "postgresql":
            holder_is_gone = self._advisory_lock()
        now = self.clock()
        try:
            with Session(self.engine) as s:
                row = s.get(SignerLease, self.key)
                holder_is_gone = holder_is_gone or (row is not None and self._died_here(row))
                if not can_take(row, self.me, now, holder_is_gone=holder_is_gone):
                    raise LeaseHeld(f"another signer for {self.address} on chain {self.chain_id} is running: "
                                    f"{describe(row)}. Only one signer per key may run.")
                if row is None:
                    s.add(SignerLease(key=self.key, holder=self.me.token, host=self.me.host, pid=self.me.pid,
                                      acquired_at=now, heartbeat_at=now, expires_at=now + self.ttl))
                else:
                    taken = s.execute(update(SignerLease).where(
                        SignerLease.key == self.key, SignerLease.holder == row.holder,
                        SignerLease.expires_at == row.expires_at).values(
                        holder=self.me.token, host=self.me.host, pid=self.me.pid, acquired_at=now, heartbeat_at=now,
                        expires_at=now + self.ttl)).rowcount
                    if taken != 1:  # someone else took it between our read and our update
                        raise LeaseHeld(f"another signer for {self.address} on chain {self.chain_id} took the "
                                        f"lease just now")
                s.commit()
        except IntegrityError:  # two first signers at once: the other one's INSERT won
            self.release_lock()
            with Session(self.engine) as s:
                row = s.get(SignerLease, self.key)
            raise LeaseHeld(f"another signer for {self.address} on chain {self.chain_id} is running: "
                            f"{describe(row)}. Only one signer per key may run.") from None
        except BaseException:
            self.release_lock()
            raise
        log.info("signer lease for %s on chain %s taken (pid %s)", self.address, self.chain_id, self.me.pid)

    def _died_here(self, row: SignerLease) -> bool:
        """A holder on this very host whose process no longer exists (killed, crashed) holds nothing."""
        if row.host != self.me.host or row.pid == self.me.pid:
            return False
        try:
            os.kill(row.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False

    def renew(self) -> None:
        now = self.clock()
        with Session(self.engine) as s:
            renewed = s.execute(update(SignerLease).where(
                SignerLease.key == self.key, SignerLease.holder == self.me.token).values(
                heartbeat_at=now, expires_at=now + self.ttl)).rowcount
            s.commit()
        if renewed != 1:
            raise LeaseLost(f"the signer lease for {self.address} was taken over by another signer")

    def check(self, session: Session) -> None:
        """In the transaction that reserves nonces: still ours, or nothing is signed."""
        holder = session.execute(select(SignerLease.holder).where(SignerLease.key == self.key)).scalar_one_or_none()
        if holder != self.me.token:
            raise LeaseLost(f"the signer lease for {self.address} is no longer this process's; it stops signing")

    def release(self) -> None:
        try:
            with Session(self.engine) as s:
                s.execute(delete(SignerLease).where(SignerLease.key == self.key, SignerLease.holder == self.me.token))
                s.commit()
        finally:
            self.release_lock()

    # ---- PostgreSQL's advisory lock ------------------------------------------------------
    def _advisory_lock(self) -> bool:
        """True when we got the lock: any lease row left is a dead holder's."""
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        number = int.from_bytes(hashlib.sha256(self.key.encode()).digest()[:8], "big", signed=True)
        # a connection of its own, outside the pool: closing it must end the database session and its lock
        connection = create_engine(self.engine.url, poolclass=NullPool).connect()
        got = connection.execute(text("SELECT pg_try_advisory_lock(:n)"), {"n": number}).scalar()
        connection.commit()
        if not got:
            connection.close()
            with Session(self.engine) as s:
                row = s.get(SignerLease, self.key)
            raise LeaseHeld(f"another signer for {self.address} on chain {self.chain_id} is running"
                            + (f": {describe(row)}" if row else "") + ". Only one signer per key may run.")
        self._lock_connection = connection
        return True

    def release_lock(self) -> None:
        if self._lock_connection is not None:
            self._lock_connection.close()  # closing the session frees its advisory locks
            self._lock_connection = None
