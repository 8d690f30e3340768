"""Cross-cutting dramatiq behaviour: when a message's retries are exhausted its jobs become dead."""
from __future__ import annotations

import logging

from dramatiq.middleware import Middleware

log = logging.getLogger("blockproof.worker")


class MarkJobsDead(Middleware):
    def after_process_message(self, broker, message, *, result=None, exception=None):
        if exception is None or not message.failed:
            return
        from workers.intake import mark_dead

        job_ids = message.args[0] if message.args else []
        reason = f"{exception.__class__.__name__}: {exception}"
        log.error("message %s failed for good; %d job(s) dead: %s", message.message_id, len(job_ids), reason)
        try:
            mark_dead(job_ids, reason)
        except Exception:  # the message is in the dead-letter queue either way; `requeue` recovers the jobs
            log.exception("could not mark %d job(s) dead (message %s is in the dead-letter queue)",
                          len(job_ids), message.message_id)
