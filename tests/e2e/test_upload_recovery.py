"""An upload killed with SIGKILL is finished without a person: jobs it wrote but never published are published
(by a re-upload at once, by the signer after the threshold), never twice, and its staging folders are removed.
Real processes, RabbitMQ, Anvil, SQLite and PostgreSQL; the broker is made unreachable by a listener we own."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session

from blockproof.settings import PROJECT_ROOT
from models.states import utcnow
from models.tables import Batch, Job
from producers import documents
from models.recovery import republish_stalled
from producers.upload import commit
from producers.validation import validate_file
from tests.conftest import require
from tests.faults import wait_for
from tests.harness import fresh_database, postgres_up, write_csv
from tests.e2e.test_cli_upload import run
from tests.e2e.test_upload import do_plan
from workers.actors import publish_jobs
from workers.broker import queue_depths


@contextmanager
def silent_broker():
    """A port that accepts TCP connections and never answers: publishing blocks, as with a broker lost mid-way."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield f"amqp://guest:guest@127.0.0.1:{listener.getsockname()[1]}/%2F"
    finally:
        listener.close()


def upload_process(p, path, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "blockproof.cli", "upload", str(path)], cwd=PROJECT_ROOT,
                            env=os.environ | p.env_vars() | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_upload_after_it_wrote_its_jobs(p, path, rows: int) -> None:
    with silent_broker() as broker_url:
        proc = upload_process(p, path, BLOCKPROOF_BROKER_URL=broker_url)
        try:
            wait_for(lambda: p.counts() == {"validated": rows}, timeout=60, what="the upload to commit its jobs")
        finally:
            proc.kill()
            proc.wait(timeout=20)
    assert p.counts() == {"validated": rows} and queue_depths(p.queue)["ready"] == 0


@pytest.fixture
def postgres_url(tmp_path):
    require(postgres_up(), "PostgreSQL at 127.0.0.1:5432")
    url, drop = fresh_database("postgresql", tmp_path)
    yield url
    drop()


def test_uploading_the_file_again_after_a_killed_upload_says_how_many_rows_waited_and_queues_them(
        make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url)
    path = write_csv(tmp_path / "list.csv", 30, seed=41)
    kill_upload_after_it_wrote_its_jobs(p, path, 30)

    again = run(p, "upload", path, check_rc=0)

    assert ("30 earlier row(s) of this file were written by an upload that stopped before queueing them; "
            "30 queued now.") in again.stderr
    assert ("30 rows: 0 new, 30 uploaded before, 0 already on chain, 0 invalid (nothing new to queue; "
            "30 earlier row(s) queued again)") in again.stderr
    assert p.counts() == {"queued": 30} and queue_depths(p.queue)["ready"] == 1
    p.start("signer")
    p.start("consumer")
    assert p.wait_until_settled(30, timeout=120) == {"confirmed": 30}
    p.assert_exactly_once(30)


def test_the_signer_publishes_the_jobs_of_a_killed_upload_after_the_threshold_and_each_is_issued_once(
        make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env={"BLOCKPROOF_STALLED_UPLOAD_SECONDS": "2"})
    path = write_csv(tmp_path / "list.csv", 25, seed=42)
    kill_upload_after_it_wrote_its_jobs(p, path, 25)

    p.start("signer")
    p.start("consumer")

    assert p.wait_until_settled(25, timeout=120) == {"confirmed": 25}
    p.assert_exactly_once(25)
    assert "published 25 job(s) that a stopped upload had written but not published" in p.log("signer")


def test_two_republishers_at_once_publish_each_stalled_job_once_and_leave_fresh_jobs_alone(
        make_pipeline, database_url, tmp_path):
    p = make_pipeline(database_url, block_time=None)

    def broker_gone(ids, *, queue_name):
        raise ConnectionError("RabbitMQ went away")

    with pytest.raises(ConnectionError):
        commit(*do_plan(p, write_csv(tmp_path / "list.csv", 40, seed=43)), settings=p.settings(), engine=p.engine,
               publish=broker_gone)
    assert p.counts() == {"validated": 40}
    settings = p.settings()
    assert republish_stalled(settings=settings, engine=p.engine) == 0, "fresh jobs were published"

    published: list[int] = []
    start = threading.Barrier(2)

    def republisher():
        def publish(ids, *, queue_name):
            published.extend(ids)
            return publish_jobs(ids, queue_name=queue_name)
        start.wait()
        republish_stalled(settings=settings, engine=p.engine, publish=publish,
                          now=utcnow() + timedelta(seconds=settings.stalled_upload_seconds + 1))

    threads = [threading.Thread(target=republisher) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(published) == sorted(set(published)) and len(published) == 40
    assert p.counts() == {"queued": 40} and queue_depths(p.queue)["ready"] == 1


def test_the_staging_folder_of_an_upload_killed_before_its_commit_is_removed_by_the_next_upload(
        make_pipeline, postgres_url, tmp_path):
    # PostgreSQL never reuses a batch id, so no later batch of the same id would clean it up by chance
    p = make_pipeline(postgres_url, block_time=None, extra_env={"BLOCKPROOF_STALLED_UPLOAD_SECONDS": "0"})
    path = write_csv(tmp_path / "list.csv", 20, seed=44)
    first = validate_file(path)[0].iloc[0]
    root = p.workdir / "documents"
    with Session(p.engine) as blocker:  # holds the first row's key uncommitted: the upload's INSERT waits on it
        batch = Batch(filename="blocker", institution=first.institution)
        blocker.add(batch)
        blocker.flush()
        blocker.add(Job(batch_id=batch.id, idempotency_key=first.fingerprint, fingerprint=first.fingerprint,
                        institution=first.institution))
        blocker.flush()
        proc = upload_process(p, path)
        try:
            staging = wait_for(lambda: list(root.glob(".*.partial")), timeout=60, what="the upload's staging folder")
            wait_for(lambda: blocker.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                                                  "'Lock' AND datname = current_database()")).scalar_one(),
                     timeout=60, what="the upload to wait on the held key")
        finally:
            proc.kill()
            proc.wait(timeout=20)
        blocker.rollback()
    assert [d.exists() for d in staging] == [True]

    report = p.upload(path)

    assert report.written == 20
    assert not staging[0].exists()
    assert sorted(d.name for d in root.iterdir()) == [str(report.batch_id)]


def test_a_staging_folder_still_being_written_is_kept(tmp_path):
    live = documents.begin(tmp_path, 7)
    assert documents.remove_stale_partials(tmp_path, 600) == [] and live.exists()
    os.utime(live, (0, 0))
    assert documents.remove_stale_partials(tmp_path, 600) == [live] and not live.exists()
