"""The audit log: one row per person's action (who, from which address, what, on what, details)."""
from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from models.audit import record  # noqa: F401  (the web's actions record through it)
from models.tables import AuditEntry


def entries(session: Session, *, before: int | None = None, limit: int = 50) -> dict:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    rows = list(session.execute(query).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return {"entries": [{"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "ip": e.ip, "action": e.action,
                         "target": e.target, "detail": e.detail} for e in rows],
            "next_before": rows[-1].id if more and rows else None}
