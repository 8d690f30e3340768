"""Revocation requests become revoke jobs: same signer, batch call (revokeCredentialBatch), events
and reconciliation as issuance.

A request names a credential by id or by fingerprint (or both, which must agree). It is checked
against the credentials the event consumer has stored: unknown, already revoked, or already
requested are row errors; the rest become one batch of ``revoke`` jobs written in one transaction
and then published (``blockproof requeue BATCH`` publishes whatever an interruption left behind).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from blockproof.settings import Settings
from models.db import session_scope
from models.states import JobKind, JobState
from models.tables import Batch, CredentialEvent, Job
from models.db import IN_LIST_CHUNK
from producers.records import RowError
from producers.revocation_csv import MAX_REASON, read_revocations
from producers.upload import enqueue_batch

LOOKUP_CHUNK = IN_LIST_CHUNK


@dataclass
class RevocationRequest:
    line: int
    reason: str
    credential_id: int | None = None
    fingerprint: str | None = None


@dataclass
class RevocationReport:
    requested: int = 0
    created: int = 0
    already_requested: int = 0
    invalid: int = 0
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False
    rejected: bool = False
    batch_id: int | None = None
    queued: int = 0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["errors"] = [asdict(e) | {"message": e.message} for e in self.errors]
        return out


def requests_from_csv(source) -> tuple[list[RevocationRequest], list[RowError], int]:
    """Read a revocation CSV (docs/csv-format.md, "The revocation CSV"): (requests, row errors, data rows)."""
    found, errors, total = read_revocations(source)
    return [RevocationRequest(**r) for r in found], errors, total


def _lookup(session, column, values: list) -> dict:
    out = {}
    for start in range(0, len(values), LOOKUP_CHUNK):
        for event in session.execute(select(CredentialEvent).where(
                column.in_(values[start : start + LOOKUP_CHUNK]))).scalars():
            out[getattr(event, column.key)] = event
    return out


def _requested(session, credential_ids: list[int]) -> set[int]:
    keys = [f"revoke:{c}" for c in credential_ids]
    found: set[int] = set()
    for start in range(0, len(keys), LOOKUP_CHUNK):
        found.update(int(k.split(":")[1]) for k in session.execute(select(Job.idempotency_key).where(
            Job.kind == JobKind.REVOKE.value, Job.idempotency_key.in_(keys[start : start + LOOKUP_CHUNK]))).scalars())
    return found


def _resolve(s, requests: list[RevocationRequest], report: RevocationReport) -> list[tuple[RevocationRequest, object]]:
    by_id = _lookup(s, CredentialEvent.credential_id, sorted({r.credential_id for r in requests if r.credential_id}))
    by_fp = _lookup(s, CredentialEvent.fingerprint,
                    sorted({r.fingerprint.lower() for r in requests if r.fingerprint and not r.credential_id}))
    resolved, seen = [], {}
    for req in requests:
        if not req.reason.strip():
            report.errors.append(RowError(req.line, "reason", req.reason, "is required"))
            continue
        if len(req.reason) > MAX_REASON:
            report.errors.append(RowError(req.line, "reason", req.reason[:40] + "…",
                                          f"is too long ({len(req.reason)} characters, at most {MAX_REASON})"))
            continue
        if req.credential_id is not None:
            event, name, value = by_id.get(req.credential_id), "credential_id", str(req.credential_id)
        else:
            event, name, value = by_fp.get((req.fingerprint or "").lower()), "fingerprint", req.fingerprint or ""
        if event is None:
            report.errors.append(RowError(req.line, name, value, "is not a credential this system has seen on chain"))
        elif req.credential_id is not None and req.fingerprint and req.fingerprint.lower() != event.fingerprint:
            report.errors.append(RowError(req.line, "fingerprint", req.fingerprint,
                                          f"does not match credential {event.credential_id}'s fingerprint"))
        elif event.revoked:
            report.errors.append(RowError(req.line, name, value, "is already revoked"))
        elif event.credential_id in seen:
            report.errors.append(RowError(req.line, "", "", f"duplicate of line {seen[event.credential_id]}"))
        else:
            seen[event.credential_id] = req.line
            resolved.append((req, event))
    return resolved


def revoke(requests: list[RevocationRequest], *, settings: Settings, engine, created_by: str = "cli",
           filename: str = "revocations", publish=None, dry_run: bool = False, reject_on_invalid: bool = False,
           errors: list[RowError] | None = None, total_rows: int | None = None) -> RevocationReport:
    """Check the requests and (unless dry_run or rejected) write and queue one revoke job per credential.

    ``errors`` / ``total_rows``: row errors and the row count from reading the file, to report them together.
    """
    report = RevocationReport(requested=total_rows if total_rows is not None else len(requests), dry_run=dry_run,
                              errors=list(errors or []))
    with session_scope(engine) as s:
        resolved = _resolve(s, requests, report)
        requested = _requested(s, [e.credential_id for _, e in resolved])
        report.already_requested = sum(1 for _, e in resolved if e.credential_id in requested)
        resolved = [(r, e) for r, e in resolved if e.credential_id not in requested]
        report.errors.sort(key=lambda e: e.line)
        report.invalid = len({e.line for e in report.errors})
        if dry_run or not resolved or (reject_on_invalid and report.errors):
            report.rejected = bool(reject_on_invalid and report.errors and not dry_run)
            report.created = 0 if not dry_run else len(resolved)
            s.rollback()
            return report
        batch = Batch(filename=filename[:255], institution=resolved[0][1].institution, kind=JobKind.REVOKE.value,
                      row_count=len(resolved), invalid_count=report.invalid, created_by=created_by)
        s.add(batch)
        s.flush()
        values = [{"batch_id": batch.id, "kind": "revoke", "idempotency_key": f"revoke:{e.credential_id}",
                   "line": r.line, "state": JobState.VALIDATED.value, "institution": e.institution,
                   "student_wallet": e.student_wallet, "fingerprint": e.fingerprint, "credential_id": e.credential_id,
                   "revocation_reason": r.reason.strip(), "error_message": "", "document": "", "retryable": False,
                   "retries": 0, "expires_at": 0} for r, e in resolved]
        insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = insert(Job).on_conflict_do_nothing(index_elements=["kind", "idempotency_key"])
        for start in range(0, len(values), 5000):
            s.execute(statement, values[start : start + 5000])
        created = s.execute(select(Job.id).where(Job.batch_id == batch.id)).scalars().all()
        report.created = len(created)
        report.already_requested += len(values) - len(created)
        report.batch_id = batch.id
    report.queued = enqueue_batch(report.batch_id, settings=settings, engine=engine, publish=publish)
    return report


def revoke_file(source, *, settings: Settings, engine, filename: str, created_by: str = "cli", dry_run: bool = False,
                reject_on_invalid: bool = False, publish=None) -> RevocationReport:
    """A revocation CSV end to end: read, check, write and queue (CsvFileError for an unreadable file)."""
    requests, errors, total = requests_from_csv(source)
    return revoke(requests, settings=settings, engine=engine, created_by=created_by, filename=filename,
                  publish=publish, dry_run=dry_run, reject_on_invalid=reject_on_invalid, errors=errors,
                  total_rows=total)
