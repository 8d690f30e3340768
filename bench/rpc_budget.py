"""JSON-RPC calls the signer and the consumer send, counted by a proxy between them and the node.

    .venv/bin/python bench/rpc_budget.py [--quick] [--out PATH]

Two figures per configuration, measured side by side in one run on a fresh Anvil (1-s blocks):
- idle: calls per minute while nothing is queued (each entry of a JSON-RPC batch counts as one call);
- busy: calls per credential while a batch of rows is issued and confirmed.
"Before" runs the signer and the consumer of commit BEFORE (receipts of every attempt on every signer step,
mined transactions re-checked by receipt down to the finality depth, the consumer's header batch per range),
extracted with `git archive`; "now" runs this tree. Both with the product defaults. Writes
bench/results/rpc_budget.md unless --quick (then only prints, or writes --out)."""
from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine  # noqa: E402
from tests.faults import RpcProxy  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "rpc_budget.md"
BEFORE = "4451562"  # the last commit that polled receipts every signer step
NOW = {"BLOCKPROOF_CONSUMER_POLL_SECONDS": "0.5"}  # the product default (the test harness polls faster)


def extract(commit: str, into: Path) -> Path:
    """The tree of `commit`, to run its signer and consumer from."""
    run = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True)
    if run.returncode != 0:
        raise SystemExit(f"cannot read commit {commit} for the 'before' run (a shallow clone?): "
                         f"{run.stderr.decode(errors='replace').strip()}")
    archive = run.stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    # the database is made by this tree (its uploads write it): the old code must know the newer revisions,
    # which only add nullable columns it never reads
    versions = Path("models/migrations/versions")
    for migration in (ROOT / versions).glob("*.py"):
        shutil.copy(migration, into / versions / migration.name)
    return into


def command_from(tree: Path, role: str) -> list[str]:
    """`blockproof <role>` with the code of `tree` (first on the path, before this checkout)."""
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tree)!r}); sys.argv = ['blockproof', "
                                  f"{role!r}]; from blockproof.cli import main; sys.exit(main())"]


def measure(name: str, overrides: dict, *, idle_seconds: float, rows: int, workdir: Path,
            code: Path | None = None) -> dict:
    """`code`: another tree whose signer and consumer run (None: this one)."""
    from blockproof.devchain import DevChain
    from tests.harness import Pipeline, write_csv

    slug = "".join(c if c.isalnum() else "-" for c in name)
    with DevChain(block_time=1) as chain, RpcProxy(chain.rpc_url) as proxy:
        p = Pipeline(chain=chain, database_url=f"sqlite:///{workdir / (slug + '.db')}", workdir=workdir / slug,
                     extra_env={"BLOCKPROOF_RPC_URL": proxy.url, "BLOCKPROOF_CONFIRMATIONS": "2", **overrides})
        try:
            p.workdir.mkdir(parents=True, exist_ok=True)
            for role in ("signer", "consumer"):
                p.start(role, command=command_from(code, role) if code else None)
            deadline = time.monotonic() + 60
            while "consuming queue" not in p.log("signer") and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(3)  # start-up reads (nonce, contract probe, first ranges) are not idle
            proxy.reset()
            started = time.monotonic()
            time.sleep(idle_seconds)
            idle, idle_requests = proxy.snapshot()
            idle_minutes = (time.monotonic() - started) / 60
            proxy.reset()
            p.upload(write_csv(workdir / f"{slug}.csv", rows, seed=7))
            p.wait_until_settled(rows, timeout=300)
            busy, busy_requests = proxy.snapshot()
        finally:
            p.stop_all()
    return {"name": name, "idle_per_minute": sum(idle.values()) / idle_minutes,
            "idle_requests_per_minute": idle_requests / idle_minutes,
            "idle_by_method": {m: round(n / idle_minutes, 1) for m, n in idle.most_common()},
            "busy_per_credential": sum(busy.values()) / rows, "busy_requests": busy_requests, "rows": rows,
            "busy_by_method": dict(busy.most_common())}


def render(results: list[dict], command: str, info: dict) -> str:
    lines = [f"`{command}` on {info['uname']} ({info['nproc']} cores), commit {info['commit']}, {info['date']}; "
             f"Anvil with 1-s blocks, signer + consumer through a counting proxy (each batch entry counts).", "",
             "| configuration | idle calls/min | idle HTTP requests/min | busy calls/credential | rows |",
             "| --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['name']} | {r['idle_per_minute']:.0f} | {r['idle_requests_per_minute']:.0f} | "
                     f"{r['busy_per_credential']:.3f} | {r['rows']} |")
    lines.append("")
    for r in results:
        top = ", ".join(f"{n:g} {m}" for m, n in list(r["idle_by_method"].items())[:6])
        lines.append(f"- {r['name']}, idle per minute: {top or 'none'}")
    for r in results:
        busy = ", ".join(f"{n:g} {m}" for m, n in list(r["busy_by_method"].items())[:8])
        lines.append(f"- {r['name']}, busy ({r['rows']} rows): {busy or 'none'}")
    lines += ["", f"Goals: idle at most 60 calls a minute, busy at most 0.2 calls per credential. \"Before\" is the "
              f"signer and consumer of commit {BEFORE}, run from its `git archive` in the same run: receipts of every "
              "attempt on every signer step and mined transactions re-checked by receipt down to the finality "
              "depth; a header batch per consumer range. \"Now\": receipts only for nonces the chain has used, "
              "mined transactions re-checked by one header per block (one for all while the highest is unchanged) "
              "when the head changed, and the consumer vouches for its checkpoint through the next range and the "
              "head it already read. Busy calls include the upload's own chain checks (`eth_call`) and the signer's pre-flight."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows, few rows; prints only")
    parser.add_argument("--out", help="write the table here")
    args = parser.parse_args(argv)
    idle_seconds, rows = (20.0, 50) if args.quick else (120.0, 2000)
    command = ".venv/bin/python bench/rpc_budget.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    with tempfile.TemporaryDirectory(prefix="rpc-budget-") as tmp:
        before = extract(BEFORE, Path(tmp) / "before-tree")
        results = [measure(name, NOW, idle_seconds=idle_seconds, rows=rows, workdir=Path(tmp), code=code)
                   for name, code in ((f"before (commit {BEFORE})", before), ("now", None))]
    text = render(results, command, machine())
    print(text)
    out = Path(args.out) if args.out else (None if args.quick else RESULTS)
    if out is not None:
        out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
