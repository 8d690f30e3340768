"""The JSON API: everything the UI shows and does, under /api; OpenAPI at /openapi.json, browsable at /docs."""
from __future__ import annotations

import io
import re
from typing import Annotated, Iterator, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from blockproof.errors import RpcError, RpcUnavailable
from blockproof.verify import InvalidFingerprint, credential_status
from models.states import JobState
from models.tables import Batch
from producers.error_report import write_error_report
from web import actions, audit, auth, panels, queries
from web.auth import User
from web.uploads import TooLarge

router = APIRouter()
STATES = [s.value for s in JobState]
JobStateName = Literal[tuple(STATES)]  # type: ignore[valid-type]


def db(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


DB = Annotated[Session, Depends(db)]
Viewer = Annotated[User, Depends(auth.viewer)]
Operator = Annotated[User, Depends(auth.operator)]
# a keyset cursor (after= / before=) is a row id: a larger number is a bad request, not a database error
Cursor = Annotated[int | None, Query(ge=0, le=queries.ROW_ID_MAX)]
RowId = Annotated[int, Field(ge=0, le=queries.ROW_ID_MAX)]


def _ctx(request: Request) -> dict:
    return {"settings": request.app.state.settings, "engine": request.app.state.engine}


# ---- health and metrics --------------------------------------------------------------------------
@router.get("/healthz", tags=["ops"], summary="200 when the database answers (for compose / load balancers)")
def healthz(request: Request):
    try:
        with request.app.state.engine.connect() as c:
            c.execute(text("select 1"))
    except Exception as exc:
        return JSONResponse({"ok": False, "database": f"unreachable: {exc.__class__.__name__}"}, 503)
    return {"ok": True, "database": "ok"}


@router.get("/metrics", tags=["ops"], summary="Prometheus metrics, computed at scrape time (viewer login)")
def metrics(request: Request, user: Viewer):
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)


# ---- public read path ----------------------------------------------------------------------------
class _NeedsChain(Exception):
    pass


class _DatabaseOnly:
    """An Rpc stand-in for the first try: whatever would ask the chain raises instead of blocking the event loop."""

    def call(self, *args, **kwargs):
        raise _NeedsChain()

    batch = get_block = call


async def _status(request: Request, credential_id: int, fingerprint: str | None) -> dict:
    """blockproof.verify.credential_status: a database hit is answered on the event loop (one indexed SELECT, and
    the chain's clock cached for a second); a miss asks the chain from the thread pool."""
    state = request.app.state
    ask = dict(fingerprint=fingerprint, settings=state.settings, engine=state.engine, clock=state.chain_clock)
    try:
        try:
            return credential_status(credential_id, rpc=_DatabaseOnly(), **ask)
        except _NeedsChain:
            return await run_in_threadpool(credential_status, credential_id, rpc=state.rpc, **ask)
    except InvalidFingerprint as exc:
        raise HTTPException(422, str(exc))
    except (RpcUnavailable, RpcError) as exc:
        raise HTTPException(503, f"not in the database and the chain could not be asked: {exc}")


def _answer(result: dict) -> JSONResponse:
    if not result["exists"]:  # 404 as before, with the same fields and the verdict "not_issued"
        return JSONResponse(result | {"detail": f"credential {result['credential_id']} does not exist"}, 404)
    return JSONResponse(result)


VERDICT_DOC = ("One answer from either source (`source`: database, chain, or none for an id the contract never "
               "numbers): `verdict` is valid | revoked | expired | not_issued | fingerprint_mismatch, `reason` says "
               "it in a sentence; expiry is judged at `checked_at`, the chain's latest block time (`clock`: chain), "
               "or this server's time when the chain cannot be asked (`clock`: machine). 404 when not issued.")


@router.get("/api/credentials/{credential_id}/status", tags=["public"],
            summary="Credential status (database first, chain fallback); public", description=VERDICT_DOC)
async def credential_status_api(request: Request, credential_id: int):
    return _answer(await _status(request, credential_id, None))


@router.get("/api/credentials/{credential_id}/verify", tags=["public"],
            summary="Does this fingerprint belong to a valid credential? (database first, chain fallback); public",
            description=VERDICT_DOC + " `verified` is true exactly when the verdict is valid.")
async def credential_verify_api(request: Request, credential_id: int,
                                fingerprint: Annotated[str, Query(max_length=200,
                                                                  description="0x + 64 hex digits")]):
    return _answer(await _status(request, credential_id, fingerprint))


# ---- session ---------------------------------------------------------------------------------------
@router.get("/api/me", tags=["auth"], summary="Who you are; the CSRF token to send as X-CSRF-Token")
def me(request: Request, user: Viewer):
    return {"user": user.name, "role": user.role, "via": user.via, "scope": user.scope if user.via == "token" else None,
            "csrf_token": user.csrf if user.via == "session" else None}


# ---- overview --------------------------------------------------------------------------------------
@router.get("/api/overview", tags=["monitoring"], summary="Queues, signers, indexer, alerts, throughput, job counts")
def overview(request: Request, user: Viewer, s: DB):
    return panels.overview(s, request.app.state.facts)


@router.get("/api/live", tags=["monitoring"],
            summary="What a page polls every few seconds: alerts, one batch's progress, some jobs' states")
def live(request: Request, user: Viewer, s: DB, batch: int | None = None,
         batches: Annotated[str, Query(max_length=2000)] = "", jobs: Annotated[str, Query(max_length=8000)] = "",
         panels_too: Annotated[bool, Query(alias="overview")] = False):
    out: dict = {"alerts": panels.alerts(s, request.app.state.facts)}
    if batch is not None:
        b = queries.get_batch(s, batch)
        if b is not None:
            out["batch"] = queries.batch_summary(s, b)
    batch_ids = queries.row_ids(batches, limit=100)
    if batch_ids:
        from sqlalchemy import select

        out["batches"] = {str(b.id): queries.batch_summary(s, b)
                          for b in s.execute(select(Batch).where(Batch.id.in_(batch_ids))).scalars()}
    ids = queries.row_ids(jobs, limit=500)
    if ids:
        from sqlalchemy import select

        from models.tables import Job

        out["jobs"] = {str(j.id): {"state": j.state, "credential_id": j.credential_id, "tx_hash": j.tx_hash,
                                   "error_message": j.error_message}
                       for j in s.execute(select(Job).where(Job.id.in_(ids))).scalars()}
    if panels_too:
        out |= panels.overview(s, request.app.state.facts)
    return out


@router.get("/api/queues", tags=["monitoring"], summary="Ready / unacked / delayed / dead-letter counts, consumers")
def queues(request: Request, user: Viewer, s: DB):
    return request.app.state.facts.queues.get() | {"throughput": queries.throughput(s)}


@router.get("/api/signers", tags=["monitoring"], summary="Signer panel: balance, issuances left, nonces, in flight")
def signers(request: Request, user: Viewer, s: DB):
    return {"signers": panels.signers(s, request.app.state.facts)}


@router.get("/api/indexer", tags=["monitoring"], summary="Indexer panel: chain head, last indexed block, lag")
def indexer(request: Request, user: Viewer, s: DB):
    return {"indexer": panels.indexer(s, request.app.state.facts)}


@router.get("/api/alerts", tags=["monitoring"], summary="Open alerts")
def alerts(request: Request, user: Viewer, s: DB):
    return {"alerts": panels.alerts(s, request.app.state.facts)}


@router.get("/api/health", tags=["monitoring"],
            summary="Node, broker and database reachable now; each worker's heartbeat age and whether it is stale")
def health(request: Request, user: Viewer):
    return request.app.state.facts.health.get()


@router.post("/api/signers/{address}/pause", tags=["actions"], summary="Pause issuance by this signer (operator)")
def pause_signer(request: Request, address: str, user: Operator):
    return actions.set_signer_paused(address, True, engine=request.app.state.engine, actor=user.name)


@router.post("/api/signers/{address}/resume", tags=["actions"], summary="Resume issuance by this signer (operator)")
def resume_signer(request: Request, address: str, user: Operator):
    return actions.set_signer_paused(address, False, engine=request.app.state.engine, actor=user.name)


# ---- batches and jobs ------------------------------------------------------------------------------
@router.get("/api/batches", tags=["batches"], summary="Batches, newest first, with progress (keyset: before=id)")
def batches(user: Viewer, s: DB, before: Cursor = None, limit: Annotated[int, Query(ge=1, le=100)] = 20):
    return queries.list_batches(s, before=before, limit=limit)


def _batch(s: Session, batch_id: int) -> Batch:
    batch = queries.get_batch(s, batch_id)
    if batch is None:
        raise HTTPException(404, f"batch {batch_id} does not exist")
    return batch


@router.get("/api/batches/{batch_id}", tags=["batches"], summary="One batch: counts and progress")
def batch(batch_id: int, user: Viewer, s: DB):
    return queries.batch_summary(s, _batch(s, batch_id))


@router.get("/api/batches/{batch_id}/jobs", tags=["batches"],
            summary="A batch's jobs: filter by state, search, keyset pagination (after=id / before=id)")
def batch_jobs(batch_id: int, user: Viewer, s: DB, state: Annotated[JobStateName | None, Query()] = None,
               q: Annotated[str | None, Query(max_length=200)] = None, after: Cursor = None,
               before: Cursor = None, limit: Annotated[int, Query(ge=1, le=500)] = 50):
    _batch(s, batch_id)
    return queries.list_jobs(s, batch_id=batch_id, state=state or None, q=q or None, after=after, before=before,
                             limit=limit)


class RetryFailed(BaseModel):
    expected_count: int | None = Field(None, description="the count the user confirmed; 409 if it changed")


@router.post("/api/batches/{batch_id}/retry-failed", tags=["actions"],
             summary="Retry every failed or dead job of a batch (the chain is checked first; operator)")
def retry_failed(request: Request, batch_id: int, user: Operator, body: RetryFailed | None = None):
    return actions.retry_failed_in_batch(batch_id, **_ctx(request), actor=user.name,
                                         expected_count=body.expected_count if body else None)


@router.post("/api/batches/{batch_id}/pause", tags=["actions"], summary="Pause a batch (operator)")
def pause_batch(request: Request, batch_id: int, user: Operator):
    return actions.set_batch_paused(batch_id, True, engine=request.app.state.engine, actor=user.name)


@router.post("/api/batches/{batch_id}/resume", tags=["actions"], summary="Resume a batch (operator)")
def resume_batch(request: Request, batch_id: int, user: Operator):
    return actions.set_batch_paused(batch_id, False, engine=request.app.state.engine, actor=user.name)


@router.post("/api/batches/{batch_id}/cancel", tags=["actions"],
             summary="Cancel a batch: every job not yet sent ends cancelled; sent ones finish (operator)")
def cancel_batch(request: Request, batch_id: int, user: Operator):
    return actions.cancel_batch(batch_id, engine=request.app.state.engine, actor=user.name)


@router.get("/api/failed", tags=["jobs"],
            summary="Failed and dead jobs of every batch (optionally one error code), counts by code; keyset after=id")
def failed(user: Viewer, s: DB, code: Annotated[str | None, Query(max_length=64)] = None, after: Cursor = None,
           limit: Annotated[int, Query(ge=1, le=500)] = 50):
    return queries.list_jobs(s, states=queries.RETRYABLE_STATES, error_code=code, after=after, limit=limit) | {
        "by_code": queries.failed_by_code(s)}


class RetryEverywhere(BaseModel):
    expected_count: int | None = Field(None, description="the count the user confirmed; 409 if it changed")
    code: str | None = Field(None, max_length=64, description="only the failed jobs with this error code")


@router.post("/api/failed/retry", tags=["actions"],
             summary="Retry every failed or dead job of every batch, or those with one error code (chain checked "
                     "first; operator)")
def retry_failed_everywhere(request: Request, user: Operator, body: RetryEverywhere | None = None):
    body = body or RetryEverywhere()
    return actions.retry_failed_everywhere(**_ctx(request), actor=user.name, error_code=body.code,
                                           expected_count=body.expected_count)


@router.get("/api/jobs/{job_id}", tags=["jobs"],
            summary="One job: row, state history, transaction attempts, receipt, event, decoded error")
def job(job_id: int, user: Viewer, s: DB):
    detail = queries.job_detail(s, job_id)
    if detail is None:
        raise HTTPException(404, f"job {job_id} does not exist")
    return detail


class RetrySelected(BaseModel):
    job_ids: list[RowId] = Field(..., min_length=1, max_length=10_000)


@router.post("/api/jobs/retry", tags=["actions"], summary="Retry selected jobs (chain checked first; operator)")
def retry_selected(request: Request, body: RetrySelected, user: Operator):
    return actions.retry(body.job_ids, **_ctx(request), actor=user.name, scope=f"{len(body.job_ids)} selected jobs")


@router.post("/api/jobs/{job_id}/retry", tags=["actions"], summary="Retry one job (chain checked first; operator)")
def retry_one(request: Request, job_id: int, user: Operator, s: DB):
    if queries.job_detail(s, job_id) is None:
        raise HTTPException(404, f"job {job_id} does not exist")
    return actions.retry([job_id], **_ctx(request), actor=user.name, scope=f"job {job_id}")


@router.get("/api/search", tags=["jobs"],
            summary="Find jobs by student id, wallet, fingerprint, credential id, job id, transaction hash, error code")
def search(user: Viewer, s: DB, q: Annotated[str, Query(min_length=1, max_length=200)], after: Cursor = None):
    return queries.list_jobs(s, q=q, after=after)


# ---- revocation -----------------------------------------------------------------------------------
class Revoke(BaseModel):
    reason: str = Field(..., min_length=1, max_length=500)


@router.post("/api/credentials/{credential_id}/revoke", tags=["actions"],
             summary="Revoke a credential with a reason (queued as a revoke job; operator)")
def revoke(request: Request, credential_id: int, body: Revoke, user: Operator):
    result = actions.revoke_credential(credential_id, body.reason, **_ctx(request), actor=user.name)
    if result["errors"]:
        reason = result["errors"][0]["reason"]
        raise HTTPException(404 if "not a credential" in reason else 409, f"credential {credential_id} {reason}")
    return result


# ---- uploads -----------------------------------------------------------------------------------------
def store_upload(request: Request, file: UploadFile) -> str:
    settings = request.app.state.settings
    name = (file.filename or "upload.csv").replace("\\", "/").rsplit("/", 1)[-1][:255] or "upload.csv"
    try:
        return request.app.state.uploads.save(file.file, filename=name,
                                              max_bytes=settings.max_upload_mb * 1024 * 1024)
    except TooLarge:
        raise HTTPException(413, f"the file is larger than {settings.max_upload_mb} MB (BLOCKPROOF_MAX_UPLOAD_MB)")


@router.post("/api/uploads", tags=["uploads"],
             summary="Upload a CSV: validate and classify (new / duplicate / already issued / invalid); "
                     "nothing is queued until commit (operator)")
def upload(request: Request, user: Operator, file: Annotated[UploadFile, File()],
           institution: Annotated[str, Form(max_length=42)] = ""):
    token = store_upload(request, file)
    return actions.preview_upload(request.app.state.uploads, token, **_ctx(request), institution=institution or None)


def _meta(request: Request, token: str) -> dict:
    meta = request.app.state.uploads.meta(token)
    if meta is None:
        raise HTTPException(404, "this upload does not exist (expired, discarded or never made)")
    return meta


@router.get("/api/uploads/{token}", tags=["uploads"], summary="An upload's validation report")
def upload_report(request: Request, token: str, user: Viewer):
    return actions.upload_view(token, _meta(request, token))


@router.get("/api/uploads/{token}/errors.csv", tags=["uploads"],
            summary="Every invalid row as CSV (line, field, value, reason, then the row's original columns; "
                    "spreadsheet-safe)")
def upload_errors_csv(request: Request, token: str, user: Viewer):
    meta = _meta(request, token)
    saved = request.app.state.uploads.errors_path(token)
    if saved is not None and saved.is_file():  # written by the preview, with each row's original columns
        body = saved.read_bytes()
    else:
        out = io.StringIO()
        write_error_report(actions.error_rows(meta), out)
        body = ("\ufeff" + out.getvalue()).encode("utf-8")
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", meta["filename"].rsplit(".", 1)[0])[:80] or "upload"
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{stem}-errors.csv"'})


class Commit(BaseModel):
    reject_on_invalid: bool = False
    queue_while_blocked: bool = Field(False, description="queue even though the contract would refuse now "
                                                         "(the signer holds the jobs until it is fixed)")
    deadline: str | None = Field(None, description="the batch must be issued by then: a duration (90m, 2h, 1d) or "
                                 "a time (2026-12-01T18:00, UTC unless an offset is given); the signer leaves the "
                                 "fee-saving pace (the EIP-1559 target) as far as that needs")


@router.post("/api/uploads/{token}/commit", tags=["uploads"],
             summary="Write the batch and queue its new rows (operator); committing twice changes nothing")
def upload_commit(request: Request, token: str, user: Operator, body: Commit | None = None):
    deadline = None
    if body and body.deadline:
        from models.states import utcnow
        from workers.signer.pacing import parse_deadline

        try:
            deadline = parse_deadline(body.deadline, utcnow())
        except ValueError as exc:
            raise HTTPException(422, f"deadline: {exc}") from None
    return actions.commit_upload(request.app.state.uploads, token, **_ctx(request), actor=user.name, deadline=deadline,
                                 reject_on_invalid=bool(body and body.reject_on_invalid),
                                 queue_while_blocked=bool(body and body.queue_while_blocked))


@router.delete("/api/uploads/{token}", tags=["uploads"], summary="Discard an upload before commit (operator)")
def upload_discard(request: Request, token: str, user: Operator):
    if not request.app.state.uploads.discard(token):
        raise HTTPException(404, "this upload does not exist")
    audit.record(request.app.state.engine, user.name, "upload.discard", token)
    return {"discarded": token}


# ---- audit -------------------------------------------------------------------------------------------
@router.get("/api/audit", tags=["audit"], summary="The audit log, newest first (keyset: before=id)")
def audit_log(user: Viewer, s: DB, before: Cursor = None, limit: Annotated[int, Query(ge=1, le=500)] = 50):
    return audit.entries(s, before=before, limit=limit)


# ---- docs ----------------------------------------------------------------------------------------------
@router.get("/openapi.json", include_in_schema=False)
def openapi_document(request: Request, user: Viewer):
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False)
def docs(request: Request, user: Viewer):
    """The OpenAPI document rendered as a page (offline: no Swagger UI from a CDN)."""
    spec = request.app.openapi()
    return request.app.state.renderer.page(request, "docs.html", {"spec": spec, "title": "API"})

