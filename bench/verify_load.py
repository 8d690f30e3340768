#!/usr/bin/env python3
"""The public verify endpoint under load, from a second process on loopback.

    .venv/bin/python bench/verify_load.py [--rate 500] [--seconds 20] [--credentials 200] [--out PATH]
    .venv/bin/python bench/verify_load.py --quick   # 50 req/s for 1 s, 20 credentials: prints, writes only with --out

Sets up a dev chain (Anvil) with the vault and `--credentials` credentials issued in one batch transaction,
a SQLite database that has seen the first half of them (CredentialEvent rows, as the consumer writes them),
and `blockproof web` (uvicorn, one worker, production mode, no access log). Then, against
GET /api/credentials/{id}/verify?fingerprint=…:

* fixed rate (open loop, latency measured from each request's scheduled time, so a stall is not hidden):
  database hits at --rate req/s; chain fallbacks at --rate and at a fifth of it;
* closed loop with wrk (if installed): the most requests/s the server answers, per kind;
* baseline in the same run: GET /healthz (one `select 1`), the framework's floor.

Writes bench/results/verify.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "verify.md"
LOAD_BEFORE = f"{os.getloadavg()[0]:.1f}"


# ---- the load generator (runs as its own process: `verify_load.py --client …`) --------------------------
async def _conn_worker(host, port, queue: asyncio.Queue, out: list, errors: list):
    reader, writer = await asyncio.open_connection(host, port)
    while True:
        item = await queue.get()
        if item is None:
            writer.close()
            return
        scheduled, path = item
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            await reader.readexactly(length)
            out.append((time.perf_counter() - scheduled, status))
        except Exception as exc:  # a broken connection: count it and reconnect
            errors.append(repr(exc))
            reader, writer = await asyncio.open_connection(host, port)


async def _fixed_rate(host, port, paths: list[str], rate: float, seconds: float, connections: int) -> dict:
    queue: asyncio.Queue = asyncio.Queue()
    out: list = []
    errors: list = []
    workers = [asyncio.create_task(_conn_worker(host, port, queue, out, errors)) for _ in range(connections)]
    await asyncio.sleep(0.2)
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((due, paths[i % len(paths)]))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    latencies = sorted(x[0] * 1000 for x in out)
    ok = sum(1 for x in out if x[1] == 200)

    def pct(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {"sent": n, "answered": len(out), "ok": ok, "errors": len(errors), "seconds": round(elapsed, 2),
            "achieved_rps": round(len(out) / elapsed, 1), "p50_ms": round(pct(0.50), 2),
            "p90_ms": round(pct(0.90), 2), "p99_ms": round(pct(0.99), 2), "max_ms": round(latencies[-1], 2),
            "mean_ms": round(statistics.fmean(latencies), 2)}


def client_main(args) -> None:
    paths = json.loads(Path(args.paths).read_text())
    result = asyncio.run(_fixed_rate("127.0.0.1", args.port, paths, args.rate, args.seconds, args.connections))
    print(json.dumps(result))


# ---- setup ------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _issue_on_chain(chain, env, count: int) -> list[dict]:
    """Issue `count` credentials in one batch transaction from the controller; return the decoded events."""
    from chain import vault

    items = [vault.IssueItem(student_wallet="0x" + os.urandom(20).hex(), fingerprint=os.urandom(32),
                             metadata_uri=f"{i}.json", payload_uri="", expires_at=0) for i in range(count)]
    w3 = chain.w3
    tx = w3.eth.send_transaction({"from": env.signer_address, "to": env.vault_address,
                                  "data": vault.issue_batch(env.institution_address, "ipfs://bench/", items),
                                  "gas": 29_000_000})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    assert receipt["status"] == 1
    logs = chain.rpc("eth_getLogs", {"address": env.vault_address, "fromBlock": hex(receipt["blockNumber"]),
                                     "toBlock": hex(receipt["blockNumber"]), "topics": [vault.ISSUED_TOPIC]})
    return [vault.decode_issued(e) | {"tx_hash": e["transactionHash"], "log_index": int(e["logIndex"], 16),
                                      "block_number": int(e["blockNumber"], 16),
                                      "block_hash": e["blockHash"]} for e in logs]


def _seed_database(url: str, events: list[dict]) -> None:
    from models.db import engine_for, migrate, session_scope
    from models.tables import CredentialEvent

    migrate(url)
    with session_scope(engine_for(url)) as s:
        for e in events:
            s.add(CredentialEvent(credential_id=e["credential_id"], tx_hash=e["tx_hash"], log_index=e["log_index"],
                                  block_number=e["block_number"], block_hash=e["block_hash"],
                                  fingerprint=e["fingerprint"], student_wallet=e["student_wallet"],
                                  institution=e["institution"], metadata_uri=e.get("metadata_uri", ""),
                                  expires_at=e.get("expires_at", 0)))


def _wrk(url_paths: list[str], port: int, seconds: int, workdir: Path) -> dict | None:
    if shutil.which("wrk") is None:
        return None
    script = workdir / f"paths-{uuid.uuid4().hex[:6]}.lua"
    script.write_text("local paths = {" + ",".join(json.dumps(p) for p in url_paths) + "}\n"
                      "local i = 0\nrequest = function()\n  i = i + 1\n"
                      "  return wrk.format('GET', paths[(i % #paths) + 1])\nend\n")
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", "-s", str(script),
                          f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    return {"rps": rps, "p99_ms": round(float(p99.group(1)) * scale, 2), "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=500, help="fixed request rate (req/s)")
    parser.add_argument("--seconds", type=float, default=20, help="length of each fixed-rate run")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections of the load generator")
    parser.add_argument("--credentials", type=int, default=200, help="credentials issued (half known to the DB)")
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--out", type=Path, help=f"default {RESULTS.relative_to(ROOT)}; none with --quick")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 50 req/s for 1 s, 20 credentials")
    args = parser.parse_args()
    if args.client:
        return client_main(args)
    if args.quick:
        args.rate, args.seconds, args.credentials, args.wrk_seconds, args.warmup = 50, 1, 20, 1, 0.5
    else:
        args.warmup = 2
        args.out = args.out or RESULTS

    from blockproof.devchain import DevChain, deploy_dev_environment

    workdir = Path(tempfile.mkdtemp(prefix="verify-bench-"))
    chain = DevChain()  # automine
    chain.start()
    server = None
    try:
        env = deploy_dev_environment(chain)
        events = _issue_on_chain(chain, env, args.credentials)
        known, unknown = events[: len(events) // 2], events[len(events) // 2:]
        db_url = f"sqlite:///{workdir / 'verify.db'}"
        _seed_database(db_url, known)
        from models.db import engine_for
        from web.people import ADMIN, add

        add(engine_for(db_url), "bench", ADMIN, by="bench")  # production mode starts only with a first admin
        port = free_port()
        secret = workdir / "fingerprint.secret"
        secret.write_text(secrets.token_hex(32))
        server_env = os.environ | {
            "DATABASE_URL": db_url, "BLOCKPROOF_RPC_URL": chain.rpc_url, "BLOCKPROOF_VAULT_ADDRESS": env.vault_address,
            "BLOCKPROOF_PRODUCTION": "true", "BLOCKPROOF_WEB_SECRET": secrets.token_urlsafe(32),
            # what production asks for before it starts: a public address and the fingerprint secret
            "BLOCKPROOF_PUBLIC_URL": "https://verify.example.edu", "BLOCKPROOF_FINGERPRINT_SECRET_FILE": str(secret)}
        command = [sys.executable, "-m", "blockproof.cli", "web", "--port", str(port)]
        server = subprocess.Popen(command, env=server_env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=open(workdir / "web.log", "w"))
        import httpx

        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if server.poll() is not None:
                    raise SystemExit(f"the web did not start:\n{(workdir / 'web.log').read_text()[-2000:]}")
                time.sleep(0.1)

        def verify_paths(evs):
            return [f"/api/credentials/{e['credential_id']}/verify?fingerprint={e['fingerprint']}" for e in evs]

        kinds = {"database hit": verify_paths(known), "chain fallback": verify_paths(unknown),
                 "baseline: /healthz": ["/healthz"]}
        check = {k: httpx.get(f"http://127.0.0.1:{port}{v[0]}").json() for k, v in kinds.items()}
        assert check["database hit"]["source"] == "database" and check["database hit"]["verified"]
        assert check["chain fallback"]["source"] == "chain" and check["chain fallback"]["verified"]

        def fixed(kind: str, rate: float) -> dict:
            paths_file = workdir / "paths.json"
            paths_file.write_text(json.dumps(kinds[kind]))
            # warm-up, then the measured run
            subprocess.run([sys.executable, __file__, "--client", "--paths", str(paths_file), "--port", str(port),
                            "--rate", str(rate), "--seconds", str(args.warmup), "--connections", str(args.connections)],
                           capture_output=True, check=True)
            out = subprocess.run([sys.executable, __file__, "--client", "--paths", str(paths_file), "--port", str(port),
                                  "--rate", str(rate), "--seconds", str(args.seconds),
                                  "--connections", str(args.connections)],
                                 capture_output=True, text=True, check=True).stdout
            return json.loads(out)

        runs = [("baseline: /healthz", args.rate), ("database hit", args.rate),
                ("chain fallback", args.rate / 5), ("chain fallback", args.rate)]
        fixed_results = [(kind, rate, fixed(kind, rate)) for kind, rate in runs]
        wrk_results = [(kind, _wrk(kinds[kind], port, args.wrk_seconds, workdir)) for kind in kinds]
        for kind, rate, r in fixed_results:
            print(f"{kind:>20} @ {rate:>5.0f}/s: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
                  f"max {r['max_ms']} ms, {r['ok']}/{r['sent']} ok", file=sys.stderr)
        for kind, r in wrk_results:
            print(f"{kind:>20} wrk: {r}", file=sys.stderr)
        print(write_results(args, fixed_results, wrk_results, len(known), len(unknown)))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        chain.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def write_results(args, fixed_results, wrk_results, known: int, unknown: int) -> str:
    anvil = subprocess.run([str(ROOT / "node_modules" / ".bin" / "anvil"), "--version"], capture_output=True,
                           text=True).stdout.strip().splitlines()[0] if (ROOT / "node_modules/.bin/anvil").exists() else "?"
    goal = next(r for k, rate, r in fixed_results if k == "database hit")
    met = "met" if goal["p99_ms"] < 20 and goal["ok"] == goal["sent"] else "NOT met"
    lines = [
        "# Verify endpoint under load",
        "",
        f"Command: `.venv/bin/python bench/verify_load.py --rate {args.rate:g} --seconds {args.seconds:g}`  ",
        f"Machine: {platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} CPUs (shared with "
        f"the load generator, Anvil and other work), Python {platform.python_version()}; load average before the "
        f"run {LOAD_BEFORE}, after {os.getloadavg()[0]:.1f}  ",
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC  ",
        f"Chain: {anvil} (local, automine); database: SQLite (WAL); server: `blockproof web` = uvicorn, 1 worker, "
        "production mode, access log off  ",
        "",
        f"Endpoint: `GET /api/credentials/{{id}}/verify?fingerprint=0x…` (public). {known} credentials are in the "
        f"database (*database hit*: one indexed SELECT); {unknown} are only on chain (*chain fallback*: the database "
        "misses, then one `eth_call credentialStatus` to the node). Baseline in the same run: `GET /healthz` "
        "(one `select 1`), the framework's floor.",
        "",
        "## Fixed rate (open loop)",
        "",
        f"A separate process sends requests on a fixed schedule over {args.connections} keep-alive connections; "
        "latency counts from each request's scheduled send time, so queueing behind a slow request is included "
        f"(no coordinated omission). {args.seconds:g} s per row after a {args.warmup:g} s warm-up.",
        "",
        "| requests | rate (req/s) | answered/s | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | ok / sent |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for kind, rate, r in fixed_results:
        lines.append(f"| {kind} | {rate:g} | {r['achieved_rps']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | "
                     f"{r['max_ms']} | {r['ok']} / {r['sent']} |")
    lines += ["", f"Goal: p99 < 20 ms for database hits at 500 req/s: **{met}** (p99 {goal['p99_ms']} ms at "
                  f"{args.rate:g} req/s).", ""]
    if any(r for _, r in wrk_results):
        lines += ["## Closed loop (wrk)", "",
                  f"`wrk -t1 -c16 -d{args.wrk_seconds}s --latency` with a script cycling over the same URLs: the most "
                  "requests per second the server answers.", "",
                  "| requests | requests/s | p99 (ms) | non-2xx |", "|---|--:|--:|--:|"]
        for kind, r in wrk_results:
            if r:
                lines.append(f"| {kind} | {r['rps']:.0f} | {r['p99_ms']} | {r['non_2xx']} |")
        lines.append("")
    text = "\n".join(lines)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return text


if __name__ == "__main__":
    main()
