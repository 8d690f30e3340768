"""Engine, sessions and migrations (applied at start by every component)."""
from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# the most values put in one SQL IN (...) list: SQLite's default cap on bound parameters was 999
IN_LIST_CHUNK = 900


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets the web UI read while the signer and the consumer write
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            # a 100,000-row batch touches a dozen indexes: keep their pages in memory (default is 2 MB)
            cursor.execute("PRAGMA cache_size=-131072")
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    return make_engine(url)


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """Several processes start at once (signer, consumer, web): only one migrates at a time."""
    if url.startswith("sqlite"):
        import fcntl
        import hashlib
        import tempfile

        path = Path(tempfile.gettempdir()) / f"blockproof-migrate-{hashlib.sha1(url.encode()).hexdigest()[:16]}.lock"
        with open(path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    from sqlalchemy import text

    with engine_for(url).connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(724157301)"))
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(724157301)"))
            conn.commit()


def migrate(url: str) -> None:
    """Bring the database schema to the latest migration."""
    with _migration_lock(url):
        _upgrade(url)


def _upgrade(url: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["engine"] = engine_for(url)
    command.upgrade(cfg, "head")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
