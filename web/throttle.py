"""Failed logins slow down, then lock, per account and per client address. An attempt made during a wait is
refused before the password is even checked and counts as a failure, so guessing costs time whatever the
attacker's speed, and hammering reaches the lock.

The rules are pure functions of a LoginThrottle row and the time; `check` and `failed` are the thin adapters."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from models.db import session_scope
from models.states import utcnow
from models.tables import LoginThrottle


@dataclass(frozen=True)
class Policy:
    free_failures: int  # failures allowed before any wait
    lock_after: int  # this many failures lock the key for lock_minutes
    lock_minutes: float
    max_delay_seconds: float
    forget_after_minutes: float  # failures older than this (and no lock) are forgotten


ACCOUNT = Policy(free_failures=3, lock_after=10, lock_minutes=15, max_delay_seconds=60, forget_after_minutes=60)
# an office behind one NAT address shares this, so it allows more
ADDRESS = Policy(free_failures=10, lock_after=50, lock_minutes=15, max_delay_seconds=60, forget_after_minutes=60)


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every time stored here is UTC
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def delay_after(failures: int, policy: Policy) -> float:
    """Seconds to wait after the last failure before the next attempt is checked: 0, then 1, 2, 4, … capped."""
    if failures < policy.free_failures:
        return 0.0
    return float(min(2 ** (failures - policy.free_failures), policy.max_delay_seconds))


def locked_until(row: LoginThrottle | None, now: datetime) -> datetime | None:
    until = _aware(row.locked_until) if row is not None else None
    return until if until is not None and until > now else None


def _forgotten(row: LoginThrottle, now: datetime, policy: Policy) -> bool:
    return locked_until(row, now) is None and \
        now - _aware(row.last_failure_at) > timedelta(minutes=policy.forget_after_minutes)


def wait_seconds(row: LoginThrottle | None, now: datetime, policy: Policy) -> float:
    """How long until an attempt on this key may be checked (0: now)."""
    if row is None or _forgotten(row, now, policy):
        return 0.0
    until = locked_until(row, now)
    if until is not None:
        return (until - now).total_seconds()
    ready = _aware(row.last_failure_at) + timedelta(seconds=delay_after(row.failures, policy))
    return max(0.0, (ready - now).total_seconds())


def after_failure(row: LoginThrottle | None, now: datetime, policy: Policy) -> tuple[int, datetime | None]:
    """The failure count and lock after one more failure."""
    failures = 1 if row is None or _forgotten(row, now, policy) else row.failures + 1
    lock = now + timedelta(minutes=policy.lock_minutes) if failures >= policy.lock_after else None
    return failures, lock


# ---- adapters ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    seconds: float
    locked: bool
    which: str  # "account" | "address"

    def message(self) -> str:
        wait = max(1, round(self.seconds))
        what = "this account" if self.which == "account" else "your address"
        if self.locked:
            return (f"Too many failed logins for {what}: it is locked for {wait // 60 + (wait % 60 > 0)} more "
                    "minute(s), or until an admin lifts the lock.")
        return f"Too many failed logins for {what}: wait {wait} s and try again."


def _keys(name: str | None, ip: str) -> list[tuple[str, Policy, str]]:
    keys = [(f"ip:{ip}"[:120], ADDRESS, "address")]
    if name is not None:
        keys.insert(0, (f"user:{name}"[:120], ACCOUNT, "account"))
    return keys


def check(engine, name: str | None, ip: str, now: datetime | None = None) -> Refusal | None:
    """None when an attempt for this account (None: a token) from this address may be checked now."""
    now = now or utcnow()
    with Session(engine) as s:
        for key, policy, which in _keys(name, ip):
            row = s.get(LoginThrottle, key)
            wait = wait_seconds(row, now, policy)
            if wait > 0:
                return Refusal(wait, locked_until(row, now) is not None, which)
    return None


def failed(engine, name: str | None, ip: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    try:
        _count_failure(engine, name, ip, now)
    except IntegrityError:  # a concurrent first failure inserted the row: count on it
        _count_failure(engine, name, ip, now)


def _count_failure(engine, name: str | None, ip: str, now: datetime) -> None:
    with session_scope(engine) as s:
        # rows long forgotten (guessed names, passing addresses) go
        unlocked = LoginThrottle.locked_until.is_(None) | (LoginThrottle.locked_until < now)
        s.execute(delete(LoginThrottle).where(LoginThrottle.last_failure_at < now - timedelta(days=1), unlocked))
        for key, policy, _ in _keys(name, ip):
            row = s.get(LoginThrottle, key, with_for_update=True)
            failures, lock = after_failure(row, now, policy)
            if row is None:
                s.add(LoginThrottle(key=key, failures=failures, last_failure_at=now, locked_until=lock))
            else:
                row.failures, row.last_failure_at = failures, now
                row.locked_until = lock or row.locked_until
            s.flush()


def succeeded(engine, name: str) -> None:
    """A right password clears the account's failures (not the address's: one's own account must not reset the
    count of guesses at others')."""
    with session_scope(engine) as s:
        s.execute(delete(LoginThrottle).where(LoginThrottle.key == f"user:{name}"))


def lift(engine, key: str) -> bool:
    """An admin lifts a lock (and forgets the failures): key is user:<name> or ip:<address>."""
    with session_scope(engine) as s:
        return s.execute(delete(LoginThrottle).where(LoginThrottle.key == key)).rowcount > 0


def current(engine, now: datetime | None = None) -> list[dict]:
    """Keys that are locked or made to wait now."""
    now = now or utcnow()
    out = []
    with Session(engine) as s:
        for row in s.execute(select(LoginThrottle).order_by(LoginThrottle.key)).scalars():
            policy = ACCOUNT if row.key.startswith("user:") else ADDRESS
            wait = wait_seconds(row, now, policy)
            if wait > 0:
                until = locked_until(row, now)
                out.append({"key": row.key, "failures": row.failures, "locked": until is not None,
                            "until": (until or now + timedelta(seconds=wait)).isoformat(),
                            "last_failure_at": _aware(row.last_failure_at).isoformat()})
    return out
