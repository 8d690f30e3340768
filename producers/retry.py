"""A person's retry: check the chain first, then queue again. Pressing it twice changes nothing."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from chain.rpc import Rpc
from blockproof.settings import Settings
from models.db import session_scope
from models.states import JobKind, RETRYABLE_BY_PERSON, JobState
from models.tables import ConsumerCheckpoint, CredentialEvent, Job
from models.transitions import confirm_attached, transition_many
from producers.upload import _used_on_chain


@dataclass
class RetryResult:
    requeued: list[int] = field(default_factory=list)
    already_on_chain: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # not failed or dead


def retryable_ids(session, *, batch_id: int) -> list[int]:
    return list(session.execute(select(Job.id).where(
        Job.batch_id == batch_id, Job.state.in_([s.value for s in RETRYABLE_BY_PERSON]))).scalars())


def _attach_known_events(session, jobs: list[Job]) -> None:
    """Jobs already on chain are not re-sent: give them the event the consumer stored, if any, so they are
    confirmed at depth (the consumer attaches events it ingests later by itself)."""
    if not jobs:
        return
    events = {e.fingerprint: e for e in session.execute(select(CredentialEvent).where(
        CredentialEvent.fingerprint.in_([j.fingerprint for j in jobs]))).scalars()}
    for job in jobs:
        event = events.get(job.fingerprint)
        if event is not None:
            job.credential_id, job.tx_hash, job.block_number = event.credential_id, event.tx_hash, event.block_number
            session.add(job)
    session.flush()
    checkpoint = session.execute(select(ConsumerCheckpoint)).scalars().first()
    if checkpoint is not None:
        confirm_attached(session, jobs, deepest=checkpoint.confirmed_through)


def retry_jobs(job_ids: list[int], *, settings: Settings, engine, actor: str = "cli", publish=None) -> RetryResult:
    result = RetryResult()
    with session_scope(engine) as s:
        jobs = list(s.execute(select(Job).where(Job.id.in_(job_ids))).scalars())
        candidates = [j for j in jobs if j.state in {x.value for x in RETRYABLE_BY_PERSON}]
        result.skipped = [j.id for j in jobs if j not in candidates]
        issue_fps = [j.fingerprint for j in candidates if j.kind == JobKind.ISSUE.value]
        used = _used_on_chain(Rpc.for_settings(settings), settings.vault_address, issue_fps) \
            if issue_fps else set()
        on_chain = [j for j in candidates if j.kind == JobKind.ISSUE.value and j.fingerprint in used]
        result.already_on_chain = [j.id for j in on_chain]
        _attach_known_events(s, on_chain)
        on_chain = result.already_on_chain
        to_queue = [j.id for j in candidates if j.id not in set(on_chain)]
        result.requeued = list(transition_many(
            s, to_queue, JobState.QUEUED, f"retried by {actor}", only_from=RETRYABLE_BY_PERSON,
            error_code="", error_message="", retries=0, transaction_id=None, next_attempt_at=None).moved)
    if result.requeued:
        if publish is None:
            from blockproof.publishing import publish
        publish(result.requeued, queue_name=settings.queue_name)
    return result
