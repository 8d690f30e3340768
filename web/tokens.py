"""API tokens for scripts: `Authorization: Bearer bpt_…`. 32 random bytes, shown once, stored as their SHA-256
(they are too random to need a slow hash), scoped read or operate, expiring, revocable, listed with their last use.
A token acts for its person: it stops working when the person is disabled, and never does more than their role."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlmodel import Session

from models.db import session_scope
from models.states import utcnow
from models.tables import ApiToken, Person
from web.people import OPERATOR, ADMIN, PeopleError

PREFIX = "bpt_"
SCOPES = ("read", "operate")
MAX_DAYS = 366
TOUCH_EVERY = timedelta(seconds=60)


def _aware(moment: datetime | None) -> datetime | None:
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def scope_problem(scope: str, role: str) -> str | None:
    if scope not in SCOPES:
        return f"scope {scope[:20]!r} is not one of {', '.join(SCOPES)}"
    if scope == "operate" and role not in (OPERATOR, ADMIN):
        return "a viewer's token can only read (scope read)"
    return None


def unusable_reason(row: ApiToken, person: Person | None, now: datetime) -> str | None:
    if row.revoked_at is not None:
        return "revoked"
    if _aware(row.expires_at) <= now:
        return "expired"
    if person is None or person.disabled:
        return "its user is disabled"
    return None


@dataclass(frozen=True)
class Found:
    token_id: int
    scope: str
    person: Person


def create(engine, name: str, *, scope: str, label: str = "", days: int = 90) -> tuple[str, dict]:
    """A new token for this person; returns (the token, shown only now; its listing)."""
    if not 1 <= days <= MAX_DAYS:
        raise PeopleError(f"a token lasts 1 to {MAX_DAYS} days, not {days}")
    raw = PREFIX + secrets.token_urlsafe(32)
    with session_scope(engine) as s:
        person = s.execute(select(Person).where(Person.name == name)).scalar_one_or_none()
        if person is None:
            raise PeopleError(f"there is no user {name[:70]!r}")
        problem = scope_problem(scope, person.role)
        if problem:
            raise PeopleError(problem)
        row = ApiToken(user_id=person.id, label=label.strip()[:100], scope=scope, prefix=raw[:12],
                       token_hash=digest(raw), expires_at=utcnow() + timedelta(days=days))
        s.add(row)
        s.flush()
        return raw, _view(row, person.name, utcnow())


def find(engine, raw: str, ip: str, now: datetime | None = None) -> Found | None:
    """The usable token this is (its last use recorded), or None."""
    if not raw.startswith(PREFIX) or len(raw) > 100:
        return None
    now = now or utcnow()
    with Session(engine, expire_on_commit=False) as s:
        row = s.execute(select(ApiToken).where(ApiToken.token_hash == digest(raw))).scalar_one_or_none()
        if row is None:
            return None
        person = s.get(Person, row.user_id)
        if unusable_reason(row, person, now) is not None:
            return None
        if row.last_used_at is None or now - _aware(row.last_used_at) >= TOUCH_EVERY or row.last_used_ip != ip:
            row.last_used_at, row.last_used_ip = now, ip[:64]
            s.commit()
        s.expunge(person)
        return Found(token_id=row.id, scope=row.scope, person=person)


def _view(row: ApiToken, owner: str, now: datetime) -> dict:
    iso = lambda m: _aware(m).isoformat() if m else None  # noqa: E731
    state = "revoked" if row.revoked_at else "expired" if _aware(row.expires_at) <= now else "active"
    return {"id": row.id, "owner": owner, "label": row.label, "scope": row.scope, "prefix": row.prefix,
            "created_at": iso(row.created_at), "expires_at": iso(row.expires_at),
            "last_used_at": iso(row.last_used_at), "last_used_ip": row.last_used_ip or None,
            "revoked_at": iso(row.revoked_at), "state": state}


def listing(engine, name: str | None = None) -> list[dict]:
    """Tokens (of one person, or everyone's), newest first; never the token itself."""
    now = utcnow()
    query = select(ApiToken, Person.name).join(Person, Person.id == ApiToken.user_id).order_by(ApiToken.id.desc())
    if name is not None:
        query = query.where(Person.name == name)
    with Session(engine) as s:
        return [_view(row, owner, now) for row, owner in s.execute(query).all()]


def revoke(engine, token_id: int, *, owner: str | None = None) -> dict:
    """Revoke a token (only the owner's when owner is given); returns its listing."""
    with session_scope(engine) as s:
        found = s.execute(select(ApiToken, Person.name).join(Person, Person.id == ApiToken.user_id)
                          .where(ApiToken.id == token_id)).first()
        if found is None or (owner is not None and found[1] != owner):
            raise PeopleError(f"there is no token {token_id}" + (" of yours" if owner else ""))
        s.execute(update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
                  .values(revoked_at=utcnow()))
        s.flush()
        s.refresh(found[0])
        return _view(found[0], found[1], utcnow())
