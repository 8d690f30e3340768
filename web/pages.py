"""The HTML pages: thin routes over web.queries / web.panels / web.actions, rendered server-side."""
from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import RedirectResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from models.states import JobState
from web import actions, api, audit, auth, panels, people, queries, sessions, throttle
from web.api import DB, Cursor, Operator, RowId, Viewer

router = APIRouter(include_in_schema=False)
STATES = [s.value for s in JobState]


def _page(request: Request, name: str, **context):
    return request.app.state.renderer.page(request, name, context)


def _flash(request: Request, message: str, kind: str = "ok") -> None:
    user = auth.optional_user(request)
    if user is not None and user.session_id:
        sessions.set_flash(request.app.state.engine, user.session_id, message, kind)


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/") and not target.startswith("//") else "/"


# ---- login ------------------------------------------------------------------------------------------
@router.get("/login")
def login_form(request: Request, next: str = "/"):
    return _page(request, "login.html", title="Log in", next=_safe_next(next), error=None,
                 login_csrf=auth.login_csrf_token(request))


def _login_refused(request: Request, next: str, error: str, status: int, retry_after: float = 0):
    response = request.app.state.renderer.page(request, "login.html", {
        "title": "Log in", "next": _safe_next(next), "error": error, "login_csrf": auth.login_csrf_token(request)},
        status=status)
    if retry_after:
        response.headers["retry-after"] = str(max(1, round(retry_after)))
    return response


@router.post("/login")
async def login(request: Request, username: Annotated[str, Form(max_length=64)],
                password: Annotated[str, Form(max_length=256)], next: Annotated[str, Form(max_length=2000)] = "/"):
    await auth.check_login_csrf(request)
    engine, ip, name = request.app.state.engine, auth.client_ip(request), username.strip().lower()
    refusal = throttle.check(engine, name, ip)
    if refusal is not None:  # refused before the password is checked, and counted: hammering leads to the lock
        throttle.failed(engine, name, ip)
        audit.record(engine, name[:64] or "?", "login.throttled", refusal.which)
        return _login_refused(request, next, refusal.message(), 429, refusal.seconds)
    person = await run_in_threadpool(people.authenticate, engine, name, password)
    if person is None:
        throttle.failed(engine, name, ip)
        audit.record(engine, name[:64] or "?", "login.failed")
        return _login_refused(request, next, "Wrong user name or password.", 401)
    throttle.succeeded(engine, name)
    earlier = request.cookies.get(sessions.COOKIE)
    if earlier:  # a login always starts a new session; the one this browser had ends
        sessions.end(engine, sessions.digest(earlier), "replaced")
    raw, _ = sessions.start(engine, person, ip)
    audit.record(engine, person.name, "login")
    target = "/account/password" if person.must_change_password else _safe_next(next)
    response = RedirectResponse(target, 303)
    settings = request.app.state.settings
    response.set_cookie(sessions.COOKIE, raw, max_age=int(settings.session_max_hours * 3600), httponly=True,
                        samesite="strict", secure=settings.production, path="/")
    response.delete_cookie(auth.LOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
async def logout(request: Request, user: Annotated[auth.User, Depends(auth.someone)]):
    if user.via != "session":
        raise HTTPException(400, "log out ends a browser session; revoke a token on your account page instead")
    await auth.check_csrf(request, user)
    sessions.end(request.app.state.engine, user.session_id, "logout")
    audit.record(request.app.state.engine, user.name, "logout")
    response = RedirectResponse("/login", 303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


# ---- dashboard ----------------------------------------------------------------------------------------
@router.get("/")
def dashboard(request: Request, user: Viewer, s: DB):
    data = panels.overview(s, request.app.state.facts)
    recent = queries.list_batches(s, limit=5)
    ids = ",".join(str(b["id"]) for b in recent["batches"])
    return _page(request, "dashboard.html", title="Overview", o=data, batches=recent["batches"],
                 poll_url=f"/api/live?overview=1&batches={ids}")


# ---- batches ----------------------------------------------------------------------------------------
@router.get("/batches")
def batches(request: Request, user: Viewer, s: DB, before: Cursor = None):
    data = queries.list_batches(s, before=before)
    ids = ",".join(str(b["id"]) for b in data["batches"])
    return _page(request, "batches.html", title="Batches", data=data, poll_url=f"/api/live?batches={ids}")


def _batch_or_404(s: Session, batch_id: int):
    batch = queries.get_batch(s, batch_id)
    if batch is None:
        raise HTTPException(404, f"batch {batch_id} does not exist")
    return batch


@router.get("/batches/{batch_id}")
def batch(request: Request, batch_id: int, user: Viewer, s: DB,
          state: Annotated[str | None, Query(max_length=16)] = None, q: Annotated[str | None, Query(max_length=200)] = None,
          after: Cursor = None, before: Cursor = None):
    b = _batch_or_404(s, batch_id)
    state = state if state in STATES else None
    summary = queries.batch_summary(s, b)
    page = queries.list_jobs(s, batch_id=batch_id, state=state, q=q or None, after=after, before=before)
    base = {k: v for k, v in {"state": state, "q": q}.items() if v}
    ids = ",".join(str(j["id"]) for j in page["jobs"])
    return _page(request, "batch.html", title=f"Batch {batch_id}", b=summary, page=page, state=state, q=q or "",
                 states=STATES, query=base, urlencode=urlencode,
                 poll_url=f"/api/live?batch={batch_id}&jobs={ids}")


@router.get("/batches/{batch_id}/retry-failed")
def retry_failed_confirm(request: Request, batch_id: int, user: Viewer, s: DB):
    summary = queries.batch_summary(s, _batch_or_404(s, batch_id))
    count = summary["retryable"]
    return _page(request, "confirm.html", title="Confirm retry", count=count,
                 question=f"Retry {count} failed job{'s' if count != 1 else ''} of batch {batch_id}?",
                 action=f"/batches/{batch_id}/retry-failed", fields={"expected_count": count},
                 cancel=f"/batches/{batch_id}")


@router.post("/batches/{batch_id}/retry-failed")
def retry_failed(request: Request, batch_id: int, user: Operator, expected_count: Annotated[int, Form()]):
    try:
        result = actions.retry_failed_in_batch(batch_id, **api._ctx(request), actor=user.name,
                                               expected_count=expected_count)
    except actions.Conflict as exc:
        _flash(request, str(exc), "error")
        return RedirectResponse(f"/batches/{batch_id}/retry-failed", 303)
    _flash(request, _retry_message(result))
    return RedirectResponse(f"/batches/{batch_id}", 303)


def _retry_message(result: dict) -> str:
    parts = [f"{len(result['requeued'])} re-queued"]
    if result["already_on_chain"]:
        parts.append(f"{len(result['already_on_chain'])} already on chain (not re-sent)")
    if result["skipped"]:
        parts.append(f"{len(result['skipped'])} not failed (left alone)")
    return "Retry: " + ", ".join(parts) + "."


@router.post("/batches/{batch_id}/retry-selected")
def retry_selected(request: Request, batch_id: int, user: Operator, s: DB,
                   job_ids: Annotated[list[RowId], Form(max_length=10_000)] = (), confirmed: Annotated[str, Form()] = ""):
    _batch_or_404(s, batch_id)
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        _flash(request, "Select at least one job to retry.", "error")
        return RedirectResponse(f"/batches/{batch_id}", 303)
    if confirmed != "yes":
        return _page(request, "confirm.html", title="Confirm retry", count=len(ids),
                     question=f"Retry {len(ids)} selected job{'s' if len(ids) != 1 else ''}?",
                     action=f"/batches/{batch_id}/retry-selected", fields={"confirmed": "yes"}, job_ids=ids,
                     cancel=f"/batches/{batch_id}")
    result = actions.retry(ids, **api._ctx(request), actor=user.name, scope=f"{len(ids)} selected jobs")
    _flash(request, _retry_message(result))
    return RedirectResponse(f"/batches/{batch_id}", 303)


@router.post("/batches/{batch_id}/pause")
def pause_batch(request: Request, batch_id: int, user: Operator):
    return _set_batch(request, batch_id, True, user)


@router.post("/batches/{batch_id}/resume")
def resume_batch(request: Request, batch_id: int, user: Operator):
    return _set_batch(request, batch_id, False, user)


def _set_batch(request: Request, batch_id: int, paused: bool, user):
    actions.set_batch_paused(batch_id, paused, engine=request.app.state.engine, actor=user.name)
    _flash(request, f"Batch {batch_id} {'paused: the signer takes none of its jobs' if paused else 'resumed'}.")
    return RedirectResponse(f"/batches/{batch_id}", 303)


# ---- jobs -------------------------------------------------------------------------------------------
@router.get("/jobs/{job_id}")
def job(request: Request, job_id: int, user: Viewer, s: DB):
    detail = queries.job_detail(s, job_id)
    if detail is None:
        raise HTTPException(404, f"job {job_id} does not exist")
    return _page(request, "job.html", title=f"Job {job_id}", j=detail, poll_url=f"/api/live?jobs={job_id}")


@router.get("/jobs/{job_id}/retry")
def retry_job_confirm(request: Request, job_id: int, user: Viewer, s: DB):
    detail = queries.job_detail(s, job_id)
    if detail is None:
        raise HTTPException(404, f"job {job_id} does not exist")
    return _page(request, "confirm.html", title="Confirm retry", count=1,
                 question=f"Retry 1 job (job {job_id}, line {detail['line']})? The chain is checked first.",
                 action=f"/jobs/{job_id}/retry", fields={}, cancel=f"/jobs/{job_id}")


@router.post("/jobs/{job_id}/retry")
def retry_job(request: Request, job_id: int, user: Operator, s: DB):
    if queries.job_detail(s, job_id) is None:
        raise HTTPException(404, f"job {job_id} does not exist")
    result = actions.retry([job_id], **api._ctx(request), actor=user.name, scope=f"job {job_id}")
    _flash(request, _retry_message(result))
    return RedirectResponse(f"/jobs/{job_id}", 303)


# ---- failed jobs of every batch ---------------------------------------------------------------------
@router.get("/failed")
def failed(request: Request, user: Viewer, s: DB, code: Annotated[str | None, Query(max_length=64)] = None,
           after: Cursor = None):
    page = queries.list_jobs(s, states=queries.RETRYABLE_STATES, error_code=code, after=after)
    by_code = queries.failed_by_code(s)
    total = sum(c["count"] for c in by_code)
    shown = total if code is None else next((c["count"] for c in by_code if c["code"] == code), 0)
    ids = ",".join(str(j["id"]) for j in page["jobs"])
    return _page(request, "failed.html", title="Failed jobs", page=page, by_code=by_code, total=total, shown=shown,
                 code=code, query={"code": code} if code is not None else {}, urlencode=urlencode,
                 poll_url=f"/api/live?jobs={ids}")


@router.get("/failed/retry")
def retry_everywhere_confirm(request: Request, user: Viewer, s: DB,
                             code: Annotated[str | None, Query(max_length=64)] = None):
    count = len(queries.failed_ids(s, error_code=code))
    which = f" with error {code}" if code is not None else " of every batch"
    fields = {"expected_count": count} | ({"code": code} if code is not None else {})
    back = "/failed" + (f"?{urlencode({'code': code})}" if code is not None else "")
    return _page(request, "confirm.html", title="Confirm retry", count=count,
                 question=f"Retry {count} failed job{'s' if count != 1 else ''}{which}?", action="/failed/retry",
                 fields=fields, cancel=back)


@router.post("/failed/retry")
def retry_everywhere(request: Request, user: Operator, expected_count: Annotated[int, Form()],
                     code: Annotated[str | None, Form(max_length=64)] = None):
    try:
        result = actions.retry_failed_everywhere(**api._ctx(request), actor=user.name, error_code=code,
                                                 expected_count=expected_count)
    except actions.Conflict as exc:
        _flash(request, str(exc), "error")
        return RedirectResponse("/failed/retry" + (f"?{urlencode({'code': code})}" if code is not None else ""), 303)
    _flash(request, _retry_message(result))
    return RedirectResponse("/failed", 303)


@router.post("/failed/retry-selected")
def retry_selected_everywhere(request: Request, user: Operator,
                              job_ids: Annotated[list[RowId], Form(max_length=10_000)] = (),
                              confirmed: Annotated[str, Form()] = ""):
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        _flash(request, "Select at least one job to retry.", "error")
        return RedirectResponse("/failed", 303)
    if confirmed != "yes":
        return _page(request, "confirm.html", title="Confirm retry", count=len(ids),
                     question=f"Retry {len(ids)} selected job{'s' if len(ids) != 1 else ''}?",
                     action="/failed/retry-selected", fields={"confirmed": "yes"}, job_ids=ids, cancel="/failed")
    result = actions.retry(ids, **api._ctx(request), actor=user.name, scope=f"{len(ids)} selected jobs")
    _flash(request, _retry_message(result))
    return RedirectResponse("/failed", 303)


@router.get("/search")
def search(request: Request, user: Viewer, s: DB, q: Annotated[str, Query(max_length=200)] = "",
           after: Cursor = None):
    q = q.strip()
    page = queries.list_jobs(s, q=q, after=after) if q else {"jobs": [], "next_after": None, "prev_before": None}
    return _page(request, "search.html", title="Search", q=q, page=page, urlencode=urlencode,
                 poll_url="/api/live?jobs=" + ",".join(str(j["id"]) for j in page["jobs"]) if page["jobs"] else None)


# ---- credentials ------------------------------------------------------------------------------------
@router.get("/credentials")
def credential_lookup(request: Request, user: Viewer, id: Annotated[str, Query(max_length=80)] = ""):
    if id.strip().isdigit():
        return RedirectResponse(f"/credentials/{int(id.strip())}", 303)
    return _page(request, "credential.html", title="Credential", c=None, credential_id=None, error=None, jobs=[])


@router.get("/credentials/{credential_id}")
async def credential(request: Request, credential_id: int, user: Viewer, s: DB):
    error, status = None, 200
    try:
        c = await api._status(request, credential_id, None)
    except HTTPException as exc:
        c, error, status = None, exc.detail, exc.status_code
    if c is not None and not c["exists"]:
        c, error, status = None, c["reason"], 404
    facts = queries.credential_facts(s, credential_id)
    return request.app.state.renderer.page(request, "credential.html", {
        "title": f"Credential {credential_id}", "c": c, "credential_id": credential_id, "error": error,
        "jobs": facts["jobs"], "issued": facts["issued"], "revocation": facts["revocation"],
        "poll_url": "/api/live?jobs=" + ",".join(str(j["id"]) for j in facts["jobs"])}, status=status)


@router.post("/credentials/{credential_id}/revoke")
def revoke(request: Request, credential_id: int, user: Operator, s: DB, reason: Annotated[str, Form(max_length=500)],
           confirmed: Annotated[str, Form()] = ""):
    if queries.credential_facts(s, credential_id)["issued"] is None:
        raise HTTPException(404, f"credential {credential_id} is not a credential this system has seen on chain")
    if confirmed != "yes":  # a revocation cannot be undone: say what will happen and ask once more
        if not reason.strip():
            _flash(request, "Not revoked: give the reason (it is recorded with the revocation).", "error")
            return RedirectResponse(f"/credentials/{credential_id}", 303)
        return _page(request, "confirm.html", title="Confirm revocation", count=1,
                     question=f"Revoke credential {credential_id}?",
                     note=f"Reason: “{reason.strip()}”. A revocation cannot be undone: once it is on chain, every "
                          "verifier is told this credential is revoked.",
                     button="Revoke credential", danger=True, action=f"/credentials/{credential_id}/revoke",
                     fields={"reason": reason.strip(), "confirmed": "yes"}, cancel=f"/credentials/{credential_id}")
    result = actions.revoke_credential(credential_id, reason, **api._ctx(request), actor=user.name)
    if result["errors"]:
        _flash(request, f"Not revoked: credential {credential_id} {result['errors'][0]['reason']}.", "error")
    elif result["created"]:
        _flash(request, f"Revocation of credential {credential_id} queued (batch {result['batch_id']}); "
                        "it shows as revoked once the event is confirmed on chain.")
    else:
        _flash(request, f"Credential {credential_id}'s revocation was requested already.")
    return RedirectResponse(f"/credentials/{credential_id}", 303)


# ---- signer -----------------------------------------------------------------------------------------
@router.post("/signers/{address}/pause")
def pause_signer(request: Request, address: str, user: Operator):
    return _set_signer(request, address, True, user)


@router.post("/signers/{address}/resume")
def resume_signer(request: Request, address: str, user: Operator):
    return _set_signer(request, address, False, user)


def _set_signer(request: Request, address: str, paused: bool, user):
    actions.set_signer_paused(address, paused, engine=request.app.state.engine, actor=user.name)
    _flash(request, "Issuance paused: nothing new is signed until you resume." if paused else "Issuance resumed.")
    return RedirectResponse("/", 303)


# ---- uploads ----------------------------------------------------------------------------------------
@router.get("/upload")
def upload_form(request: Request, user: Viewer):
    return _page(request, "upload.html", title="Upload", max_mb=request.app.state.settings.max_upload_mb)


@router.post("/upload")
def upload(request: Request, user: Operator, file: Annotated[UploadFile, File()],
           institution: Annotated[str, Form(max_length=42)] = ""):
    token = api.store_upload(request, file)
    actions.preview_upload(request.app.state.uploads, token, **api._ctx(request), institution=institution or None)
    return RedirectResponse(f"/upload/{quote(token)}", 303)


@router.get("/upload/{token}")
def upload_preview(request: Request, token: str, user: Viewer):
    view = actions.upload_view(token, api._meta(request, token))
    return _page(request, "upload_preview.html", title="Upload preview", u=view, shown=200)


@router.get("/upload/{token}/errors.csv")
def upload_errors(request: Request, token: str, user: Viewer):
    return api.upload_errors_csv(request, token, user)


@router.post("/upload/{token}/commit")
def upload_commit(request: Request, token: str, user: Operator,
                  reject_on_invalid: Annotated[str, Form()] = "", queue_while_blocked: Annotated[str, Form()] = ""):
    view = actions.commit_upload(request.app.state.uploads, token, **api._ctx(request), actor=user.name,
                                 reject_on_invalid=reject_on_invalid == "yes",
                                 queue_while_blocked=queue_while_blocked == "yes")
    done = view["committed"]
    again = f" {done['requeued']} earlier rows queued again." if done.get("requeued") else ""
    if done["batch_id"]:
        _flash(request, f"Batch {done['batch_id']} created: {done['queued']} jobs queued.{again}")
        return RedirectResponse(f"/batches/{done['batch_id']}", 303)
    if again:
        _flash(request, again.strip())
        return RedirectResponse(f"/upload/{quote(token)}", 303)
    _flash(request, "Nothing queued: " + ((done.get("rejected_reason") or "the file was rejected") if done["rejected"]
                                          else "no new rows in this file."), "error")
    return RedirectResponse(f"/upload/{quote(token)}", 303)


@router.post("/upload/{token}/discard")
def upload_discard(request: Request, token: str, user: Operator):
    if request.app.state.uploads.discard(token):
        audit.record(request.app.state.engine, user.name, "upload.discard", token)
    _flash(request, "Upload discarded; nothing was queued.")
    return RedirectResponse("/upload", 303)


# ---- audit ----------------------------------------------------------------------------------------
@router.get("/audit")
def audit_page(request: Request, user: Viewer, s: DB, before: Cursor = None):
    return _page(request, "audit.html", title="Audit log", data=audit.entries(s, before=before))

