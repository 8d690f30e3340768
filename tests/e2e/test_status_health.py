"""An outage is visible: `blockproof status` and the UI check the node, the broker and the database live, show how
old each worker's last report is, exit 5 when something is down, and raise a stale_heartbeat alert for a silent
worker that resolves when it reports again. The outages are real: a stopped Anvil, a closed port, a cut proxy."""
from __future__ import annotations

import json
import os
import secrets
import signal
import time
import subprocess
import sys

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session

from blockproof.settings import PROJECT_ROOT
from models.tables import Alert, SignerState
from tests.faults import TcpProxy, wait_for
from tests.people import Person
from web.app import create_app

CLOSED_BROKER = "amqp://guest:guest@127.0.0.1:9/%2F"  # discard port: nothing listens there
VIEWER = Person("vera", "viewer")
WEB = {"web_secret": secrets.token_urlsafe(32)}


def status(p, *args, **env):
    return subprocess.run([sys.executable, "-m", "blockproof.cli", "status", *args], cwd=PROJECT_ROOT,
                          env=os.environ | p.env_vars() | env, capture_output=True, text=True, timeout=120)


def signer_reported(p) -> bool:
    with Session(p.engine) as s:
        return any(row.heartbeat_at for row in s.execute(select(SignerState)).scalars())


def open_stale_alerts(p) -> list[Alert]:
    with Session(p.engine) as s:
        return list(s.execute(select(Alert).where(Alert.kind == "stale_heartbeat",
                                                  Alert.resolved_at == None)).scalars())  # noqa: E711


def test_status_shows_a_stopped_node_and_an_unreachable_broker_and_exits_5(make_pipeline, sqlite_url):
    p = make_pipeline(sqlite_url)
    p.start("signer")
    wait_for(lambda: signer_reported(p), 60, what="the signer's first heartbeat")

    well = status(p)
    assert well.returncode == 0, well.stdout + well.stderr
    lines = well.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [["node", "reachable"], ["broker", "reachable"],
                                                        ["database", "reachable"]]
    assert f"signer {p.env.signer_address}  heartbeat " in well.stdout and " s ago" in well.stdout

    broker_down = status(p, BLOCKPROOF_BROKER_URL=CLOSED_BROKER)
    assert broker_down.returncode == 5
    assert broker_down.stdout.splitlines()[1].split()[:2] == ["broker", "UNREACHABLE"]
    assert "guest:guest" not in broker_down.stdout  # the password is not printed
    assert "status: broker unreachable (exit 5)" in broker_down.stderr

    p.chain.stop()
    node_down = status(p, "--json")
    assert node_down.returncode == 5
    reach = json.loads(node_down.stdout)["reachability"]
    assert (reach["node"]["ok"], reach["broker"]["ok"], reach["database"]["ok"]) == (False, True, True)
    assert status(p).stdout.splitlines()[0].split()[:2] == ["node", "UNREACHABLE"]


def test_a_silent_signer_raises_a_stale_heartbeat_alert_that_resolves_when_it_reports_again(make_pipeline,
                                                                                           sqlite_url):
    p = make_pipeline(sqlite_url, extra_env={"BLOCKPROOF_HEARTBEAT_STALE_SECONDS": "3"})
    p.start("signer")
    wait_for(lambda: signer_reported(p), 60, what="the signer's first heartbeat")
    time.sleep(7)  # an idle signer reads the chain every 15 s by default: past the 3-s threshold it still reports
    assert status(p).returncode == 0 and open_stale_alerts(p) == []

    p.kill("signer", signal.SIGKILL)
    silent = wait_for(lambda: (r := status(p)).returncode == 5 and r, 60, interval=1, what="a stale heartbeat")
    assert "(STALE)" in silent.stdout and "status: signer silent (last report " in silent.stderr
    assert f"alert [stale_heartbeat]: The signer {p.env.signer_address} last reported" in silent.stderr
    [alert] = open_stale_alerts(p)
    assert alert.subject == f"signer {p.env.signer_address}"

    p.start("signer")
    wait_for(lambda: status(p).returncode == 0, 60, interval=1, what="the signer to report again")
    assert open_stale_alerts(p) == []


def test_the_ui_shows_node_and_broker_outages_live_and_recovers(make_pipeline, sqlite_url):
    p = make_pipeline(sqlite_url)
    with TcpProxy("127.0.0.1", 5672) as proxy:
        settings = p.settings(broker_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F",
                              rabbitmq_management_url="http://127.0.0.1:9", **WEB)
        client = TestClient(create_app(settings, p.engine, announce=None))
        VIEWER.enrol(p.engine)

        def components():
            return client.get("/api/health", auth=VIEWER).json()["components"]

        assert {name: c["ok"] for name, c in components().items()} == {"node": True, "broker": True,
                                                                        "database": True}
        proxy.go_dark()
        wait_for(lambda: not components()["broker"]["ok"], 30, interval=0.5, what="the UI to see the broker down")
        page = client.get("/", auth=VIEWER).text
        assert 'data-live="health.components.broker.state">UNREACHABLE' in page
        proxy.restore()
        wait_for(lambda: components()["broker"]["ok"], 30, interval=0.5, what="the UI to see the broker back")

        p.chain.stop()
        wait_for(lambda: not components()["node"]["ok"], 30, interval=0.5, what="the UI to see the node down")
        live = client.get("/api/live?overview=1", auth=VIEWER).json()
        assert live["health"]["components"]["node"]["state"] == "UNREACHABLE"
        assert live["health"]["ok"] is False
