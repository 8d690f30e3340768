"""Writing events idempotently: unique on (transaction hash, log index)."""
from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session


def insert_ignoring_duplicates(session: Session, table, rows: list[dict], keys: list[str]) -> None:
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for start in range(0, len(rows), 500):
        stmt = insert(table.__table__).values(rows[start : start + 500])
        session.execute(stmt.on_conflict_do_nothing(index_elements=keys))
