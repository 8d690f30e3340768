"""What the production compose template relies on: quorum queues on the real RabbitMQ, the `alive` liveness
command of the signer and consumer healthchecks, and settings read from secret files."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pika
import pytest

from blockproof.health import Heartbeat, liveness
from blockproof.settings import PROJECT_ROOT
from models.states import utcnow
from tests.harness import BROKER_URL, delete_queue, write_csv


def test_liveness_is_the_freshness_of_the_workers_last_report():
    now = utcnow()
    beats = [Heartbeat("signer", "0xAbc", now - timedelta(seconds=5)), Heartbeat("consumer", "vault-events", None)]
    assert liveness(beats, "signer", now, 60)[0] is True
    assert liveness(beats, "signer", now, 60, subject="0xabc")[0] is True
    assert liveness(beats, "signer", now, 60, subject="0xdef") == (False, "signer: no report yet")
    assert liveness(beats, "consumer", now, 60) == (False, "consumer: no report yet")
    assert liveness(beats, "signer", now + timedelta(minutes=5), 60)[0] is False


def _alive(p, role: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blockproof.cli", "alive", role], cwd=PROJECT_ROOT, timeout=60,
                          env=os.environ | {k: v for k, v in p.env_vars().items() if k != "BLOCKPROOF_SIGNER_KEY"},
                          capture_output=True, text=True)


def test_a_pipeline_on_quorum_queues_issues_and_its_workers_report_alive(make_pipeline, database_url, tmp_path,
                                                                         monkeypatch):
    from workers.broker import get_broker

    monkeypatch.setattr(get_broker(), "queue_type", "quorum")  # this process publishes the upload
    p = make_pipeline(database_url, extra_env={"BLOCKPROOF_BROKER_QUEUE_TYPE": "quorum"})
    assert _alive(p, "signer").returncode == 1 and _alive(p, "consumer").returncode == 1  # nothing runs yet
    p.start("signer")
    p.start("consumer")
    p.upload(write_csv(tmp_path / "rows.csv", 4, seed=9))
    p.wait_until_settled(4)
    p.assert_exactly_once(4)
    assert _alive(p, "signer").returncode == 0 and _alive(p, "consumer").returncode == 0
    connection = pika.BlockingConnection(pika.URLParameters(BROKER_URL))
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="x-queue-type"):
            connection.channel().queue_declare(p.queue, durable=True, arguments={  # as classic: refused
                "x-dead-letter-exchange": "", "x-dead-letter-routing-key": f"{p.queue}.XQ"})
    finally:
        if connection.is_open:
            connection.close()
    for name in (f"{p.queue}.DQ", f"{p.queue}.XQ"):
        delete_queue(name)


def test_secrets_are_read_from_files_in_blockproof_secrets_dir(tmp_path):
    (tmp_path / "blockproof_web_secret").write_text("from-a-file\n")
    (tmp_path / "database_url").write_text("postgresql+psycopg://blockproof@db/blockproof")
    code = ("from blockproof.settings import Settings; s = Settings(); "
            "print(s.web_secret.get_secret_value(), s.database_url)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKPROOF_") and k != "DATABASE_URL"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env | {"BLOCKPROOF_SECRETS_DIR": str(tmp_path),
                         "PYTHONPATH": str(PROJECT_ROOT)}, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["from-a-file", "postgresql+psycopg://blockproof@db/blockproof"], out.stderr
