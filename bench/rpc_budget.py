"""JSON-RPC calls the signer and the consumer send, counted by a proxy between them and the node.

    .venv/bin/python bench/rpc_budget.py [--quick] [--out PATH]

Two figures per configuration, measured side by side in one run on a fresh Anvil (1-s blocks):
- idle: calls per minute while nothing is queued (each entry of a JSON-RPC batch counts as one call);
- busy: calls per credential while a batch of rows is issued and confirmed.
"Before" is the polling of the earlier releases (signer facts every second, consumer every 0.5 s, no idle
slow-down), set through the same settings; "now" is the defaults. Writes bench/results/rpc_budget.md unless
--quick (then only prints, or writes --out)."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "rpc_budget.md"
BEFORE = {"BLOCKPROOF_SIGNER_IDLE_REFRESH_SECONDS": "1", "BLOCKPROOF_CONSUMER_IDLE_POLL_SECONDS": "0.5",
          "BLOCKPROOF_CONSUMER_POLL_SECONDS": "0.5"}
NOW = {"BLOCKPROOF_CONSUMER_POLL_SECONDS": "0.5"}  # the product default (the test harness polls faster)


class CountingProxy:
    """Forwards JSON-RPC over HTTP to `upstream` and counts every call by method (batch entries one by one)."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.lock = threading.Lock()
        self.calls: Counter = Counter()
        self.requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    payload = json.loads(body)
                    items = payload if isinstance(payload, list) else [payload]
                    methods = [i.get("method", "?") for i in items if isinstance(i, dict)]
                except ValueError:
                    methods = ["(not JSON)"]
                with proxy.lock:
                    proxy.calls.update(methods)
                    proxy.requests += 1
                request = urllib.request.Request(proxy.upstream, data=body, headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        answer, status = response.read(), response.status
                except Exception:  # noqa: BLE001 - the client sees a bad gateway, as from a real proxy
                    answer, status = b"", 502
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.requests = 0

    def snapshot(self) -> tuple[Counter, int]:
        with self.lock:
            return Counter(self.calls), self.requests

    def __enter__(self) -> "CountingProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def measure(name: str, overrides: dict, *, idle_seconds: float, rows: int, workdir: Path) -> dict:
    from blockproof.devchain import DevChain
    from tests.harness import Pipeline, write_csv

    with DevChain(block_time=1) as chain, CountingProxy(chain.rpc_url) as proxy:
        p = Pipeline(chain=chain, database_url=f"sqlite:///{workdir / (name + '.db')}", workdir=workdir / name,
                     extra_env={"BLOCKPROOF_RPC_URL": proxy.url, "BLOCKPROOF_CONFIRMATIONS": "2", **overrides})
        try:
            p.workdir.mkdir(parents=True, exist_ok=True)
            p.start("signer")
            p.start("consumer")
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
            p.upload(write_csv(workdir / f"{name}.csv", rows, seed=7))
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
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows, few rows; prints only")
    parser.add_argument("--out", help="write the table here")
    args = parser.parse_args(argv)
    idle_seconds, rows = (20.0, 50) if args.quick else (120.0, 2000)
    command = ".venv/bin/python bench/rpc_budget.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    with tempfile.TemporaryDirectory(prefix="rpc-budget-") as tmp:
        results = [measure(name, overrides, idle_seconds=idle_seconds, rows=rows, workdir=Path(tmp))
                   for name, overrides in (("before (earlier polling)", BEFORE), ("now (defaults)", NOW))]
    text = render(results, command, machine())
    print(text)
    out = Path(args.out) if args.out else (None if args.quick else RESULTS)
    if out is not None:
        out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
