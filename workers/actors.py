"""Queue actors: thin adapters from messages to plain functions."""
from __future__ import annotations

import dramatiq
from dramatiq import Message

from workers import intake
from workers.broker import get_broker

ACCEPT_JOBS = "accept_jobs"


@dramatiq.actor(actor_name=ACCEPT_JOBS, queue_name="issue", broker=get_broker(), retry_when=intake.should_retry)
def accept_jobs(job_ids: list[int]) -> None:
    intake.accept(job_ids)


def publish_jobs(job_ids: list[int], *, queue_name: str, chunk: int = 250) -> int:
    """Publish job ids in messages of `chunk`, each confirmed by the broker. Returns messages sent."""
    broker = get_broker()
    sent = 0
    for start in range(0, len(job_ids), chunk):
        broker.enqueue(Message(queue_name=queue_name, actor_name=ACCEPT_JOBS,
                               args=(list(job_ids[start : start + chunk]),), kwargs={}, options={}))
        sent += 1
    return sent
