"""What an operator does, as plain functions shared by the pages and the JSON API. Each one writes an audit row.
Uploading, retrying and revoking go through the producers' functions: one code path with the CLI."""
from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import func, select, update
from sqlmodel import Session

from blockproof.errors import Conflict, NotFound  # noqa: F401  (the app maps them to 404 and 409)
from blockproof.settings import Settings
from blockproof.verify import is_credential_id
from models.db import session_scope
from models.states import utcnow
from models.tables import SignerState
from producers import batch_control
from producers.csv_reader import read_original_rows
from producers.error_report import write_error_report
from producers.records import CsvFileError, RowError
from producers.retry import retry_jobs, retryable_ids
from producers.revocations import RevocationRequest, revoke
from producers.upload import commit, plan
from web import audit, queries
from web.uploads import UploadStore


def _report_dict(report) -> dict:
    out = report.as_dict()
    out["errors"] = [{"line": e.line, "field": e.field, "value": e.value, "reason": e.reason, "message": e.message}
                     for e in report.errors]
    return out


def preview_upload(store: UploadStore, token: str, *, settings: Settings, engine, institution: str | None) -> dict:
    """Validate and classify the stored file (nothing written, nothing queued); remember the report."""
    meta = store.meta(token)
    path = store.csv_path(token)
    if meta is None or path is None:
        raise NotFound(f"upload {token} does not exist (expired, discarded or committed)")
    try:
        report, rows = plan(str(path), filename=meta["filename"], institution=institution or None, settings=settings,
                            engine=engine)
        _close(rows)
        meta["report"] = _report_dict(report)
        meta["file_error"] = None
        originals = read_original_rows(str(path), {e.line for e in report.errors}) if report.errors else {}
        write_error_report(report.errors, store.errors_path(token), original_rows=originals)
    except CsvFileError as exc:
        meta["report"] = None
        meta["file_error"] = exc.message
        write_error_report([], store.errors_path(token), file_error=exc.message)
    meta["institution"] = institution or None
    store.write_meta(token, meta)
    return upload_view(token, meta)


def _close(rows) -> None:
    close = getattr(rows, "close", None)  # staged rows on disk: the preview does not keep them
    if close is not None:
        close()


def upload_view(token: str, meta: dict) -> dict:
    return {"token": token, "filename": meta["filename"], "size": meta["size"], "report": meta.get("report"),
            "file_error": meta.get("file_error"), "committed": meta.get("committed")}


def commit_upload(store: UploadStore, token: str, *, settings: Settings, engine, actor: str,
                  reject_on_invalid: bool = False, queue_while_blocked: bool = False, deadline=None) -> dict:
    """Classify the file again (rows uploaded meanwhile count as duplicates) and queue its new rows."""
    meta = store.meta(token)
    if meta is None:
        raise NotFound(f"upload {token} does not exist (expired or discarded)")
    if meta.get("committed"):
        return upload_view(token, meta)  # pressed twice: the first commit stands
    path = store.csv_path(token)
    if path is None or meta.get("file_error"):
        raise Conflict(meta.get("file_error") or "the uploaded file is gone; upload it again")
    report, rows = plan(str(path), filename=meta["filename"], institution=meta.get("institution"), settings=settings,
                        engine=engine)
    extra = {"queue_while_blocked": True} if queue_while_blocked else {}
    if deadline is not None:
        extra["deadline"] = deadline
    report = commit(report, rows, settings=settings, engine=engine, reject_on_invalid=reject_on_invalid,
                    created_by=actor, **extra)
    meta["report"] = _report_dict(report)
    meta["committed"] = {"batch_id": report.batch_id, "batch_ids": getattr(report, "batch_ids", None) or (
        [report.batch_id] if report.batch_id else []), "queued": report.queued, "requeued": report.requeued,
        "rejected": report.rejected,
        "rejected_reason": getattr(report, "rejected_reason", "")}
    store.write_meta(token, meta)
    store.drop_file(token)
    audit.record(engine, actor, "upload.commit", f"batch {report.batch_id}" if report.batch_id else meta["filename"],
                 filename=meta["filename"], new=report.new, duplicate=report.duplicate,
                 already_issued=report.already_issued, invalid=report.invalid, queued=report.queued,
                 rejected=report.rejected)
    return upload_view(token, meta)


def error_rows(meta: dict) -> list[RowError]:
    report = meta.get("report") or {}
    return [RowError(e["line"], e["field"], e["value"], e["reason"]) for e in report.get("errors", [])]


def retry(job_ids: list[int], *, settings: Settings, engine, actor: str, scope: str) -> dict:
    result = retry_jobs(job_ids, settings=settings, engine=engine, actor=actor)
    out = asdict(result)
    audit.record(engine, actor, "retry", scope, requested=len(job_ids), requeued=len(result.requeued),
                 already_on_chain=result.already_on_chain, skipped=len(result.skipped))
    return out


def retry_failed_in_batch(batch_id: int, *, settings: Settings, engine, actor: str,
                          expected_count: int | None = None) -> dict:
    with Session(engine) as s:
        if queries.get_batch(s, batch_id) is None:
            raise NotFound(f"batch {batch_id} does not exist")
        ids = retryable_ids(s, batch_id=batch_id)
    if expected_count is not None and expected_count != len(ids):
        raise Conflict(f"you confirmed retrying {expected_count} jobs but {len(ids)} are failed now; confirm again")
    return retry(ids, settings=settings, engine=engine, actor=actor, scope=f"batch {batch_id} (all failed)")


def retry_failed_everywhere(*, settings: Settings, engine, actor: str, error_code: str | None = None,
                            expected_count: int | None = None) -> dict:
    """Every failed or dead job of every batch (optionally only those with one error code)."""
    with Session(engine) as s:
        ids = queries.failed_ids(s, error_code=error_code)
    if expected_count is not None and expected_count != len(ids):
        raise Conflict(f"you confirmed retrying {expected_count} jobs but {len(ids)} are failed now; confirm again")
    scope = "all failed jobs" + (f" with error {error_code}" if error_code is not None else "")
    return retry(ids, settings=settings, engine=engine, actor=actor, scope=scope)


def set_batch_paused(batch_id: int, paused: bool, *, engine, actor: str) -> dict:
    return batch_control.set_paused(batch_id, paused, engine=engine, actor=actor)


def cancel_batch(batch_id: int, *, engine, actor: str) -> dict:
    return asdict(batch_control.cancel(batch_id, engine=engine, actor=actor))


def set_signer_paused(address: str, paused: bool, *, engine, actor: str) -> dict:
    with session_scope(engine) as s:
        found = s.execute(select(SignerState.address).where(
            func.lower(SignerState.address) == address.lower())).scalar_one_or_none()
        if found is None:
            raise NotFound(f"signer {address} is not known (it has not started yet)")
        s.execute(update(SignerState).where(SignerState.address == found).values(paused=paused, updated_at=utcnow()))
    audit.record(engine, actor, "signer.pause" if paused else "signer.resume", found)
    return {"address": found, "paused": paused}


def revoke_credential(credential_id: int, reason: str, *, settings: Settings, engine, actor: str) -> dict:
    if not is_credential_id(credential_id):
        return {"credential_id": credential_id, "batch_id": None, "created": 0, "already_requested": 0, "queued": 0,
                "errors": [{"field": "credential_id", "value": str(credential_id),
                            "reason": "is not a credential this system has seen on chain"}]}
    report = revoke([RevocationRequest(line=1, reason=reason, credential_id=credential_id)], settings=settings,
                    engine=engine, created_by=actor, filename=f"revoke credential {credential_id}")
    out = {"credential_id": credential_id, "batch_id": report.batch_id, "created": report.created,
           "already_requested": report.already_requested, "queued": report.queued,
           "errors": [{"field": e.field, "value": e.value, "reason": e.reason} for e in report.errors]}
    if not report.errors:
        audit.record(engine, actor, "revoke", f"credential {credential_id}", reason=reason, batch_id=report.batch_id)
    return out
