"""The audit log: one row per operator action (who, what, on what, details)."""
from __future__ import annotations

import json

from sqlalchemy import select
from sqlmodel import Session

from models.db import session_scope
from models.tables import AuditEntry


def record(engine, actor: str, action: str, target: str = "", **detail) -> None:
    with session_scope(engine) as s:
        s.add(AuditEntry(actor=actor[:64], action=action[:64], target=str(target)[:200],
                         detail=json.dumps(detail, default=str, sort_keys=True) if detail else ""))


def entries(session: Session, *, before: int | None = None, limit: int = 50) -> dict:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    rows = list(session.execute(query).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return {"entries": [{"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action, "target": e.target,
                         "detail": e.detail} for e in rows],
            "next_before": rows[-1].id if more and rows else None}
