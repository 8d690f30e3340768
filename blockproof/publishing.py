"""The one seam between the stages that write jobs (producers) and the queue the workers consume.

Producers publish through `publish`; an entrypoint (the CLI, the web app, the demo, the signer process, the
tests' harness) registers the real publisher, `workers.actors.publish_jobs`, once at start. So producers never
import workers, and a test may register a publisher of its own."""
from __future__ import annotations

from typing import Protocol

from blockproof.errors import ConfigurationError


class Publisher(Protocol):
    def __call__(self, job_ids: list[int], *, queue_name: str) -> int: ...


_publisher: Publisher | None = None


def register(publisher: Publisher) -> None:
    global _publisher
    _publisher = publisher


def publisher() -> Publisher:
    if _publisher is None:
        raise ConfigurationError("no job publisher registered: an entrypoint registers workers.actors.publish_jobs")
    return _publisher


def publish(job_ids: list[int], *, queue_name: str) -> int:
    return publisher()(job_ids, queue_name=queue_name)

