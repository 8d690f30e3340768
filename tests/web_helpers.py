"""What the browser and server tests share: a free port, `blockproof web` as its own process, Chromium's
settings, and the steps a person takes (log in, upload a CSV, wait for a live-updated text or for jobs' states)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session

from blockproof.settings import PROJECT_ROOT
from models.tables import Job
from tests.conftest import require

CHROMIUM = "/usr/bin/chromium"
# `make screenshots` sets this to docs/screenshots to refresh the docs' pictures; a plain test run
# keeps its screenshots out of the working tree
SHOTS = Path(os.environ.get("BLOCKPROOF_SCREENSHOTS_DIR") or tempfile.gettempdir() + "/blockproof-screenshots")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage"]
REVERT_ALWAYS = "0x60006000fd"  # PUSH1 0 PUSH1 0 REVERT: a contract that refuses every call without a reason


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_chromium() -> None:
    require(Path(CHROMIUM).exists() or shutil.which("chromium") is not None, "Chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")


@contextmanager
def web_server(env: dict[str, str], log_path: Path):
    """`blockproof web` on a free port with `env`, once /healthz answers: yields its base URL; stopped after."""
    port = free_port()
    log = open(log_path, "w")
    server = subprocess.Popen([sys.executable, "-m", "blockproof.cli", "web", "--port", str(port)], env=env,
                              cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
            assert server.poll() is None and time.monotonic() < deadline, Path(log_path).read_text()
        yield base
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


def log_in(page, base: str, person) -> None:
    page.goto(base + "/login")
    page.fill("input[name=username]", person.name)
    page.fill("input[name=password]", person.password)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")


def upload(page, base: str, csv_path: Path) -> str:
    """Upload a CSV through the form; returns the preview page's URL."""
    page.goto(base + "/upload")
    page.set_input_files("input[name=file]", str(csv_path))
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(lambda url: "/upload/" in url)
    return page.url


def wait_text(page, selector: str, text: str, timeout: float = 150) -> None:
    """Wait for the live-updated element (polling JSON every few seconds) to read `text`."""
    page.wait_for_function("([sel, text]) => { const el = document.querySelector(sel); "
                           "return el && el.textContent.trim() === text; }", arg=[selector, text],
                           timeout=timeout * 1000)


def batch_jobs(p, batch_id: int) -> list[Job]:
    with Session(p.engine) as s:
        return list(s.execute(select(Job).where(Job.batch_id == batch_id).order_by(Job.id)).scalars())


def wait_states(p, batch_id: int, state: str, n: int, timeout: float = 120) -> list[Job]:
    """Wait until exactly `n` jobs of the batch are in `state`; returns the batch's jobs."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = batch_jobs(p, batch_id)
        if sum(j.state == state for j in jobs) == n:
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id}: {[j.state for j in jobs]}\n{p.log('signer')[-2000:]}")
        time.sleep(0.3)
