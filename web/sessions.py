"""Server-side web sessions. The cookie carries a random id and nothing else; the row (keyed by the id's SHA-256,
so a copy of the database opens no session) holds who, the CSRF token, a one-shot flash message, and when it
ends: at logout, password change or reset, disabling, after BLOCKPROOF_SESSION_IDLE_MINUTES without a request,
and BLOCKPROOF_SESSION_MAX_HOURS after the login in any case."""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, update
from sqlmodel import Session

from models.db import session_scope
from models.states import utcnow
from models.tables import Person, WebSession

COOKIE = "blockproof_session"
# a session seen this recently is not written again on every request
TOUCH_EVERY = timedelta(seconds=30)


def _aware(moment: datetime | None) -> datetime | None:
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def end_reason(row: WebSession, now: datetime, *, idle: timedelta, max_age: timedelta) -> str | None:
    """Why this session is over at `now`, or None while it is alive."""
    if row.revoked_at is not None:
        return row.revoked_why or "ended"
    if now - _aware(row.created_at) >= max_age:
        return "expired"
    if now - _aware(row.last_seen_at) >= idle:
        return "idle"
    return None


@dataclass(frozen=True)
class Found:
    id: str
    csrf_token: str
    person: Person


def start(engine, person: Person, ip: str, *, keep_days: float = 30) -> tuple[str, str]:
    """A new session for this person; returns (cookie value, CSRF token). Rows of sessions begun more than
    keep_days ago (long over: the logins stay in the audit log) are swept at the same time."""
    raw, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    with session_scope(engine) as s:
        s.execute(delete(WebSession).where(WebSession.created_at < utcnow() - timedelta(days=keep_days)))
        s.add(WebSession(id=digest(raw), user_id=person.id, csrf_token=csrf, ip=ip[:64]))
    return raw, csrf


def find(engine, raw: str, settings, *, touch: bool = True, now: datetime | None = None) -> Found | None:
    """The live session this cookie names (its person enabled), or None; a session found over is marked so."""
    if not raw or len(raw) > 100:
        return None
    now = now or utcnow()
    with Session(engine, expire_on_commit=False) as s:
        row = s.get(WebSession, digest(raw))
        if row is None:
            return None
        person = s.get(Person, row.user_id)
        why = end_reason(row, now, idle=timedelta(minutes=settings.session_idle_minutes),
                         max_age=timedelta(hours=settings.session_max_hours))
        if why is None and (person is None or person.disabled):
            why = "disabled"
        if why is not None:
            if row.revoked_at is None:
                row.revoked_at, row.revoked_why = now, why
                s.commit()
            return None
        if touch and now - _aware(row.last_seen_at) >= TOUCH_EVERY:
            row.last_seen_at = now
            s.commit()
        s.expunge(person)
        return Found(id=row.id, csrf_token=row.csrf_token, person=person)


def end(engine, session_id: str, why: str) -> None:
    with session_scope(engine) as s:
        s.execute(update(WebSession).where(WebSession.id == session_id, WebSession.revoked_at.is_(None))
                  .values(revoked_at=utcnow(), revoked_why=why[:32]))


def end_all(s: Session, user_id: int, why: str) -> int:
    """End every live session of a person (inside the caller's transaction)."""
    return s.execute(update(WebSession).where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
                     .values(revoked_at=utcnow(), revoked_why=why[:32])).rowcount


def set_flash(engine, session_id: str, message: str, kind: str) -> None:
    with session_scope(engine) as s:
        s.execute(update(WebSession).where(WebSession.id == session_id)
                  .values(flash=json.dumps({"message": message, "kind": kind})))


def pop_flash(engine, session_id: str) -> dict | None:
    with session_scope(engine) as s:
        row = s.get(WebSession, session_id)
        if row is None or not row.flash:
            return None
        flash, row.flash = row.flash, ""
    return json.loads(flash)
