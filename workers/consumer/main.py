"""The event consumer process."""
from __future__ import annotations

import logging
import signal
import threading

from chain.rpc import refuse_wrong_chain
from blockproof.settings import Settings, get_settings
from models.db import engine_for, migrate
from workers.consumer.follower import Follower

log = logging.getLogger("blockproof.consumer")


def run_consumer(settings: Settings | None = None, stop: threading.Event | None = None) -> None:
    settings = settings or get_settings()
    migrate(settings.database_url)
    follower = Follower(settings, engine_for(settings.database_url))
    refuse_wrong_chain(follower.rpc)
    stop = stop or threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, lambda *_: (stop.set(), follower.stop()))
        except ValueError:
            pass
    thread = threading.Thread(target=follower.run, name="consumer", daemon=True)
    thread.start()
    log.info("consumer following %s from %s", settings.vault_address, settings.rpc_url)
    stop.wait()
    follower.stop()
    thread.join(timeout=10)
