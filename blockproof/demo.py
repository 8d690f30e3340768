"""`make demo`: a local dev chain, the contract, the signer and the consumer as separate processes,
the sample graduation list uploaded, a progress bar until every row is settled, and a summary."""
from __future__ import annotations

import json
import os
import signal
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from blockproof.devchain import free_port
from blockproof.settings import PROJECT_ROOT, Settings
from workers.broker import broker_problem, delete_queue

DEMO_DIR = PROJECT_ROOT / "var" / "demo"
# The README's "Running the components yourself", command for command: the demo runs exactly these, with the
# settings they default to, so that the demo and that path cannot drift apart (tests/e2e/test_readme_components.py
# runs them as the README shows them).
CHAIN, SIGNER, CONSUMER, UPLOAD = "blockproof chain", "blockproof signer", "blockproof consumer", "blockproof upload"


def demo_environment(queue: str) -> dict[str, str]:
    """A user's shell with none of our settings, but for the demo's own queue: a signer of the README path
    sharing this broker must never take the demo's messages (nor the demo its)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKPROOF_") and k != "DATABASE_URL"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["BLOCKPROOF_QUEUE_NAME"] = queue
    return env


def run_demo(*, csv_path: str, block_time: float) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    base = Settings()
    problem = broker_problem(base.broker_url)
    if problem:
        print(f"error: RabbitMQ is not reachable at {base.broker_url} ({problem}).\n"
              "Start it with `rabbitmq-server -detached` (or `docker compose up rabbitmq`), then run `make demo` again.",
              file=sys.stderr)
        return 1
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    queue = f"demo-{uuid.uuid4().hex[:8]}"
    env = demo_environment(queue)
    procs: list[subprocess.Popen] = []
    started = time.monotonic()

    def start(command: list[str], name: str) -> subprocess.Popen:
        log = open(DEMO_DIR / f"{name}.log", "w")
        proc = subprocess.Popen(command, cwd=DEMO_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    try:
        print("starting a local dev chain (Anvil) and deploying BlockProofCredentialVault…", file=sys.stderr)
        # on a free port rather than the README's 8545, so the demo also runs beside a chain of your own
        chain = start([*CHAIN.split(), "--port", str(free_port()), "--block-time", str(block_time)], "chain")
        deadline = time.monotonic() + 120
        while not (DEMO_DIR / "var" / "dev.env").exists():
            if chain.poll() is not None or time.monotonic() > deadline:
                print(f"error: `{CHAIN}` did not start; see var/demo/chain.log", file=sys.stderr)
                return 1
            time.sleep(0.2)
        start(SIGNER.split(), "signer")
        start(CONSUMER.split(), "consumer")
        print(f"signer and consumer started (logs in {DEMO_DIR.relative_to(PROJECT_ROOT)}/)", file=sys.stderr)
        upload_started = time.monotonic()
        upload = subprocess.run([*UPLOAD.split(), str(Path(csv_path).resolve()), "--json"], cwd=DEMO_DIR, env=env,
                                capture_output=True, text=True)
        if upload.returncode not in (0, 4):
            print(upload.stderr, file=sys.stderr)
            return upload.returncode
        report = json.loads(upload.stdout)
        print(f"uploaded {csv_path}: {report['total_rows']} rows, {report['new']} new, {report['invalid']} invalid; "
              f"batch {report['batch_id']} queued", file=sys.stderr)
        from models.db import engine_for

        engine = engine_for(f"sqlite:///{DEMO_DIR / 'var' / 'blockproof.db'}")
        summary = _watch(engine, report["batch_id"], report["new"], procs, Progress, BarColumn, TextColumn,
                         TimeElapsedColumn)
        elapsed = time.monotonic() - upload_started
        _print_summary(summary, report, elapsed, time.monotonic() - started)
        _print_first_admin(Settings(**{"DATABASE_URL": f"sqlite:///{DEMO_DIR / 'var' / 'blockproof.db'}"}), engine)
        return 0 if summary["failed"] == 0 and summary["confirmed"] == report["new"] else 4
    finally:
        for proc in reversed(procs):  # the chain last: it stops its Anvil on SIGINT
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        delete_queue(base.broker_url, queue)


def _watch(engine, batch_id, expected, procs, Progress, BarColumn, TextColumn, TimeElapsedColumn) -> dict:
    from sqlmodel import Session

    from blockproof import status
    from models.tables import Batch

    deadline = time.monotonic() + 600
    with Progress(TextColumn("issuing"), BarColumn(), TextColumn("{task.completed}/{task.total} confirmed"),
                  TextColumn("{task.description}"), TimeElapsedColumn(), transient=False,
                  disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("", total=expected)
        while True:
            with Session(engine) as s:
                info = status.batch_summary(s, s.get(Batch, batch_id))
                info["gas_per_credential"] = status.gas_per_credential(s, batch_id)
            progress.update(task, completed=info["confirmed"], description=f"· {info['pending']} pending · {info['failed']} failed")
            if info["pending"] == 0 or time.monotonic() > deadline:
                return info
            for proc in procs:
                if proc.poll() is not None:
                    raise SystemExit(f"error: a worker exited with code {proc.returncode}; see var/demo/*.log")
            time.sleep(0.5)


def _print_first_admin(settings, engine) -> None:
    """The demo database's first admin, to look at the result in the web UI afterwards."""
    from web.people import ADMIN, add, has_anyone

    if has_anyone(engine):
        return
    chosen = settings.admin_password.get_secret_value() if settings.admin_password else None
    password = add(engine, settings.admin_user, ADMIN, by="demo", password=chosen,
                   must_change_password=chosen is None)
    told = "your BLOCKPROOF_ADMIN_PASSWORD" if chosen else f"the one-time password {password} (shown only now)"
    print(f"\nsee it in the web UI: cd {DEMO_DIR.relative_to(PROJECT_ROOT)} && blockproof web\n"
          f"  then log in at http://127.0.0.1:8000/ as {settings.admin_user!r} with {told}")


def _print_summary(info: dict, report, elapsed: float, total: float) -> None:
    gas = info.get("gas_per_credential")
    lines = [
        "", "BlockProof Issuer demo: summary",
        f"  rows in file            {report['total_rows']}",
        f"  confirmed on chain      {info['confirmed']}",
        f"  failed                  {info['failed']}",
        f"  transactions            {info['transactions']}",
        f"  gas per credential      {gas:,.0f}" if gas else "  gas per credential      n/a",
        f"  upload → all confirmed  {elapsed:.1f} s ({info['confirmed'] / elapsed:.0f} credentials/s)",
        f"  total incl. set-up      {total:.1f} s",
    ]
    print("\n".join(lines))
