"""An operator's control of a batch: pause, resume, cancel; the same for the CLI, the HTTP API and the UI."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from blockproof.errors import NotFound
from models import audit
from models.db import session_scope
from models.ids import is_row_id
from models.states import UNSENT, JobState
from models.tables import Batch, Job
from models.transitions import transition_where


def set_paused(batch_id: int, paused: bool, *, engine, actor: str) -> dict:
    """A paused batch's ready jobs are not picked by the signer; what is in flight goes on."""
    with session_scope(engine) as s:
        batch = s.get(Batch, batch_id) if is_row_id(batch_id) else None
        if batch is None:
            raise NotFound(f"batch {batch_id} does not exist")
        batch.paused = paused
        s.add(batch)
    audit.record(engine, actor, "batch.pause" if paused else "batch.resume", f"batch {batch_id}")
    return {"batch_id": batch_id, "paused": paused}


@dataclass
class Cancelled:
    batch_id: int
    cancelled: int  # jobs that will never be sent
    already_sent: int  # jobs a transaction carries already: they finish on chain


def cancel(batch_id: int, *, engine, actor: str) -> Cancelled:
    """Every job of the batch that no transaction carries ends `cancelled`. The signer claims a job only
    while it is ready (a guarded update), so a job is either cancelled or sent, never both."""
    with session_scope(engine) as s:
        if not is_row_id(batch_id) or s.get(Batch, batch_id) is None:
            raise NotFound(f"batch {batch_id} does not exist")
        moved = transition_where(s, Job.batch_id == batch_id, JobState.CANCELLED, f"cancelled by {actor}",
                                 only_from=UNSENT)
        in_flight = s.execute(select(func.count()).select_from(Job).where(
            Job.batch_id == batch_id, Job.state.in_([JobState.SUBMITTED.value, JobState.MINED.value]))).scalar_one()
    audit.record(engine, actor, "batch.cancel", f"batch {batch_id}", cancelled=moved, already_sent=in_flight)
    return Cancelled(batch_id, moved, in_flight)
