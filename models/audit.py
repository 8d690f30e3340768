"""The audit log's writer: one row per person's action (who, what, on what, details), from any entrypoint."""
from __future__ import annotations

import json

from models.db import session_scope
from models.tables import AuditEntry


def record(engine, actor: str, action: str, target: str = "", **detail) -> None:
    with session_scope(engine) as s:
        s.add(AuditEntry(actor=actor[:64], action=action[:64], target=str(target)[:200],
                         detail=json.dumps(detail, default=str, sort_keys=True) if detail else ""))
