"""Server-rendered pages: one Jinja2 environment with autoescape on, and the context every page gets
(user, CSRF token, alert banners)."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader
from sqlmodel import Session

from web import auth, panels, sessions


def short(value, head: int = 10, tail: int = 6) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= head + tail + 1 else f"{text[:head]}…{text[-tail:]}"


def when(value) -> str:
    if not value:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def unix(seconds) -> str:
    """A chain timestamp (seconds since 1970, UTC)."""
    return "" if not seconds else datetime.fromtimestamp(int(seconds), timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def eth(wei) -> str:
    return "" if wei is None else f"{int(wei) / 10**18:,.6f} ETH"


def gwei(wei) -> str:
    return "" if wei is None else f"{int(wei) / 10**9:,.3f} gwei"


def number(value) -> str:
    return "" if value is None else f"{value:,}"


class Renderer:
    def __init__(self, directory: Path):
        self.env = Environment(loader=FileSystemLoader(str(directory)), autoescape=True,
                               trim_blocks=True, lstrip_blocks=True)
        self.env.filters.update(short=short, when=when, unix=unix, eth=eth, gwei=gwei, number=number)

    def page(self, request: Request, name: str, context: dict, *, status: int = 200) -> HTMLResponse:
        try:
            user = auth.optional_user(request)
        except auth.LoginRequired:
            user = None
        if user is not None and user.must_change_password and not context.get("password_change"):
            user = None  # nothing but the password change until it is changed
        alerts = []
        if user is not None:
            with Session(request.app.state.engine) as s:
                alerts = panels.alerts(s, request.app.state.facts)
        flash = sessions.pop_flash(request.app.state.engine, user.session_id) if user and user.session_id else None
        base = {"request": request, "user": user, "csrf_token": auth.csrf_token(request), "alerts": alerts,
                "path": request.url.path, "poll_url": None, "title": "", "flash": flash}
        html = self.env.get_template(name).render(base | context)
        response = HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})
        nonce = getattr(request.state, "new_login_nonce", None)
        if nonce:  # the pre-login cookie the login form's CSRF token is bound to
            response.set_cookie(auth.LOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict",
                                secure=request.app.state.settings.production, path="/")
        return response
