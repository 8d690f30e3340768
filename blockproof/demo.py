"""`make demo`: a local dev chain, the contract, the signer and the consumer as separate processes,
the sample graduation list uploaded, a progress bar until every row is settled, and a summary."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from blockproof.devchain import DevChain, deploy_dev_environment
from blockproof.settings import PROJECT_ROOT, Settings
from workers.broker import broker_problem, delete_queue

DEMO_DIR = PROJECT_ROOT / "var" / "demo"


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
    chain = DevChain(block_time=block_time)
    procs: list[subprocess.Popen] = []
    started = time.monotonic()
    try:
        print("starting a local dev chain (Anvil) and deploying BlockProofCredentialVault…", file=sys.stderr)
        chain.start()
        deploy_block = chain.w3.eth.block_number
        env = deploy_dev_environment(chain)
        overrides = {
            "DATABASE_URL": f"sqlite:///{DEMO_DIR / 'blockproof.db'}", "BLOCKPROOF_RPC_URL": chain.rpc_url,
            "BLOCKPROOF_VAULT_ADDRESS": env.vault_address, "BLOCKPROOF_VAULT_DEPLOY_BLOCK": str(deploy_block),
            "BLOCKPROOF_SIGNER_KEY": env.signer_key, "BLOCKPROOF_QUEUE_NAME": queue,
            "BLOCKPROOF_DOCUMENT_DIR": str(DEMO_DIR / "documents"), "BLOCKPROOF_CONFIRMATIONS": "2",
        }
        child_env = os.environ | overrides
        from models.db import migrate

        migrate(overrides["DATABASE_URL"])
        for role in ("signer", "consumer"):
            log = open(DEMO_DIR / f"{role}.log", "w")
            procs.append(subprocess.Popen([sys.executable, "-m", "blockproof.cli", role], env=child_env,
                                          stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT))
        print(f"signer and consumer started (logs in {DEMO_DIR.relative_to(PROJECT_ROOT)}/)", file=sys.stderr)
        os.environ.update(overrides)
        from blockproof.settings import get_settings

        get_settings.cache_clear()
        settings = get_settings()
        from models.db import engine_for, migrate
        from producers.upload import commit, plan

        migrate(settings.database_url)
        engine = engine_for(settings.database_url)
        upload_started = time.monotonic()
        report, rows = plan(csv_path, filename=Path(csv_path).name, institution=None, settings=settings, engine=engine)
        report = commit(report, rows, settings=settings, engine=engine, created_by="demo")
        print(f"uploaded {csv_path}: {report.total_rows} rows, {report.new} new, {report.invalid} invalid; "
              f"batch {report.batch_id} queued", file=sys.stderr)
        summary = _watch(settings, engine, report.batch_id, report.new, procs, Progress, BarColumn, TextColumn,
                         TimeElapsedColumn)
        elapsed = time.monotonic() - upload_started
        _print_summary(summary, report, elapsed, time.monotonic() - started)
        _print_first_admin(settings, engine)
        return 0 if summary["failed"] == 0 and summary["confirmed"] == report.new else 4
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        chain.stop()
        delete_queue(base.broker_url, queue)


def _watch(settings, engine, batch_id, expected, procs, Progress, BarColumn, TextColumn, TimeElapsedColumn) -> dict:
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
    print(f"\nsee it in the web UI: DATABASE_URL={settings.database_url} blockproof web\n"
          f"  then log in at http://127.0.0.1:8000/ as {settings.admin_user!r} with {told}")


def _print_summary(info: dict, report, elapsed: float, total: float) -> None:
    gas = info.get("gas_per_credential")
    lines = [
        "", "BlockProof Issuer demo: summary",
        f"  rows in file            {report.total_rows}",
        f"  confirmed on chain      {info['confirmed']}",
        f"  failed                  {info['failed']}",
        f"  transactions            {info['transactions']}",
        f"  gas per credential      {gas:,.0f}" if gas else "  gas per credential      n/a",
        f"  upload → all confirmed  {elapsed:.1f} s ({info['confirmed'] / elapsed:.0f} credentials/s)",
        f"  total incl. set-up      {total:.1f} s",
    ]
    print("\n".join(lines))
