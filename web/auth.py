"""Who is asking: two users (operator, viewer) with passwords from settings; session cookie or HTTP Basic;
a session-bound CSRF token on every state-changing request that rides on the cookie."""
from __future__ import annotations

import base64
import hmac
import secrets
import sys
from dataclasses import dataclass

from fastapi import HTTPException, Request

from blockproof.settings import Settings

OPERATOR, VIEWER = "operator", "viewer"
CSRF_FIELD, CSRF_HEADER = "csrf_token", "x-csrf-token"


@dataclass(frozen=True)
class Credentials:
    passwords: dict[str, str]  # user name -> password (the user name is the role)
    secret: str


@dataclass(frozen=True)
class User:
    name: str
    via: str  # "session" | "basic"

    @property
    def role(self) -> str:
        return self.name

    @property
    def is_operator(self) -> bool:
        return self.name == OPERATOR


class LoginRequired(Exception):
    """No valid session or Basic credentials: 401 for the API, a redirect to /login for pages."""


class StartupRefused(RuntimeError):
    """Production mode without the secrets it needs."""


def resolve_credentials(settings: Settings, *, announce=sys.stderr) -> Credentials:
    """Passwords and the session secret from settings. Production mode refuses to start without them;
    dev mode makes random ones and prints them once. There is never a fixed default password."""
    given = {
        "BLOCKPROOF_OPERATOR_PASSWORD": settings.operator_password,
        "BLOCKPROOF_VIEWER_PASSWORD": settings.viewer_password,
        "BLOCKPROOF_WEB_SECRET": settings.web_secret,
    }
    values = {k: (v.get_secret_value() if v is not None else "") for k, v in given.items()}
    missing = [k for k, v in values.items() if not v]
    if settings.production:
        if missing:
            raise StartupRefused(f"production mode: refusing to start without {', '.join(missing)}")
        if values["BLOCKPROOF_OPERATOR_PASSWORD"] == values["BLOCKPROOF_VIEWER_PASSWORD"]:
            raise StartupRefused("production mode: the operator and viewer passwords must differ")
    generated = []
    for name in missing:
        values[name] = secrets.token_urlsafe(32 if name == "BLOCKPROOF_WEB_SECRET" else 12)
        if name != "BLOCKPROOF_WEB_SECRET":
            generated.append(name)
    if generated and announce is not None:
        lines = [f"  {n.removeprefix('BLOCKPROOF_').removesuffix('_PASSWORD').lower()}: {values[n]}" for n in generated]
        print("blockproof web (dev mode): generated passwords, shown only now; set "
              + " / ".join(generated) + " to choose your own:\n" + "\n".join(lines), file=announce, flush=True)
    return Credentials(passwords={OPERATOR: values["BLOCKPROOF_OPERATOR_PASSWORD"],
                                  VIEWER: values["BLOCKPROOF_VIEWER_PASSWORD"]},
                       secret=values["BLOCKPROOF_WEB_SECRET"])


def check_password(credentials: Credentials, name: str, password: str) -> bool:
    expected = credentials.passwords.get(name)
    # compare even for unknown names, so timing does not tell which names exist
    ok = hmac.compare_digest((expected or "\0" * 16).encode(), (password or "").encode())
    return ok and expected is not None


def _basic_user(request: Request) -> User | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        name, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except Exception:
        raise LoginRequired()
    if not check_password(request.app.state.credentials, name, password):
        raise LoginRequired()
    return User(name=name, via="basic")


def optional_user(request: Request) -> User | None:
    basic = _basic_user(request)
    if basic is not None:
        return basic
    name = request.session.get("user")
    if name in (OPERATOR, VIEWER):
        return User(name=name, via="session")
    return None


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return token


async def check_csrf(request: Request) -> None:
    """Cookie-authenticated state changes must carry the session's token (header or form field)."""
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = (await request.form()).get(CSRF_FIELD)
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(expected, sent):
        raise HTTPException(403, "CSRF token missing or wrong: reload the page and try again")


# ---- dependencies -------------------------------------------------------------------------
def viewer(request: Request) -> User:
    """Any logged-in user (read access)."""
    user = optional_user(request)
    if user is None:
        raise LoginRequired()
    return user


async def operator(request: Request) -> User:
    """A logged-in operator making a state change (CSRF-checked when the session cookie authenticates)."""
    user = viewer(request)
    if not user.is_operator:
        raise HTTPException(403, "only an operator may do this; you are logged in as viewer")
    if user.via == "session":
        await check_csrf(request)
    return user
