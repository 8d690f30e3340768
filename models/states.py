"""The job state machine: the only place a job's state changes.

validated → queued → ready → submitted → mined → confirmed, plus retrying, failed, dead, and cancelled
(an operator cancelled a job that was not sent).
`ready` means the signer has taken delivery of the job's message (committed before the ack)
and pre-flight simulation passed; only the signer loop moves a job past it.
"""
from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any


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


class JobKind(str, enum.Enum):
    ISSUE = "issue"
    REVOKE = "revoke"


class TxStatus(str, enum.Enum):
    """A transaction (one nonce of one key)."""

    PENDING = "pending"  # signed and sent (or to be re-sent), no receipt yet
    MINED = "mined"
    REVERTED = "reverted"  # mined with status 0: its jobs were sent back
    SUPERSEDED = "superseded"  # its nonce was used by a transaction we did not sign


T = TxStatus
TX_ALLOWED: dict[TxStatus, frozenset[TxStatus]] = {
    T.PENDING: frozenset({T.MINED, T.REVERTED, T.SUPERSEDED}),
    T.MINED: frozenset({T.PENDING}),  # a reorg removed its block
    T.REVERTED: frozenset(),
    T.SUPERSEDED: frozenset(),
}


class AttemptStatus(str, enum.Enum):
    """One signed version of a transaction (a fee bump is another attempt of the same nonce)."""

    SIGNED = "signed"  # written ahead, not yet (knowingly) received by a node
    BROADCAST = "broadcast"
    MINED = "mined"
    REPLACED = "replaced"  # another attempt of its nonce was mined


A = AttemptStatus
ATTEMPT_ALLOWED: dict[AttemptStatus, frozenset[AttemptStatus]] = {
    A.SIGNED: frozenset({A.BROADCAST, A.MINED, A.REPLACED}),
    A.BROADCAST: frozenset({A.MINED, A.REPLACED}),
    A.MINED: frozenset({A.REPLACED, A.BROADCAST}),  # another attempt mined after a reorg; its block was removed
    A.REPLACED: frozenset({A.MINED, A.BROADCAST}),
}


def check_move(table: dict[Any, frozenset[Any]], current: str, target: TxStatus | AttemptStatus) -> None:
    """Staying is always allowed; any other move must be in the table."""
    kind = type(target)
    if kind(current) != target and target not in table[kind(current)]:
        raise IllegalTransition(f"a {kind.__name__} cannot go from {kind(current).value} to {target.value}")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
