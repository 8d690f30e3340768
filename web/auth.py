"""Who is asking: a person logged in through /login (a server-side session, web/sessions.py) or a script with an
API token (`Authorization: Bearer`, web/tokens.py). HTTP Basic is refused, and no response asks a browser for
credentials. Cookie-authenticated state changes carry the session's CSRF token; the login form carries one bound
to a random pre-login cookie."""
from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import sys
from collections import Counter
from dataclasses import dataclass

from fastapi import HTTPException, Request

from blockproof.settings import Settings
from models.audit import record
from web import people, sessions, throttle, tokens
from web.people import StartupRefused  # noqa: F401  (raised by create_app)

CSRF_FIELD, CSRF_HEADER = "csrf_token", "x-csrf-token"
LOGIN_COOKIE = "blockproof_login"
MIN_SECRET_BYTES = 32
MAKE_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


@dataclass(frozen=True)
class User:
    name: str
    role: str
    via: str  # "session" | "token"
    scope: str = "operate"  # a token's scope; a session may do all its role allows
    session_id: str = ""
    csrf: str = ""
    must_change_password: bool = False

    @property
    def is_operator(self) -> bool:
        return people.grant(self.role).operate and self.scope == "operate"

    @property
    def is_admin(self) -> bool:
        # people are administered from a logged-in browser, never with a token
        return people.grant(self.role).administer and self.via == "session"


class LoginRequired(Exception):
    """No valid session or token: 401 for the API, a redirect to /login for pages."""

    def __init__(self, detail: str = "authentication required: log in at /login, or send an API token as "
                                      "Authorization: Bearer", status: int = 401, retry_after: float = 0):
        super().__init__(detail)
        self.detail, self.status, self.retry_after = detail, status, retry_after


class PasswordChangeRequired(Exception):
    """A one-time password was used: nothing but the password change until it is changed."""


# ---- the web secret ----------------------------------------------------------------------------------
def secret_problem(secret: str) -> str | None:
    """Why this cannot be a web secret (it keys the login form's CSRF tokens), or None. 32 random bytes written
    as text are at least 43 characters (base64) and look random: a repeated or dictionary-like string does not."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"it is {len(secret.encode())} bytes long; it must be at least {MIN_SECRET_BYTES} random bytes"
    counts = Counter(secret)
    entropy_bits = -sum(c * math.log2(c / len(secret)) for c in counts.values())
    if len(counts) < 16 or entropy_bits < 8 * MIN_SECRET_BYTES * 0.6:
        return "it does not look random (too few distinct characters); it must be at least 32 random bytes"
    return None


def resolve_secret(settings: Settings, *, announce=sys.stderr) -> str:
    """The web secret. Production refuses a missing or weak one, saying how to make one; dev mode makes a random
    one for this process when it is not set, and warns about a weak one."""
    given = settings.web_secret.get_secret_value() if settings.web_secret else ""
    problem = secret_problem(given) if given else "it is not set"
    if problem is None:
        return given
    if settings.production:
        raise StartupRefused(f"production mode: BLOCKPROOF_WEB_SECRET is refused: {problem}. Make one with: "
                             f"{MAKE_SECRET}")
    if given and announce is not None:
        print(f"blockproof web (dev mode): BLOCKPROOF_WEB_SECRET is weak ({problem}); production mode would refuse "
              f"it. Make one with: {MAKE_SECRET}", file=announce, flush=True)
    return given or secrets.token_urlsafe(32)


# ---- who is asking -------------------------------------------------------------------------------------
def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


_UNKNOWN = object()


def optional_user(request: Request) -> User | None:
    cached = getattr(request.state, "user", _UNKNOWN)
    if cached is not _UNKNOWN:
        return cached
    user = _token_user(request) if request.headers.get("authorization") else _session_user(request)
    request.state.user = user
    return user


def _session_user(request: Request) -> User | None:
    raw = request.cookies.get(sessions.COOKIE)
    if not raw:
        return None
    # live-update polls do not keep an unattended page's session alive
    found = sessions.find(request.app.state.engine, raw, request.app.state.settings,
                          touch=request.url.path != "/api/live")
    if found is None:
        return None
    p = found.person
    return User(name=p.name, role=p.role, via="session", session_id=found.id, csrf=found.csrf_token,
                must_change_password=p.must_change_password)


def _token_user(request: Request) -> User:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        raise LoginRequired(f"{scheme[:20] or 'this'} authorization is not accepted: send an API token as "
                            "Authorization: Bearer (make one on your account page)")
    engine, ip = request.app.state.engine, client_ip(request)
    refusal = throttle.check(engine, None, ip)
    if refusal is not None:
        throttle.failed(engine, None, ip)
        record(engine, "?", "token.throttled", value.strip()[:12])
        raise LoginRequired(refusal.message(), 429, refusal.seconds)
    found = tokens.find(engine, value.strip(), ip)
    if found is None:
        throttle.failed(engine, None, ip)
        record(engine, "?", "token.failed", value.strip()[:12])
        raise LoginRequired("this API token is unknown, expired or revoked, or its user is disabled")
    p = found.person
    return User(name=p.name, role=p.role, via="token", scope=found.scope)


# ---- CSRF ----------------------------------------------------------------------------------------------
def _login_token(request: Request, nonce: str) -> str:
    return hmac.new(request.app.state.secret.encode(), b"login:" + nonce.encode(), hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> str:
    """The CSRF token for this page's forms: the session's, or before login the login form's."""
    user = optional_user(request) if not request.headers.get("authorization") else None
    if user is not None and user.via == "session":
        return user.csrf
    return login_csrf_token(request)


def login_csrf_token(request: Request) -> str:
    """The login form's token, bound to a random pre-login cookie (the renderer sets it when it is new)."""
    nonce = request.cookies.get(LOGIN_COOKIE) or getattr(request.state, "new_login_nonce", None)
    if not nonce or len(nonce) > 64:
        nonce = request.state.new_login_nonce = secrets.token_urlsafe(24)
    return _login_token(request, nonce)


async def _sent_token(request: Request) -> str | None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = (await request.form()).get(CSRF_FIELD)
    return sent if isinstance(sent, str) else None


async def check_csrf(request: Request, user: User) -> None:
    """A cookie-authenticated state change must carry its session's token (header or form field)."""
    sent = await _sent_token(request)
    if not user.csrf or sent is None or not hmac.compare_digest(user.csrf, sent):
        raise HTTPException(403, "CSRF token missing or wrong: reload the page and try again")


async def check_login_csrf(request: Request) -> None:
    nonce = request.cookies.get(LOGIN_COOKIE) or ""
    sent = await _sent_token(request)
    if not nonce or sent is None or not hmac.compare_digest(_login_token(request, nonce), sent):
        raise HTTPException(403, "CSRF token missing or wrong: reload the page and try again")


# ---- dependencies -------------------------------------------------------------------------------------
def viewer(request: Request) -> User:
    """Any logged-in person or token (read access)."""
    user = optional_user(request)
    if user is None:
        raise LoginRequired()
    if user.must_change_password:
        raise PasswordChangeRequired()
    return user


def someone(request: Request) -> User:
    """A logged-in person even before they changed a one-time password (the account page)."""
    user = optional_user(request)
    if user is None:
        raise LoginRequired()
    return user


async def operator(request: Request) -> User:
    """An operator (or admin) making a state change; CSRF-checked when the session cookie authenticates."""
    user = viewer(request)
    if not user.is_operator:
        who = "a read-only token" if user.via == "token" and user.scope == "read" else f"logged in as {user.role}"
        raise HTTPException(403, f"only an operator may do this; you are {who}")
    if user.via == "session":
        await check_csrf(request, user)
    return user


async def admin(request: Request) -> User:
    """An admin in a logged-in browser (CSRF-checked on state changes)."""
    user = viewer(request)
    if not user.is_admin:
        raise HTTPException(403, "only an admin may do this, from a logged-in browser (not with a token)")
    if request.method not in ("GET", "HEAD"):
        await check_csrf(request, user)
    return user


async def session_person(request: Request) -> User:
    """A logged-in browser changing its own account (password, tokens): CSRF-checked; tokens cannot."""
    user = someone(request)
    if user.via != "session":
        raise HTTPException(403, "manage your password and tokens from a logged-in browser, not with a token")
    if request.method not in ("GET", "HEAD"):
        await check_csrf(request, user)
    return user
