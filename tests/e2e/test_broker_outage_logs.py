"""A broker outage in the logs: one line when RabbitMQ is lost, one when it is back, no traceback (those are kept
for -v). A worker runs behind a TCP proxy that is cut for some seconds and restored; an upload meets a closed port."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime

from blockproof.settings import PROJECT_ROOT
from tests.faults import TcpProxy, wait_for
from tests.harness import write_csv

CLOSED_BROKER = "amqp://guest:guest@127.0.0.1:9/%2F"  # discard port: nothing listens there


def test_an_outage_is_told_once_when_it_starts_and_once_when_it_ends():
    from blockproof.logs import Outage

    now = [100.0]
    outage = Outage("RabbitMQ at h:1", clock=lambda: now[0], wall=lambda: datetime(2026, 1, 1, 9, 0, 0))
    assert outage.recovered() is None
    assert outage.failed("connection refused") == "RabbitMQ at h:1 unreachable (connection refused) (details: -v)"
    assert outage.failed("connection lost") is None
    now[0] = 112.4
    assert outage.recovered() == "RabbitMQ at h:1 reachable again after 12 s (down since 09:00:00)"
    assert outage.recovered() is None
    assert outage.failed("timed out") is not None


def test_pika_messages_become_a_few_words():
    from blockproof.logs import connection_reason

    assert connection_reason("Socket failed to connect: <socket.socket fd=9>; error=111 (Connection refused)") == \
        "connection refused"
    assert connection_reason("Transport indicated EOF.") == "connection lost"


def test_a_worker_logs_one_line_per_outage_and_per_recovery_and_no_traceback(make_pipeline, sqlite_url, tmp_path):
    with TcpProxy("127.0.0.1", 5672) as proxy:
        p = make_pipeline(sqlite_url, extra_env={"BLOCKPROOF_BROKER_URL":
                                                 f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F"})
        p.start("signer")
        wait_for(lambda: "consuming queue" in p.log("signer"), 60, what="the signer to consume")
        before = len(p.log("signer").splitlines())
        proxy.go_dark()
        wait_for(lambda: "unreachable" in p.log("signer"), 30, what="the outage line")
        time.sleep(10)  # several reconnect rounds while the broker stays away
        proxy.restore()
        wait_for(lambda: "reachable again" in p.log("signer"), 60, what="the recovery line")

        report = p.upload(write_csv(tmp_path / "after.csv", 3, seed=71))  # the worker consumes again
        assert report.queued == 3
        wait_for(lambda: p.counts().get("queued", 0) == 0 and p.counts().get("validated", 0) == 0, 60,
                 what="the signer to take the jobs published after the outage")
        during = p.log("signer").splitlines()[before:]  # read before the proxy closes (that is an outage too)

    noise = [line for line in during if "Traceback" in line or " pika." in line or "ConsumerThread" in line]
    assert noise == [], "\n".join(during)
    assert sum("unreachable (connection" in line for line in during) == 1, "\n".join(during)
    assert sum("reachable again after" in line for line in during) == 1, "\n".join(during)


def upload(p, csv, *flags):
    return subprocess.run([sys.executable, "-m", "blockproof.cli", *flags, "upload", str(csv)], cwd=PROJECT_ROOT,
                          env=os.environ | p.env_vars() | {"BLOCKPROOF_BROKER_URL": CLOSED_BROKER},
                          capture_output=True, text=True, timeout=120)


def test_an_upload_against_an_unreachable_broker_says_so_in_a_few_lines_with_its_summary(make_pipeline, sqlite_url,
                                                                                        tmp_path):
    p = make_pipeline(sqlite_url, block_time=None)
    out = upload(p, write_csv(tmp_path / "g.csv", 5, seed=72))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and len(lines) <= 4, out.stderr
    assert lines[0].endswith("RabbitMQ at 127.0.0.1:9 unreachable (connection refused) (details: -v)")
    assert lines[1].startswith("error: ")
    assert "run `blockproof requeue 1` to queue the rest" in out.stderr
    assert lines[-1] == "5 rows: 5 new, 0 uploaded before, 0 already on chain, 0 invalid (batch 1: 5 written, 0 queued)"

    verbose = upload(p, write_csv(tmp_path / "h.csv", 5, seed=73), "-v")
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr  # the details are there when asked for
