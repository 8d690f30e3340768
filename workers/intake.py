"""The signer's intake: take delivery of queued jobs, pre-flight each one, mark it ready.

Runs in the dramatiq worker thread; the database write commits before the message is acked.
"""
from __future__ import annotations

import logging
import threading
from functools import lru_cache

from eth_account import Account
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from blockproof.errors import RpcError, RpcUnavailable, TemporaryFailure
from chain.rpc import Rpc
from blockproof.settings import get_settings, get_signer_settings
from models.db import engine_for, session_scope
from models.states import JobKind, JobState
from models.tables import Batch, Job
from models.transitions import transition_many
from models.recovery import check_interval, republish_stalled
from workers.signer import already_issued, packer
from chain.preflight import ALREADY_ISSUED, Group, Revert, has_batch_extension, refused_rows

log = logging.getLogger("blockproof.intake")
PREFLIGHT_BATCH = 50
SENDABLE = [JobState.VALIDATED, JobState.QUEUED, JobState.RETRYING]


@lru_cache
def _context():
    settings = get_signer_settings()  # intake runs inside the signer process
    key = settings.signer_key.get_secret_value() if settings.signer_key else None
    sender = Account.from_key(key).address if key else None
    return settings, engine_for(settings.database_url), Rpc.for_settings(settings), sender


_probed: dict[str, bool] = {}


def _batch_extension(rpc: Rpc, vault: str) -> bool:
    if vault not in _probed:
        _probed[vault] = has_batch_extension(rpc, vault)
    return _probed[vault]


def preflight(rpc: Rpc, sender: str, vault: str, jobs: list[Job], base_uris: dict[int, str], *,
              batch_extension: bool) -> dict[int, Revert]:
    """Jobs the contract would refuse for the row's own sake, by id, with the decoded reason (see
    chain.preflight.refused_rows). With our batch call, a batch's and institution's issue jobs are simulated
    together, PREFLIGHT_BATCH rows a call; everything else row by row."""
    singles: list[Group[Job]] = []
    batches: dict[tuple, list[Job]] = {}
    for job in jobs:
        if batch_extension and job.kind == JobKind.ISSUE.value:
            batches.setdefault((job.batch_id, job.institution), []).append(job)
        else:
            singles.append(Group([job]))
    # each simulated call stays far below the node's call gas cap
    chunks = [rows[i : i + PREFLIGHT_BATCH] for rows in batches.values() for i in range(0, len(rows), PREFLIGHT_BATCH)]
    groups = singles + [Group(chunk, packer.build_call(chunk, base_uris[chunk[0].batch_id], batch_extension=True).data)
                        for chunk in chunks]
    refused = refused_rows(rpc, sender, vault, groups,
                           alone=lambda j: packer.build_call([j], base_uris[j.batch_id], batch_extension=False).data)
    return {job.id: revert for job, revert in refused}


def should_retry(retries: int, exc: Exception) -> bool:
    """Only temporary failures are retried automatically, and only a bounded number of times."""
    settings = get_settings()
    temporary = isinstance(exc, (TemporaryFailure, RpcUnavailable, OperationalError))
    return temporary and retries < settings.max_retries


def accept(job_ids: list[int]) -> None:
    settings, engine, rpc, sender = _context()
    try:
        with session_scope(engine) as s:
            jobs = list(s.execute(select(Job).where(Job.id.in_(job_ids), Job.state.in_([x.value for x in SENDABLE])))
                        .scalars().all())
            if not jobs:
                return  # a redelivery: these jobs were taken already
            base_uris = {b.id: b.base_uri for b in s.execute(
                select(Batch).where(Batch.id.in_({j.batch_id for j in jobs}))).scalars()}
            bad = preflight(rpc, sender or settings.vault_address, settings.vault_address, jobs, base_uris,
                            batch_extension=_batch_extension(rpc, settings.vault_address))
            on_chain = [j for j in jobs if j.id in bad and bad[j.id].code == ALREADY_ISSUED.code]
            already_issued.wait_for_event(s, on_chain, max_checks=settings.max_retries)
            for job_id, revert in bad.items():
                if revert.code != ALREADY_ISSUED.code:
                    transition_many(s, [job_id], JobState.FAILED, f"pre-flight: {revert.code}", error_code=revert.code,
                                    error_message=revert.message, retryable=revert.retryable)
            good = [j.id for j in jobs if j.id not in bad]
            transition_many(s, good, JobState.READY, "accepted by the signer", only_from=SENDABLE,
                            error_code="", error_message="")
    except (RpcUnavailable, RpcError) as exc:
        _mark_retrying(engine, job_ids, f"Could not pre-flight: {exc}")
        raise TemporaryFailure(str(exc)) from exc


def _mark_retrying(engine, job_ids: list[int], reason: str) -> None:
    try:
        with session_scope(engine) as s:
            rows = s.execute(select(Job).where(Job.id.in_(job_ids))).scalars().all()
            moved = set(transition_many(s, job_ids, JobState.RETRYING, reason,
                                        only_from=[JobState.VALIDATED, JobState.QUEUED], error_code="Temporary",
                                        error_message=reason, retryable=True).moved)
            for job in rows:
                if job.id in moved or job.state == JobState.RETRYING.value:
                    job.retries += 1
                    s.add(job)
    except OperationalError:
        log.warning("could not record the retry of %d jobs: database unavailable", len(job_ids))


def mark_dead(job_ids: list[int], reason: str) -> None:
    _, engine, _, _ = _context()
    with session_scope(engine) as s:
        transition_many(s, job_ids, JobState.DEAD, f"retries exhausted: {reason}",
                        only_from=SENDABLE,
                        error_code="RetriesExhausted", retryable=True,
                        error_message=f"Gave up after repeated temporary failures ({reason}). Retry it when the cause is fixed.")


def republish_stalled_periodically(stop: threading.Event) -> None:
    """Publish the jobs of stopped uploads (models.recovery) now and then until ``stop``. Here, in the signer
    process: it already holds the broker connection, and its intake is where a published job is taken, only
    from a sendable state, so a job published twice is taken once."""
    settings, engine, _, _ = _context()
    every = check_interval(settings.stalled_upload_seconds)
    while True:
        try:
            from workers.actors import publish_jobs

            published = republish_stalled(settings=settings, engine=engine, publish=publish_jobs)
            if published:
                log.warning("published %d job(s) that a stopped upload had written but not published", published)
        except Exception as exc:  # broker or database away: the next round tries again
            log.warning("could not publish the jobs of stopped uploads (next try in %.0fs): %s", every, str(exc)[:200])
        if stop.wait(every):
            return
