"""Choosing the next ready jobs and turning them into one contract call."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from chain import vault
from models.states import JobKind, JobState, utcnow
from models.tables import Batch, Job


@dataclass
class Call:
    kind: str  # issue_batch | issue_single | revoke_batch | revoke_single
    jobs: list[Job]
    data: str


def next_ready_jobs(session: Session, limit: int, exclude: set[int] = frozenset(),
                    skip_institutions: set[str] = frozenset(), skip_batches: set[int] = frozenset()) -> list[Job]:
    """Oldest ready jobs of one (kind, institution, batch), skipping paused batches, batches on hold (their fee
    budget is spent) and institutions whose issuance is on hold."""
    first = session.execute(
        select(Job)
        .join(Batch, Batch.id == Job.batch_id)
        .where(Job.state == JobState.READY.value, Batch.paused == False)  # noqa: E712
        .where((Job.next_attempt_at == None) | (Job.next_attempt_at <= utcnow()))  # noqa: E711
        .where(Job.id.not_in(exclude) if exclude else True)
        .where(Job.institution.not_in(skip_institutions) if skip_institutions else True)
        .where(Job.batch_id.not_in(skip_batches) if skip_batches else True)
        .order_by(Job.id)
        .limit(1)
    ).scalars().first()
    if first is None:
        return []
    query = (
        select(Job)
        .where(Job.state == JobState.READY.value, Job.batch_id == first.batch_id, Job.kind == first.kind)
        .where((Job.next_attempt_at == None) | (Job.next_attempt_at <= utcnow()))  # noqa: E711
        .order_by(Job.id)
        .limit(limit)
    )
    if exclude:
        query = query.where(Job.id.not_in(exclude))
    return list(session.execute(query).scalars().all())


def any_ready(session: Session) -> bool:
    return session.execute(
        select(Job.id).join(Batch, Batch.id == Job.batch_id)
        .where(Job.state == JobState.READY.value, Batch.paused == False)  # noqa: E712
        .where((Job.next_attempt_at == None) | (Job.next_attempt_at <= utcnow())).limit(1)  # noqa: E711
    ).first() is not None


def count_ready(session: Session) -> int:
    """Ready jobs the signer could send now (not in a paused batch, not waiting for a retry time)."""
    from sqlalchemy import func

    return session.execute(
        select(func.count()).select_from(Job).join(Batch, Batch.id == Job.batch_id)
        .where(Job.state == JobState.READY.value, Batch.paused == False)  # noqa: E712
        .where((Job.next_attempt_at == None) | (Job.next_attempt_at <= utcnow()))  # noqa: E711
    ).scalar_one()


def _item(job: Job) -> vault.IssueItem:
    return vault.IssueItem(
        student_wallet=job.student_wallet,
        fingerprint=bytes.fromhex(job.fingerprint[2:]),
        metadata_uri=job.metadata_suffix,
        payload_uri="",
        expires_at=job.expires_at,
    )


def _issue_batch_data(institution: str, base_uri: str, items: list[vault.IssueItem], packed: bool) -> str:
    """The cheapest batch call the contract offers: packed rows, or the ABI batch when it has no packed call
    or a URI is too long to pack (both answer and emit the same)."""
    if packed:
        try:
            return vault.issue_batch_packed(institution, base_uri, items)
        except ValueError:
            pass
    return vault.issue_batch(institution, base_uri, items)


def build_call(jobs: list[Job], base_uri: str, *, batch_extension: bool, packed: bool = False) -> Call:
    head = jobs[0]
    if head.kind == JobKind.REVOKE.value:
        reasons = [vault.reason_hash(j.revocation_reason) for j in jobs]
        if batch_extension:
            return Call("revoke_batch", jobs, vault.revoke_batch([j.credential_id for j in jobs], reasons))
        return Call("revoke_single", jobs, vault.revoke_single(head.credential_id, reasons[0]))
    if batch_extension:
        return Call("issue_batch", jobs,
                    _issue_batch_data(head.institution, base_uri, [_item(j) for j in jobs], packed))
    return Call("issue_single", jobs, vault.issue_single(head.institution, base_uri, _item(head)))


def single_calls(jobs: list[Job], base_uri: str) -> list[Call]:
    return [build_call([j], base_uri, batch_extension=False) for j in jobs]
