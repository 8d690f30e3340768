"""Revocation requests become revoke jobs: same signer, batch call, events and reconciliation."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from blockproof.settings import Settings
from models.db import session_scope
from models.states import JobState
from models.tables import Batch, CredentialEvent, Job
from producers.records import RowError
from producers.upload import enqueue_batch

MAX_REASON = 500


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
    errors: list[RowError] = field(default_factory=list)
    batch_id: int | None = None
    queued: int = 0


def revoke(requests: list[RevocationRequest], *, settings: Settings, engine, created_by: str = "cli",
           filename: str = "revocations", publish=None) -> RevocationReport:
    report = RevocationReport(requested=len(requests))
    values = []
    with session_scope(engine) as s:
        for req in requests:
            if not req.reason.strip():
                report.errors.append(RowError(req.line, "reason", req.reason, "is required"))
                continue
            if len(req.reason) > MAX_REASON:
                report.errors.append(RowError(req.line, "reason", req.reason[:40] + "…",
                                              f"is too long ({len(req.reason)} characters, at most {MAX_REASON})"))
                continue
            query = select(CredentialEvent)
            if req.credential_id is not None:
                query = query.where(CredentialEvent.credential_id == req.credential_id)
                field_name, value = "credential_id", str(req.credential_id)
            else:
                query = query.where(CredentialEvent.fingerprint == (req.fingerprint or "").lower())
                field_name, value = "fingerprint", req.fingerprint or ""
            event = s.execute(query).scalars().first()
            if event is None:
                report.errors.append(RowError(req.line, field_name, value, "is not a credential this system has seen on chain"))
                continue
            if event.revoked:
                report.errors.append(RowError(req.line, field_name, value, "is already revoked"))
                continue
            values.append({"kind": "revoke", "idempotency_key": f"revoke:{event.credential_id}", "line": req.line,
                           "state": JobState.VALIDATED.value, "institution": event.institution,
                           "student_wallet": event.student_wallet, "fingerprint": event.fingerprint,
                           "credential_id": event.credential_id, "revocation_reason": req.reason.strip(),
                           "error_message": "", "document": "", "retryable": False, "retries": 0, "expires_at": 0})
        if not values:
            return report
        batch = Batch(filename=filename[:255], institution=values[0]["institution"], kind="revoke",
                      row_count=len(requests), invalid_count=len(report.errors), created_by=created_by)
        s.add(batch)
        s.flush()
        insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        before = len(values)
        for v in values:
            v["batch_id"] = batch.id
        s.execute(insert(Job).on_conflict_do_nothing(index_elements=["kind", "idempotency_key"]), values)
        created = s.execute(select(Job.id).where(Job.batch_id == batch.id)).scalars().all()
        report.created = len(created)
        report.already_requested = before - len(created)
        report.batch_id = batch.id
    report.queued = enqueue_batch(report.batch_id, settings=settings, engine=engine, publish=publish)
    return report
