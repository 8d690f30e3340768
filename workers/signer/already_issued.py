"""A row the contract reports as already on chain (its fingerprint is used) is issued, not failed: it
waits for the event that the consumer will confirm it from. Only if no event explains it after a few
checks does it become `failed`, with the reason in plain words."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session

from models.states import JobState, utcnow
from models.tables import Job
from models.transitions import transition_many
from chain.preflight import ALREADY_ISSUED

WAITING = ("Already on chain (its fingerprint was used before): not sent again; waiting for the chain's "
           "event to confirm it.")
WAIT_MAX_SECONDS = 30


def wait_for_event(session: Session, jobs: list[Job], *, max_checks: int) -> None:
    now = utcnow()
    give_up = [j.id for j in jobs if j.retries >= max_checks]
    transition_many(session, give_up, JobState.FAILED, f"pre-flight: {ALREADY_ISSUED.code}; no event came",
                    error_code=ALREADY_ISSUED.code, error_message=ALREADY_ISSUED.message, retryable=False)
    for job in jobs:
        if job.id in give_up:
            continue
        later = now + timedelta(seconds=min(2 ** job.retries, WAIT_MAX_SECONDS))
        fields = dict(error_code=ALREADY_ISSUED.code, error_message=WAITING, retries=job.retries + 1,
                      next_attempt_at=later, transaction_id=None)
        if job.state == JobState.READY.value:  # the signer's own pick: park it, its state stays
            session.execute(update(Job).where(Job.id == job.id).values(**fields))
        else:
            transition_many(session, [job.id], JobState.READY, f"pre-flight: {ALREADY_ISSUED.code}; waiting for "
                            "its event", **fields)
