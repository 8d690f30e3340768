"""The audit log's writer: one row per person's action (who, from where, what, on what, details), from any
entrypoint."""
from __future__ import annotations

import json
from contextvars import ContextVar
from typing import Any

from sqlalchemy.engine import Engine

from models.db import session_scope
from models.tables import AuditEntry

# the address of the web client whose request is being served (set per request by web.limits.ClientAddress), so
# that every row written while serving it names it, whichever module writes the row
client_ip: ContextVar[str] = ContextVar("client_ip", default="")


def record(engine: Engine, actor: str, action: str, target: str = "", **detail: Any) -> None:
    with session_scope(engine) as s:
        s.add(AuditEntry(actor=actor[:64], action=action[:64], target=str(target)[:200], ip=client_ip.get()[:64],
                         detail=json.dumps(detail, default=str, sort_keys=True) if detail else ""))
