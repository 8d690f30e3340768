"""Cross-cutting dramatiq behaviour: when a message's retries are exhausted its jobs become dead; the signer's
intake publishes the jobs a stopped upload wrote but never published."""
from __future__ import annotations

import logging
import threading

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


class RepublishStalled(Middleware):
    """Runs only where a dramatiq worker boots (the signer process, its intake side): a thread that publishes the
    jobs a stopped upload left ``validated`` (models.recovery). Uploads, which only publish, never start it."""

    def __init__(self):
        self._stop = threading.Event()

    def after_worker_boot(self, broker, worker):
        from workers.intake import republish_stalled_periodically

        self._stop.clear()
        threading.Thread(target=republish_stalled_periodically, args=(self._stop,), name="republish-stalled",
                         daemon=True).start()

    def before_worker_shutdown(self, broker, worker):
        self._stop.set()
