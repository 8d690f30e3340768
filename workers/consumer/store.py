"""Writing events idempotently: unique on (transaction hash, log index)."""
from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

CHUNK = 5000


def _insert(session: Session):
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def insert_ignoring_duplicates(session: Session, table, rows: list[dict], keys: list[str]) -> None:
    """Insert rows; a row whose keys already exist is left as it is (ingesting twice changes nothing)."""
    if not rows:
        return
    stmt = _insert(session)(table.__table__).on_conflict_do_nothing(index_elements=keys)
    for start in range(0, len(rows), CHUNK):
        session.execute(stmt, rows[start : start + CHUNK])  # executemany


def upsert(session: Session, table, rows: list[dict], keys: list[str]) -> None:
    """Insert rows, replacing the non-key columns of rows whose keys exist."""
    if not rows:
        return
    insert = _insert(session)(table.__table__)
    columns = [c for c in rows[0] if c not in keys]
    stmt = insert.on_conflict_do_update(index_elements=keys, set_={c: insert.excluded[c] for c in columns})
    for start in range(0, len(rows), CHUNK):
        session.execute(stmt, rows[start : start + CHUNK])
