"""The people who use the web UI and the API: a name, a role, an argon2id password hash. `blockproof user …`
and the admin pages call these; the first admin is made here when the web starts on a database with no users."""
from __future__ import annotations

import re
import secrets
import sys
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlmodel import Session

from models.db import session_scope
from models.states import utcnow
from models.tables import ApiToken, LoginThrottle, Person

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)
MIN_PASSWORD, MAX_PASSWORD = 12, 256
NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
# argon2-cffi's defaults are argon2id with RFC 9106's low-memory parameters (t=3, m=64 MiB, p=4)
HASHER = PasswordHasher()
# checked when the name is unknown, so that a wrong name costs as long as a wrong password
_NOBODY = HASHER.hash(secrets.token_urlsafe(16))


class PeopleError(ValueError):
    """A request about people that cannot be done, with the reason in a sentence."""


class StartupRefused(RuntimeError):
    """Production mode without what it needs (a strong web secret, a first admin)."""


def name_problem(name: str) -> str | None:
    if not NAME.fullmatch(name or ""):
        return (f"user name {name[:70]!r} is not valid: 1 to 64 characters, lowercase letters, digits and . _ @ -, "
                "starting with a letter or digit")
    return None


def password_problem(password: str, name: str = "") -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"the password is too short: at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"the password is too long: at most {MAX_PASSWORD} characters"
    if name and name.lower() in password.lower():
        return "the password must not contain the user name"
    return None


def role_problem(role: str) -> str | None:
    return None if role in ROLES else f"role {role[:20]!r} is not one of {', '.join(ROLES)}"


def one_time_password() -> str:
    return secrets.token_urlsafe(12)


def _check(problem: str | None) -> None:
    if problem:
        raise PeopleError(problem)


def find(session: Session, name: str) -> Person | None:
    return session.execute(select(Person).where(Person.name == name)).scalar_one_or_none()


def _get(session: Session, name: str) -> Person:
    person = find(session, name)
    if person is None:
        raise PeopleError(f"there is no user {name[:70]!r} (`blockproof user list` shows who there is)")
    return person


def add(engine, name: str, role: str, *, by: str, password: str | None = None,
        must_change_password: bool | None = None) -> str:
    """Add a person; returns their password: the one given, or a one-time password to change at the first login."""
    _check(name_problem(name) or role_problem(role))
    chosen = password is not None
    password = password if chosen else one_time_password()
    if chosen:
        _check(password_problem(password, name))
    with session_scope(engine) as s:
        if find(s, name) is not None:
            raise PeopleError(f"user {name!r} exists already")
        s.add(Person(name=name, role=role, password_hash=HASHER.hash(password), created_by=by[:64],
                     must_change_password=(not chosen) if must_change_password is None else must_change_password))
    return password


def authenticate(engine, name: str, password: str) -> Person | None:
    """The person if the name and password match and they are not disabled, else None (same cost either way)."""
    with session_scope(engine) as s:
        person = find(s, name) if NAME.fullmatch(name or "") else None
        try:
            HASHER.verify(person.password_hash if person else _NOBODY, password or "")
        except (VerificationError, InvalidHashError):
            return None
        if person is None or person.disabled:
            return None
        if HASHER.check_needs_rehash(person.password_hash):
            person.password_hash = HASHER.hash(password)
        person.last_login_at = utcnow()
        s.flush()
        s.expunge(person)
        return person


def change_password(engine, name: str, current: str, new: str) -> None:
    """Self-service: the current password must be right; every session and nothing else of theirs ends."""
    from web import sessions

    _check(password_problem(new, name))
    if current == new:
        raise PeopleError("the new password must differ from the current one")
    with session_scope(engine) as s:
        person = _get(s, name)
        try:
            HASHER.verify(person.password_hash, current)
        except (VerificationError, InvalidHashError):
            raise PeopleError("the current password is wrong")
        person.password_hash, person.must_change_password = HASHER.hash(new), False
        person.password_changed_at = utcnow()
        sessions.end_all(s, person.id, "password change")


def reset_password(engine, name: str) -> str:
    """An admin's reset: a new one-time password (returned, shown once); the person's sessions end."""
    from web import sessions

    password = one_time_password()
    with session_scope(engine) as s:
        person = _get(s, name)
        person.password_hash, person.must_change_password = HASHER.hash(password), True
        person.password_changed_at = utcnow()
        sessions.end_all(s, person.id, "password reset")
    return password


def set_disabled(engine, name: str, disabled: bool) -> None:
    """Disabling ends the person's sessions; their tokens stop working while they are disabled."""
    from web import sessions

    with session_scope(engine) as s:
        person = _get(s, name)
        if disabled and person.role == ADMIN and not person.disabled and _active_admins(s) == 1:
            raise PeopleError(f"{name!r} is the last active admin: add another admin first")
        person.disabled = disabled
        if disabled:
            sessions.end_all(s, person.id, "disabled")


def _active_admins(s: Session) -> int:
    return s.execute(select(func.count()).select_from(Person).where(Person.role == ADMIN,
                                                                    Person.disabled.is_(False))).scalar_one()


def listing(engine) -> list[dict]:
    now = utcnow()
    with Session(engine) as s:
        people = list(s.execute(select(Person).order_by(Person.name)).scalars())
        locks = {t.key: t for t in s.execute(select(LoginThrottle)).scalars()}
        tokens = dict(s.execute(select(ApiToken.user_id, func.count()).where(ApiToken.revoked_at.is_(None),
                                                                             ApiToken.expires_at > now)
                                .group_by(ApiToken.user_id)).all())
    from web.throttle import locked_until

    return [{"name": p.name, "role": p.role, "disabled": p.disabled, "must_change_password": p.must_change_password,
             "created_at": p.created_at.isoformat(), "created_by": p.created_by,
             "last_login_at": p.last_login_at.isoformat() if p.last_login_at else None,
             "locked_until": _iso(locked_until(locks.get(f"user:{p.name}"), now)),
             "tokens": tokens.get(p.id, 0)} for p in people]


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def has_anyone(engine) -> bool:
    with Session(engine) as s:
        return s.execute(select(func.count()).select_from(Person)).scalar_one() > 0


def ensure_first_admin(engine, settings, *, announce=sys.stderr) -> None:
    """A database with no users gets its first admin. Dev mode: named by BLOCKPROOF_ADMIN_USER, with
    BLOCKPROOF_ADMIN_PASSWORD or a one-time password printed once. Production: refuse, saying how to add one."""
    if has_anyone(engine):
        return
    if settings.production:
        raise StartupRefused("production mode: there is no user yet; add the first admin with "
                             "`blockproof user add NAME --role admin` (it prints a one-time password)")
    chosen = settings.admin_password.get_secret_value() if settings.admin_password else None
    try:
        password = add(engine, settings.admin_user, ADMIN, by="set-up", password=chosen or None,
                       must_change_password=False if chosen else True)
    except PeopleError as exc:
        if "exists already" in str(exc):  # another process made it first
            return
        raise StartupRefused(f"the first admin: {exc} (BLOCKPROOF_ADMIN_USER / BLOCKPROOF_ADMIN_PASSWORD)")
    if not chosen and announce is not None:
        print(f"blockproof web (dev mode): first admin {settings.admin_user!r} created with the one-time password "
              f"{password} (shown only now; it must be changed at the first login). Add people with "
              "`blockproof user add NAME --role operator`.", file=announce, flush=True)


@dataclass(frozen=True)
class Grant:
    """What a role may do (docs/security.md has the table)."""

    read: bool
    operate: bool
    administer: bool


def grant(role: str) -> Grant:
    return Grant(read=role in ROLES, operate=role in (OPERATOR, ADMIN), administer=role == ADMIN)
