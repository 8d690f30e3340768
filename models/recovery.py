"""What a killed upload leaves behind, and how it is finished without a person.

An upload writes its jobs (``validated``) in one transaction and only then publishes them. Killed in
between (SIGKILL, a lost machine, a broker that never answers), the jobs stay ``validated`` and nobody
would ever publish them. After ``stalled_upload_seconds`` without a change they are taken as
abandoned: the signer's intake publishes them (``republish_stalled``, called periodically by the
signer process, which already holds a broker connection), and the next upload removes the staging
folders of documents that were never committed (``documents.remove_stale_partials``).

Publishing twice is harmless (the signer takes only jobs in a sendable state, and the fingerprint is
the idempotency key on chain), but a claim keeps it rare: a republisher first moves the jobs'
``updated_at`` (only where it is still old) and publishes only the jobs its own update changed, so two
republishers, or one and a re-upload, do not both publish the same slice.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, select, update
from sqlalchemy.engine import Engine

from blockproof.settings import Settings
from models.db import session_scope
from models.states import JobState, utcnow
from models.tables import Job
from models.transitions import transition_many

if TYPE_CHECKING:
    from blockproof.publishing import Publisher

SLICE = 5_000
REASON = "published again: the upload that wrote it stopped before publishing it"


def stalled_since(now: datetime, stalled_upload_seconds: float) -> datetime:
    """A ``validated`` job last changed before this moment belongs to an upload that died."""
    return now - timedelta(seconds=stalled_upload_seconds)


def check_interval(stalled_upload_seconds: float) -> float:
    """How often the signer looks for stalled jobs: often enough to act soon after the threshold."""
    return max(0.5, min(60.0, stalled_upload_seconds / 2))


def _claim(engine: Engine, cutoff: datetime, now: datetime, batch_id: int | None) -> list[int]:
    """Up to SLICE stalled jobs, claimed by moving their updated_at: only this caller publishes them."""
    stalled = and_(Job.state == JobState.VALIDATED.value, Job.updated_at < cutoff)
    if batch_id is not None:
        stalled = and_(stalled, Job.batch_id == batch_id)
    with session_scope(engine) as s:
        ids = list(s.execute(select(Job.id).where(stalled).order_by(Job.id).limit(SLICE)).scalars())
        if not ids:
            return []
        return sorted(s.execute(update(Job).where(stalled, Job.id.between(ids[0], ids[-1])).values(updated_at=now)
                                .returning(Job.id).execution_options(synchronize_session=False)).scalars())


def republish_stalled(*, settings: Settings, engine: Engine, publish: Publisher | None = None, now: datetime | None = None,
                      older_than_seconds: float | None = None, batch_id: int | None = None) -> int:
    """Publish every job still ``validated`` whose last change is older than the threshold (default
    ``settings.stalled_upload_seconds``), marking each published slice ``queued``. Returns how many were
    published. A failure to publish leaves the claimed jobs ``validated``; they are tried again one
    threshold later."""
    if publish is None:
        from blockproof.publishing import publish as registered

        publish = registered
    now = now or utcnow()
    threshold = settings.stalled_upload_seconds if older_than_seconds is None else older_than_seconds
    cutoff = stalled_since(now, threshold)
    published = 0
    while claimed := _claim(engine, cutoff, now, batch_id):
        publish(claimed, queue_name=settings.queue_name)
        with session_scope(engine) as s:
            transition_many(s, claimed, JobState.QUEUED, REASON, only_from=[JobState.VALIDATED])
        published += len(claimed)
    return published
