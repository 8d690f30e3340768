"""A real pipeline for tests: Anvil, the contract, a fresh database, a private RabbitMQ queue, and the
signer and consumer as separate processes (or threads), exactly as an operator runs them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select, text
from sqlmodel import Session

from chain import vault
from blockproof.devchain import DevChain, deploy_dev_environment
from chain.rpc import Rpc
from blockproof.settings import PROJECT_ROOT, Settings
from models.db import engine_for, migrate
from models.states import TERMINAL
from models.tables import CredentialEvent, Job
from blockproof import publishing
from workers.actors import publish_jobs
from workers.broker import broker_problem
from workers.broker import delete_queue as broker_delete_queue

publishing.register(publish_jobs)  # as every entrypoint does: tests and benches call producers directly
BROKER_URL = os.environ.get("BLOCKPROOF_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
POSTGRES_ADMIN_URL = os.environ.get("BLOCKPROOF_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def rabbitmq_up() -> bool:
    return broker_problem(BROKER_URL) is None


def postgres_up() -> bool:
    from sqlalchemy import create_engine

    try:
        with create_engine(POSTGRES_ADMIN_URL).connect() as c:
            c.execute(text("select 1"))
        return True
    except Exception:
        return False


def fresh_database(kind: str, tmp_path: Path) -> tuple[str, callable]:
    """A new empty database URL and a function that drops it."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'blockproof.db'}", lambda: None
    from sqlalchemy import create_engine

    name = f"bp_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    def drop():
        engine_for(url).dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def delete_queue(name: str) -> None:
    broker_delete_queue(BROKER_URL, name)


@dataclass
class Pipeline:
    chain: DevChain
    database_url: str
    workdir: Path
    artifact_name: str = "BlockProofCredentialVault"
    queue: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:10]}")
    extra_env: dict = field(default_factory=dict)
    procs: dict = field(default_factory=dict)

    def __post_init__(self):
        self.deploy_block = self.chain.w3.eth.block_number
        self.env = deploy_dev_environment(self.chain, artifact_name=self.artifact_name)
        migrate(self.database_url)
        self.engine = engine_for(self.database_url)
        self.rpc = Rpc(self.chain.rpc_url)

    # ---- settings -----------------------------------------------------------------------
    def env_vars(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url, "BLOCKPROOF_RPC_URL": self.chain.rpc_url,
            "BLOCKPROOF_VAULT_ADDRESS": self.env.vault_address, "BLOCKPROOF_VAULT_DEPLOY_BLOCK": str(self.deploy_block),
            "BLOCKPROOF_SIGNER_KEY": self.env.signer_key, "BLOCKPROOF_SIGNER_ADDRESS": self.env.signer_address,
            "BLOCKPROOF_QUEUE_NAME": self.queue,
            "BLOCKPROOF_BROKER_URL": BROKER_URL, "BLOCKPROOF_DOCUMENT_DIR": str(self.workdir / "documents"),
            "BLOCKPROOF_CONFIRMATIONS": "2", "BLOCKPROOF_CONSUMER_POLL_SECONDS": "0.2",
            **{k: str(v) for k, v in self.extra_env.items()},
        }

    def settings(self, **overrides) -> Settings:
        values = {k.removeprefix("BLOCKPROOF_").lower(): v for k, v in self.env_vars().items()}
        values["database_url"] = values.pop("database_url")
        values.update(overrides)
        return Settings(**values)

    # ---- processes ----------------------------------------------------------------------
    def start(self, role: str, *, command: list[str] | None = None) -> subprocess.Popen:
        """Start `blockproof signer` or `blockproof consumer` as its own process (or `command`, e.g. the same
        component with a fault around it: tests/crashing.py)."""
        log = open(self.workdir / f"{role}.log", "a")
        env = os.environ | self.env_vars()
        if role != "signer":  # only the signer holds the key
            env.pop("BLOCKPROOF_SIGNER_KEY")
        proc = subprocess.Popen(command or [sys.executable, "-m", "blockproof.cli", role], env=env,
                                stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
        self.procs[role] = proc
        return proc

    def kill(self, role: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(role, None)
        if proc and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(timeout=20)

    def stop_all(self) -> None:
        for role in list(self.procs):
            self.kill(role, signal.SIGTERM)
        delete_queue(self.queue)

    def log(self, role: str) -> str:
        path = self.workdir / f"{role}.log"
        return path.read_text() if path.exists() else ""

    # ---- actions ------------------------------------------------------------------------
    def upload(self, csv_path, **kwargs):
        from producers.upload import commit, plan

        settings = self.settings()
        report, rows = plan(csv_path, filename=Path(csv_path).name, institution=kwargs.pop("institution", None),
                            settings=settings, engine=self.engine)
        return commit(report, rows, settings=settings, engine=self.engine, **kwargs)

    # ---- observations -------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with Session(self.engine) as s:
            return dict(s.execute(select(Job.state, func.count()).group_by(Job.state)).all())

    def wait_until_settled(self, expected: int, timeout: float = 120, terminal=TERMINAL) -> dict[str, int]:
        """Wait until `expected` jobs are in a terminal state; fail with the counts and logs if not."""
        deadline = time.monotonic() + timeout
        counts = {}
        while time.monotonic() < deadline:
            counts = self.counts()
            if sum(n for s, n in counts.items() if s in {t.value for t in terminal}) >= expected:
                return counts
            for role, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{role} exited ({proc.returncode}):\n{self.log(role)[-3000:]}")
            time.sleep(0.3)
        raise AssertionError(f"not settled after {timeout}s: {counts}\nsigner log:\n{self.log('signer')[-3000:]}"
                             f"\nconsumer log:\n{self.log('consumer')[-2000:]}")

    def issued_events(self) -> list[dict]:
        """A fresh full eth_getLogs scan of the canonical chain: the truth to compare with."""
        logs = self.rpc.call("eth_getLogs", {"address": self.env.vault_address, "fromBlock": hex(self.deploy_block),
                                             "toBlock": "latest", "topics": [vault.ISSUED_TOPIC]})
        return [vault.decode_issued(entry) | {"tx_hash": entry["transactionHash"]} for entry in logs]

    def assert_exactly_once(self, expected: int) -> list[dict]:
        events = self.issued_events()
        fingerprints = [e["fingerprint"] for e in events]
        assert len(events) == expected, f"{len(events)} CredentialIssued events, expected {expected}"
        assert len(set(fingerprints)) == expected, "a fingerprint was issued twice"
        with Session(self.engine) as s:
            jobs = {j.fingerprint: j for j in s.execute(select(Job).where(Job.kind == "issue")).scalars()}
        for e in events:
            job = jobs.get(e["fingerprint"])
            assert job is not None, f"event for unknown fingerprint {e['fingerprint']}"
            assert job.state == "confirmed", f"job {job.id} is {job.state}"
            assert job.credential_id == e["credential_id"] and job.tx_hash == e["tx_hash"]
        return events

    def assert_no_nonce_gap(self) -> None:
        from models.tables import ChainTransaction

        chain_nonce = self.rpc.nonce(self.env.signer_address, "latest")
        with Session(self.engine) as s:
            nonces = sorted(s.execute(select(ChainTransaction.nonce).where(
                ChainTransaction.signer == self.env.signer_address, ChainTransaction.status == "mined")).scalars())
        assert nonces == sorted(set(nonces)), "two mined transactions share a nonce"
        assert not nonces or nonces[-1] < chain_nonce
        pending = self.rpc.call("eth_getTransactionCount", self.env.signer_address, "pending")
        assert int(pending, 16) == chain_nonce, "transactions are stuck behind a nonce gap"


@contextmanager
def running_pipeline(tmp_path_factory, name: str, **pipeline_options):
    """One pipeline for a test module (Anvil with 1-s blocks, SQLite, signer and consumer processes); skips when
    RabbitMQ or Anvil is missing, and stops everything after."""
    from blockproof.devchain import anvil_available
    from tests.conftest import require

    require(rabbitmq_up(), "RabbitMQ at 127.0.0.1:5672")
    require(anvil_available(), "Anvil (npm ci)")
    workdir = tmp_path_factory.mktemp(name)
    chain = DevChain(block_time=1)
    chain.start()
    p = None
    try:
        p = Pipeline(chain=chain, database_url=f"sqlite:///{workdir / 'blockproof.db'}", workdir=workdir,
                     **pipeline_options)
        p.start("signer")
        p.start("consumer")
        yield p
    finally:
        if p is not None:
            p.stop_all()
        chain.stop()


def revoked_in_database(p: Pipeline, credential_id: int) -> bool:
    with Session(p.engine) as s:
        return bool(s.execute(select(CredentialEvent.revoked).where(
            CredentialEvent.credential_id == credential_id)).scalar())


def revoke_and_wait(p: Pipeline, credential_id: int, reason: str = "awarded in error", timeout: float = 90) -> None:
    """Revoke one credential through the producers' path and wait until the consumer has recorded it."""
    from producers.revocations import RevocationRequest, revoke

    revoke([RevocationRequest(line=1, reason=reason, credential_id=credential_id)],
           settings=p.settings(), engine=p.engine, created_by="test")
    deadline = time.monotonic() + timeout
    while not revoked_in_database(p, credential_id):
        assert time.monotonic() < deadline, p.log("consumer")[-2000:]
        time.sleep(0.3)


def write_csv(path: Path, rows: int, *, seed: int = 1, invalid_fraction: float = 0.0) -> Path:
    subprocess.run([sys.executable, str(PROJECT_ROOT / "examples" / "generate.py"), "--rows", str(rows),
                    "--seed", str(seed), "--invalid-fraction", str(invalid_fraction), "--out", str(path)],
                   check=True, cwd=PROJECT_ROOT)
    return path
