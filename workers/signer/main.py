"""The signer process: ONE process, ONE dramatiq worker thread (intake) and ONE signer thread per key."""
from __future__ import annotations

import logging
import signal
import threading

import dramatiq

from blockproof.settings import SignerSettings, get_signer_settings
from blockproof.errors import RpcError, RpcUnavailable
from models.db import engine_for, migrate
from chain import keys
from workers.signer.lease import Lease, LeaseHeld, LeaseLost
from blockproof.production import refuse_unfit_for_production
from workers.signer.loop import Signer

log = logging.getLogger("blockproof.signer")


def run_signer(settings: SignerSettings | None = None, stop: threading.Event | None = None, *,
               standby: bool = False, drain: bool = False) -> int:
    """Run until stopped; returns the process exit code (3 when the lease was lost to another signer).
    drain: take no new job (no intake, nothing new signed), keep what is in flight moving until it is mined,
    then exit 0; the jobs left ready wait for the next signer (a key rotation's last step for the old key)."""
    settings = settings or get_signer_settings()
    key_backend = keys.load(settings)  # before anything starts: a bad key is one line, not a traceback
    refuse_unfit_for_production(settings)  # ConfigurationError: the CLI says why and exits
    migrate(settings.database_url)
    engine = engine_for(settings.database_url)
    stop = stop or threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, lambda *_: stop.set())
        except ValueError:  # not the main thread (tests)
            pass
    signer = Signer(settings, engine, key_backend=key_backend)
    lease = _take_lease(signer, settings, stop, standby=standby)
    if lease is None:
        return 0
    signer.lease = lease
    lost = threading.Event()
    keeper = threading.Thread(target=_keep_lease, args=(lease, settings, stop, lost), name="signer-lease",
                              daemon=True)
    keeper.start()
    from workers.actors import get_broker  # declares the actor on the broker

    broker = get_broker()
    broker.declare_queue(settings.queue_name)
    signer.on_lease_lost = lambda: (lost.set(), stop.set())
    signer.draining = drain
    signer.on_drained = stop.set
    loop = threading.Thread(target=signer.run, name="signer-loop", daemon=True)
    loop.start()
    worker = None
    if drain:
        log.info("signer %s draining: no new jobs; stopping once nothing is in flight", signer.address)
    else:
        worker = dramatiq.Worker(broker, queues={settings.queue_name}, worker_threads=1, worker_timeout=500)
        worker.start()
        log.info("signer %s consuming queue %r", signer.address, settings.queue_name)
    stop.wait()
    log.info("signer stopping")
    signer.stop()
    if worker is not None:
        worker.stop(timeout=5000)
    loop.join(timeout=10)
    if lost.is_set():
        return 3
    lease.release()
    return 0


def _chain_id(signer: Signer, stop: threading.Event) -> int | None:
    """The chain the lease is for; the node may still be starting."""
    wait = 0.5
    while not stop.is_set():
        try:
            return signer.rpc.chain_id()
        except (RpcUnavailable, RpcError) as exc:
            log.warning("waiting %.1fs for the node: %s", wait, str(exc)[:200])
            stop.wait(wait)
            wait = min(wait * 2, 30.0)
    return None


def _take_lease(signer: Signer, settings: SignerSettings, stop: threading.Event, *, standby: bool) -> Lease | None:
    """Before the first nonce is read. Without --standby a held lease is an error at once; with it, this
    signer waits and takes over when the holder stops or dies."""
    chain_id = _chain_id(signer, stop)
    if chain_id is None:
        return None
    lease = Lease(signer.engine, chain_id=chain_id, address=signer.address, ttl_seconds=settings.signer_lease_seconds)
    told = False
    while True:
        try:
            lease.acquire()
            return lease
        except LeaseHeld as exc:
            if not standby:
                raise
            if not told:
                log.info("standing by: %s", exc)
                told = True
        if stop.wait(1.0):
            return None


def _keep_lease(lease: Lease, settings: SignerSettings, stop: threading.Event, lost: threading.Event) -> None:
    while not stop.wait(settings.signer_lease_seconds / 3):
        try:
            lease.renew()
        except LeaseLost as exc:
            log.error("%s: stopping at once", exc)
            lost.set()
            stop.set()
        except Exception as exc:  # database away: the lease holds until it expires; the next renewal retries
            log.warning("could not renew the signer lease: %s", str(exc)[:200])
