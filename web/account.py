"""Your account (password change, API tokens) and the admin's people page (add, disable, reset a password, lift a
lockout, revoke anyone's token), as pages and JSON. Thin routes over web.people, web.tokens and web.throttle."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from models.audit import record
from web import auth, people, sessions, throttle, tokens
from web.auth import User

router = APIRouter()
pages = APIRouter(include_in_schema=False)
Someone = Annotated[User, Depends(auth.session_person)]
Admin = Annotated[User, Depends(auth.admin)]
Viewer = Annotated[User, Depends(auth.viewer)]


def _engine(request: Request):
    return request.app.state.engine


def _page(request: Request, name: str, **context):
    return request.app.state.renderer.page(request, name, context)


def _flash(request: Request, user: User, message: str, kind: str = "ok") -> None:
    sessions.set_flash(_engine(request), user.session_id, message, kind)


def _account_page(request: Request, user: User, *, error: str | None = None, new_token: str | None = None,
                  status: int = 200):
    return request.app.state.renderer.page(request, "account.html", {
        "title": "Your account", "me": user, "error": error, "new_token": new_token, "password_change": True,
        "tokens": tokens.listing(_engine(request), user.name), "token_days": request.app.state.settings.token_days,
        "scopes": ["read", "operate"] if user.is_operator else ["read"]}, status=status)


# ---- your account: pages ---------------------------------------------------------------------------------
@pages.get("/account")
@pages.get("/account/password")
def account(request: Request, user: Someone):
    return _account_page(request, user)


@pages.post("/account/password")
def change_password(request: Request, user: Someone, current: Annotated[str, Form(max_length=256)],
                    new: Annotated[str, Form(max_length=300)], again: Annotated[str, Form(max_length=300)]):
    if new != again:
        return _account_page(request, user, error="The two new passwords differ.", status=422)
    try:
        people.change_password(_engine(request), user.name, current, new)
    except people.PeopleError as exc:
        return _account_page(request, user, error=f"Not changed: {exc}.", status=422)
    record(_engine(request), user.name, "password.change")
    # every session of theirs ended, this one too: this browser gets a new one
    with Session(_engine(request)) as s:
        person = people.find(s, user.name)
    raw, _ = sessions.start(_engine(request), person, auth.client_ip(request))
    sessions.set_flash(_engine(request), sessions.digest(raw),
                       "Password changed. Every other session of yours has been logged out.", "ok")
    response = RedirectResponse("/account", 303)
    settings = request.app.state.settings
    response.set_cookie(sessions.COOKIE, raw, max_age=int(settings.session_max_hours * 3600), httponly=True,
                        samesite="strict", secure=settings.production, path="/")
    return response


@pages.post("/account/tokens")
def create_token(request: Request, user: Someone, scope: Annotated[str, Form(max_length=16)],
                 label: Annotated[str, Form(max_length=100)] = "", days: Annotated[int, Form(ge=1, le=366)] = 90):
    _no_one_time_password(user)
    try:
        raw, view = tokens.create(_engine(request), user.name, scope=scope, label=label, days=days)
    except people.PeopleError as exc:
        return _account_page(request, user, error=f"No token made: {exc}.", status=422)
    record(_engine(request), user.name, "token.create", f"token {view['id']}", scope=scope, days=days)
    return _account_page(request, user, new_token=raw)


@pages.post("/account/tokens/{token_id}/revoke")
def revoke_own_token(request: Request, token_id: int, user: Someone):
    _revoke(request, user, token_id, owner=user.name)
    _flash(request, user, f"Token {token_id} revoked: it no longer works.")
    return RedirectResponse("/account", 303)


def _no_one_time_password(user: User) -> None:
    if user.must_change_password:
        raise HTTPException(403, "change your one-time password first")


def _revoke(request: Request, user: User, token_id: int, owner: str | None) -> dict:
    try:
        view = tokens.revoke(_engine(request), token_id, owner=owner)
    except people.PeopleError as exc:
        raise HTTPException(404, str(exc))
    record(_engine(request), user.name, "token.revoke", f"token {token_id}", owner=view["owner"])
    return view


# ---- your account: JSON -------------------------------------------------------------------------------------
class NewToken(BaseModel):
    scope: Literal["read", "operate"]
    label: str = Field("", max_length=100)
    days: int | None = Field(None, ge=1, le=366, description="default BLOCKPROOF_TOKEN_DAYS")


@router.get("/api/tokens", tags=["auth"], summary="Your API tokens (never the tokens themselves), with last use")
def my_tokens(request: Request, user: Viewer):
    return {"tokens": tokens.listing(_engine(request), user.name)}


@router.post("/api/tokens", tags=["auth"],
             summary="Make an API token (from a logged-in browser; the token is in this answer only)")
def new_token(request: Request, user: Someone, body: NewToken):
    _no_one_time_password(user)
    days = body.days or request.app.state.settings.token_days
    try:
        raw, view = tokens.create(_engine(request), user.name, scope=body.scope, label=body.label, days=days)
    except people.PeopleError as exc:
        raise HTTPException(422, str(exc))
    record(_engine(request), user.name, "token.create", f"token {view['id']}", scope=body.scope, days=days)
    return view | {"token": raw}


@router.delete("/api/tokens/{token_id}", tags=["auth"], summary="Revoke one of your API tokens")
def revoke_my_token(request: Request, token_id: int, user: Someone):
    return _revoke(request, user, token_id, owner=user.name)


# ---- people (admin) --------------------------------------------------------------------------------------
def _people_page(request: Request, *, shown: dict | None = None, error: str | None = None, status: int = 200):
    engine = _engine(request)
    return request.app.state.renderer.page(request, "people.html", {
        "title": "People", "people": people.listing(engine), "locks": throttle.current(engine),
        "tokens": tokens.listing(engine), "roles": people.ROLES, "shown": shown, "error": error}, status=status)


@pages.get("/admin/people")
def people_page(request: Request, user: Admin):
    return _people_page(request)


@pages.post("/admin/people")
def add_person(request: Request, user: Admin, name: Annotated[str, Form(max_length=64)],
               role: Annotated[str, Form(max_length=16)]):
    try:
        password = people.add(_engine(request), name.strip().lower(), role, by=user.name)
    except people.PeopleError as exc:
        return _people_page(request, error=f"Not added: {exc}.", status=422)
    record(_engine(request), user.name, "user.add", name.strip().lower(), role=role)
    return _people_page(request, shown={"name": name.strip().lower(), "password": password})


@pages.post("/admin/people/{name}/reset-password")
def reset_password(request: Request, name: str, user: Admin):
    try:
        password = people.reset_password(_engine(request), name)
    except people.PeopleError as exc:
        raise HTTPException(404, str(exc))
    record(_engine(request), user.name, "user.reset-password", name)
    return _people_page(request, shown={"name": name, "password": password})


@pages.post("/admin/people/{name}/disable")
def disable(request: Request, name: str, user: Admin):
    return _set_disabled(request, name, user, True)


@pages.post("/admin/people/{name}/enable")
def enable(request: Request, name: str, user: Admin):
    return _set_disabled(request, name, user, False)


def _set_disabled(request: Request, name: str, user: User, disabled: bool):
    try:
        people.set_disabled(_engine(request), name, disabled)
    except people.PeopleError as exc:
        return _people_page(request, error=f"Not changed: {exc}.", status=409)
    record(_engine(request), user.name, "user.disable" if disabled else "user.enable", name)
    done = "disabled: their sessions ended and their tokens stop working" if disabled else "enabled"
    _flash(request, user, f"{name} {done}.")
    return RedirectResponse("/admin/people", 303)


@pages.post("/admin/locks/lift")
def lift_lock_page(request: Request, user: Admin, key: Annotated[str, Form(max_length=120)]):
    _lift(request, user, key)
    _flash(request, user, f"Lock on {key} lifted.")
    return RedirectResponse("/admin/people", 303)


@pages.post("/admin/tokens/{token_id}/revoke")
def revoke_any_token(request: Request, token_id: int, user: Admin):
    _revoke(request, user, token_id, owner=None)
    _flash(request, user, f"Token {token_id} revoked.")
    return RedirectResponse("/admin/people", 303)


def _lift(request: Request, user: User, key: str) -> bool:
    if not key.startswith(("user:", "ip:")):
        raise HTTPException(422, "a lock is named user:<name> or ip:<address>")
    lifted = throttle.lift(_engine(request), key)
    record(_engine(request), user.name, "lock.lift", key, lifted=lifted)
    return lifted


@router.get("/api/people", tags=["people"], summary="Everyone who may log in, and current lockouts (admin)")
def people_api(request: Request, user: Admin):
    return {"people": people.listing(_engine(request)), "locks": throttle.current(_engine(request))}


@router.post("/api/locks/lift", tags=["people"],
             summary="Lift a login lockout: key=user:<name> or ip:<address> (admin, from a logged-in browser)")
def lift_lock(request: Request, user: Admin, key: Annotated[str, Query(max_length=120)]):
    return {"key": key, "lifted": _lift(request, user, key)}


router.include_router(pages)
