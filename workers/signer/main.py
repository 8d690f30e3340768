"""The signer process: ONE process, ONE dramatiq worker thread (intake) and ONE signer thread per key."""
from __future__ import annotations

import logging
import signal
import threading

import dramatiq

from blockproof.settings import Settings, get_settings
from models.db import engine_for, migrate
from producers.salt import refuse_unfit_for_production
from workers.signer.loop import Signer

log = logging.getLogger("blockproof.signer")


def run_signer(settings: Settings | None = None, stop: threading.Event | None = None) -> None:
    settings = settings or get_settings()
    refuse_unfit_for_production(settings)  # ConfigurationError: the CLI says why and exits 1
    migrate(settings.database_url)
    engine = engine_for(settings.database_url)
    from workers.actors import get_broker  # declares the actor on the broker

    broker = get_broker()
    broker.declare_queue(settings.queue_name)
    signer = Signer(settings, engine)
    loop = threading.Thread(target=signer.run, name="signer-loop", daemon=True)
    loop.start()
    worker = dramatiq.Worker(broker, queues={settings.queue_name}, worker_threads=1, worker_timeout=500)
    worker.start()
    log.info("signer %s consuming queue %r", signer.address, settings.queue_name)
    stop = stop or threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, lambda *_: stop.set())
        except ValueError:  # not the main thread (tests)
            pass
    stop.wait()
    log.info("signer stopping")
    worker.stop(timeout=5000)
    signer.stop()
    loop.join(timeout=10)
