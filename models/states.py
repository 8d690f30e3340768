"""The job state machine: the only place a job's state changes.

validated → queued → ready → submitted → mined → confirmed, plus retrying, failed, dead, and cancelled
(an operator cancelled a job that was not sent).
`ready` means the signer has taken delivery of the job's message (committed before the ack)
and pre-flight simulation passed; only the signer loop moves a job past it.
"""
from __future__ import annotations

import enum
from datetime import datetime, timezone


class JobState(str, enum.Enum):
    VALIDATED = "validated"
    QUEUED = "queued"
    READY = "ready"
    SUBMITTED = "submitted"
    MINED = "mined"
    CONFIRMED = "confirmed"
    RETRYING = "retrying"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


S = JobState
ALLOWED: dict[JobState, frozenset[JobState]] = {
    S.VALIDATED: frozenset({S.QUEUED, S.READY, S.RETRYING, S.FAILED, S.DEAD, S.CANCELLED}),
    S.QUEUED: frozenset({S.READY, S.RETRYING, S.FAILED, S.DEAD, S.CONFIRMED, S.CANCELLED}),
    S.READY: frozenset({S.SUBMITTED, S.RETRYING, S.FAILED, S.DEAD, S.CONFIRMED, S.QUEUED, S.CANCELLED}),
    # back to READY: the transaction was dropped or its nonce was taken by someone else
    S.SUBMITTED: frozenset({S.MINED, S.CONFIRMED, S.READY, S.RETRYING, S.FAILED}),
    S.MINED: frozenset({S.CONFIRMED, S.SUBMITTED, S.READY, S.FAILED}),
    # a reorg removed the event (SUBMITTED) or its transaction entirely (READY is never used here)
    S.CONFIRMED: frozenset({S.MINED, S.SUBMITTED}),
    S.RETRYING: frozenset({S.QUEUED, S.READY, S.FAILED, S.DEAD, S.CONFIRMED, S.CANCELLED}),
    S.FAILED: frozenset({S.QUEUED, S.CONFIRMED, S.CANCELLED}),
    S.DEAD: frozenset({S.QUEUED, S.CONFIRMED, S.CANCELLED}),
    # final by an operator's decision; only the chain can still say otherwise (its event was found)
    S.CANCELLED: frozenset({S.CONFIRMED}),
}

TERMINAL = frozenset({S.CONFIRMED, S.FAILED, S.DEAD, S.CANCELLED})
# jobs no transaction has carried yet: what cancelling a batch stops
UNSENT = frozenset({S.VALIDATED, S.QUEUED, S.READY, S.RETRYING, S.FAILED, S.DEAD})
IN_PROGRESS = frozenset({S.VALIDATED, S.QUEUED, S.READY, S.SUBMITTED, S.MINED, S.RETRYING})
RETRYABLE_BY_PERSON = frozenset({S.FAILED, S.DEAD})


class IllegalTransition(Exception):
    """A state change the table does not allow."""


def check_transition(current: JobState, target: JobState) -> None:
    if target not in ALLOWED[JobState(current)]:
        raise IllegalTransition(f"a job cannot go from {JobState(current).value} to {target.value}")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
