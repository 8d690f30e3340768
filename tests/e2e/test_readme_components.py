"""The README's "Running the components yourself" path, command for command, with the defaults the README
shows and nothing set by the test: no environment overrides, no tuned batch size or confirmation depth.

A newcomer following it once hit a stall no other test saw, because every other test tuned its settings.
The working directory's absolute path has 7 characters on purpose: the documents' file:// URIs then make a
full-size pre-flight answer "MemoryOOG" instead of "OutOfGas", which the signer once did not split on.
"""
from __future__ import annotations

import fcntl
import itertools
import json
import os
import shlex
import shutil
import signal
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blockproof import demo
from blockproof.devchain import anvil_available
from blockproof.settings import PROJECT_ROOT
from tests.conftest import require
from workers.broker import delete_queue

README = (PROJECT_ROOT / "README.md").read_text()
VENV_BIN = Path(sys.executable).parent
CHAIN, SIGNER, CONSUMER, WEB = demo.CHAIN, demo.SIGNER, demo.CONSUMER, "blockproof web"
UPLOAD = f"{demo.UPLOAD} graduates.csv"
STATUS = "blockproof status 1 --json"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"


def readme_commands() -> str:
    start = README.index("## Running the components yourself")
    return README[start:README.index("\n## ", start + 10)]


def seven_character_directory() -> Path:
    for a, b in itertools.product(string.ascii_lowercase, repeat=2):
        path = Path(f"/tmp/{a}{b}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    pytest.skip("no free 7-character directory under /tmp")


def clean_environment() -> dict:
    """The user's shell: the project's tools on PATH and none of our settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKPROOF_") and k != "DATABASE_URL"}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture
def readme_port_lock():
    """The README's chain listens on :8545 and its web on :8000; two runs of this test on one machine take turns."""
    with open("/tmp/blockproof-readme-8545.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def test_every_command_run_here_is_shown_in_the_readme_as_written():
    shown = readme_commands()
    for command in (CHAIN, SIGNER, CONSUMER, WEB, UPLOAD, "blockproof status [BATCH] [--json]"):
        assert command in shown, command


def test_the_demo_runs_the_same_commands_with_no_setting_of_its_own_but_its_queue():
    env = demo.demo_environment("demo-x")
    assert {k for k in env if k.startswith("BLOCKPROOF_") or k == "DATABASE_URL"} == {"BLOCKPROOF_QUEUE_NAME"}
    source = (PROJECT_ROOT / "blockproof" / "demo.py").read_text()
    for name in ("CHAIN", "SIGNER", "CONSUMER", "UPLOAD"):
        assert f"{name}.split()" in source, f"the demo does not run {name}"


def test_the_readme_component_commands_with_their_defaults_issue_the_sample_list(rabbitmq, readme_port_lock):
    require(anvil_available(), "Anvil (npm ci)")
    workdir = seven_character_directory()
    assert len(str(workdir)) == 7
    shutil.copy(PROJECT_ROOT / "examples" / "graduates.csv", workdir / "graduates.csv")
    env = clean_environment()
    procs: list[subprocess.Popen] = []

    def start(command: str, name: str) -> subprocess.Popen:
        log = open(workdir / f"{name}.log", "w")
        proc = subprocess.Popen(shlex.split(command), cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        procs.append(proc)
        return proc

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in workdir.glob("*.log"))

    try:
        chain = start(CHAIN, "chain")
        deadline = time.monotonic() + 60
        while not (workdir / "var" / "dev.env").exists():
            assert chain.poll() is None and time.monotonic() < deadline, logs()
            time.sleep(0.2)
        start(SIGNER, "signer")
        start(CONSUMER, "consumer")
        start(WEB, "web")
        upload = subprocess.run(shlex.split(UPLOAD), cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
        assert upload.returncode == 0, upload.stderr + logs()
        deadline = time.monotonic() + 300
        while True:
            status = subprocess.run(shlex.split(STATUS), cwd=workdir, env=env, capture_output=True, text=True,
                                    timeout=60)
            batch = json.loads(status.stdout)["batch"]
            if batch["confirmed"] == 1000 or time.monotonic() > deadline:
                break
            for proc in procs:
                assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}\n" + logs()
            time.sleep(2)
        assert (batch["confirmed"], batch["failed"]) == (1000, 0), json.dumps(batch) + logs()
        import urllib.request

        with urllib.request.urlopen("http://127.0.0.1:8000/healthz", timeout=10) as answer:
            assert answer.status == 200, logs()
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        delete_queue(DEFAULT_BROKER, "issue")
        shutil.rmtree(workdir, ignore_errors=True)
