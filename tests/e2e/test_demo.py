"""`make demo` runs `blockproof demo`: the whole pipeline on a fresh dev chain, then a summary."""
from __future__ import annotations

import os
import subprocess
import sys

from blockproof.devchain import anvil_available
from blockproof.settings import PROJECT_ROOT
from tests.conftest import require


def run_demo(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blockproof.cli", "demo", *args], cwd=PROJECT_ROOT,
                          env=os.environ | env, capture_output=True, text=True, timeout=600)


def test_demo_says_how_to_start_rabbitmq_and_fails_when_it_is_unreachable():
    result = run_demo({"BLOCKPROOF_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/%2F"})
    assert result.returncode == 1
    assert "RabbitMQ is not reachable" in result.stderr and "rabbitmq-server -detached" in result.stderr


def test_demo_issues_the_sample_list_end_to_end_and_prints_the_summary(rabbitmq, tmp_path):
    require(anvil_available(), "Anvil (npm ci)")
    result = run_demo({}, "--file", "examples/graduates.csv")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = result.stdout
    assert "confirmed on chain      1000" in out and "failed                  0" in out, out + result.stderr[-3000:]
    for label in ("rows in file", "transactions", "gas per credential", "upload → all confirmed"):
        assert label in out
    assert "log in at http://127.0.0.1:8000/ as 'admin' with the one-time password" in out
