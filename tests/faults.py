"""Real faults for tests: a JSON-RPC proxy in front of Anvil that can lose answers or refuse methods,
a TCP proxy in front of PostgreSQL that can go dark, and small helpers that act on the real services.

Everything here listens on 127.0.0.1 only and stops with the test.
"""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy import select
from sqlmodel import Session

from models.states import TERMINAL


def _methods(payload) -> list[str]:
    items = payload if isinstance(payload, list) else [payload]
    return [item.get("method", "") for item in items if isinstance(item, dict)]


class RpcProxy:
    """Forwards JSON-RPC to `upstream` and counts every call by method (each entry of a batch request is a
    call; bench/rpc_budget.py reads `calls` and `requests`). Faults:

    - drop_answers(method, n): forward the next n requests containing `method`, then close the
      connection without answering (the client cannot know whether the node got it).
    - refuse(method, in_batches_only): answer HTTP 503 without forwarding, until allow(method).
    - too_big(method, over_bytes, message): answer every `method` request whose calldata is longer than
      `over_bytes` with a JSON-RPC error, as a node with a smaller call gas cap or memory limit does.
    """

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.lock = threading.Lock()
        self.drops: dict[str, int] = {}
        self.dropped: list[str] = []  # the request bodies whose answers were lost
        self.refused: dict[str, bool] = {}
        self.refused_count = 0
        self.oversize: dict[str, tuple[int, int, str]] = {}
        self.oversize_answered = 0
        self.limited: list[str | None] = []  # Retry-After values of the next requests answered HTTP 429
        self.forwarded = 0
        self.calls: Counter = Counter()
        self.requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    methods = _methods(json.loads(body))
                except ValueError:
                    methods = []
                with proxy.lock:
                    proxy.calls.update(methods or ["(not JSON)"])
                    proxy.requests += 1
                    retry_after = proxy.limited.pop(0) if proxy.limited else False
                if retry_after is not False:
                    self.send_response(429)
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with proxy.lock:
                    proxy.forwarded += 1
                action = proxy._decide(methods, batch=body.lstrip().startswith(b"["))
                if action == "refuse":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                request = urllib.request.Request(proxy.upstream, data=body,
                                                 headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        answer = response.read()
                        status = response.status
                except Exception:
                    answer, status = b"", 502
                if action == "drop":
                    with proxy.lock:
                        proxy.dropped.append(body.decode())
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if proxy.oversize and status == 200:
                    answer = proxy._oversize_answers(body, answer)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _decide(self, methods: list[str], *, batch: bool) -> str:
        with self.lock:
            for method in methods:
                if method in self.refused and (batch or not self.refused[method]):
                    self.refused_count += 1
                    return "refuse"
            for method in methods:
                if self.drops.get(method, 0) > 0:
                    self.drops[method] -= 1
                    return "drop"
        return "forward"

    def _oversize_answers(self, body: bytes, answer: bytes) -> bytes:
        requests, replies = json.loads(body), json.loads(answer)
        single = not isinstance(requests, list)
        requests, replies = ([requests], [replies]) if single else (requests, replies)
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        for request in requests:
            rule = self.oversize.get(request.get("method"))
            params = request.get("params") or [{}]
            data = params[0].get("data", "") if isinstance(params[0], dict) else ""
            if rule and len(data) > rule[0] and request.get("id") in by_id:
                by_id[request["id"]].pop("result", None)
                by_id[request["id"]]["error"] = {"code": rule[1], "message": rule[2]}
                with self.lock:
                    self.oversize_answered += 1
        return json.dumps(replies[0] if single else replies).encode()

    def too_big(self, method: str, *, over_bytes: int, message: str, code: int = -32603) -> None:
        with self.lock:
            self.oversize[method] = (over_bytes, code, message)

    def rate_limit(self, n: int = 1, retry_after: str | None = "1") -> None:
        """Answer the next n requests HTTP 429 with this Retry-After header (None: without one)."""
        with self.lock:
            self.limited += [retry_after] * n

    def drop_answers(self, method: str, n: int = 1) -> None:
        with self.lock:
            self.drops[method] = self.drops.get(method, 0) + n

    def refuse(self, method: str, *, in_batches_only: bool = False) -> None:
        with self.lock:
            self.refused[method] = in_batches_only

    def allow(self, method: str) -> None:
        with self.lock:
            self.refused.pop(method, None)

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.requests = 0

    def snapshot(self) -> tuple[Counter, int]:
        """Calls by method and HTTP requests since the last reset."""
        with self.lock:
            return Counter(self.calls), self.requests

    def __enter__(self) -> "RpcProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class TcpProxy:
    """A byte pump from a local port to `upstream` (host, port). `go_dark()` cuts every open
    connection and refuses new ones until `restore()`: to a client it looks like the server vanished."""

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.dark = threading.Event()
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.refused = 0
        self.cut = 0  # connections go_dark() cut
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)

    def _accept_loop(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.dark.is_set():
                self.refused += 1
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:  # go_dark may have run while this pair was connecting: it must not slip through
                if self.dark.is_set():
                    self.refused += 1
                    client.close()
                    server.close()
                    continue
                self.sockets |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            with self.lock:
                self.sockets -= {src, dst}

    def go_dark(self) -> None:
        with self.lock:
            self.dark.set()
            sockets = list(self.sockets)
            self.cut += len(sockets) // 2  # client and server side of each connection
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restore(self) -> None:
        self.dark.clear()

    def __enter__(self) -> "TcpProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closed.set()
        self.go_dark()
        self.listener.close()


# ---- observations ------------------------------------------------------------------------
def wait_for(predicate, timeout: float = 60, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def transactions(engine):
    from models.tables import ChainTransaction

    with Session(engine) as s:
        return list(s.execute(select(ChainTransaction).order_by(ChainTransaction.nonce, ChainTransaction.id)).scalars())


def attempts(engine, transaction_id: int | None = None):
    from models.tables import TxAttempt

    with Session(engine) as s:
        query = select(TxAttempt).order_by(TxAttempt.id)
        if transaction_id is not None:
            query = query.where(TxAttempt.transaction_id == transaction_id)
        return list(s.execute(query).scalars())


def jobs(engine):
    from models.tables import Job

    with Session(engine) as s:
        return list(s.execute(select(Job).order_by(Job.id)).scalars())


def assert_each_nonce_mined_once(p) -> None:
    """Every recorded attempt hash is known; for each nonce exactly one attempt is mined and it is the
    transaction the chain holds; every other attempt of that nonce is marked replaced."""
    for tx in transactions(p.engine):
        if tx.status == "superseded":
            continue
        tried = attempts(p.engine, tx.id)
        assert tried, f"nonce {tx.nonce} has no recorded attempt"
        mined = [a for a in tried if a.status == "mined"]
        assert len(mined) == 1, f"nonce {tx.nonce}: {len(mined)} mined attempts"
        assert tx.mined_hash == mined[0].tx_hash
        receipt = p.rpc.call("eth_getTransactionReceipt", mined[0].tx_hash)
        assert receipt is not None and int(receipt["blockNumber"], 16) == tx.block_number
        for other in tried:
            if other is not mined[0]:
                assert other.status == "replaced"
                assert p.rpc.call("eth_getTransactionReceipt", other.tx_hash) is None


def assert_no_middle_state(p) -> None:
    counts = p.counts()
    middle = {k: v for k, v in counts.items() if k not in {s.value for s in TERMINAL}}
    assert not middle, f"jobs left in a middle state: {counts}"


def assert_invariants(p, issued: int) -> None:
    """Exactly once on chain, no job in a middle state, no nonce gap, one mined attempt per nonce.
    Jobs are confirmed by the consumer; the signer may record the receipts a moment later."""
    wait_for(lambda: all(t.status != "pending" for t in transactions(p.engine)), 60,
             what="the signer to record every receipt")
    p.assert_exactly_once(issued)
    assert_no_middle_state(p)
    p.assert_no_nonce_gap()
    assert_each_nonce_mined_once(p)


# ---- pipelines ---------------------------------------------------------------------------
FAST_SIGNER = {"BLOCKPROOF_BATCH_SIZE": "5", "BLOCKPROOF_RESEND_AFTER_SECONDS": "2",
               "BLOCKPROOF_RETRY_BACKOFF_SECONDS": "0.5", "BLOCKPROOF_RETRY_BACKOFF_MAX_SECONDS": "2"}


def rows_csv(tmp_path, rows: int, seed: int):
    from tests.harness import write_csv

    return write_csv(tmp_path / f"rows-{seed}.csv", rows, seed=seed)


def pause_mining(p) -> None:
    """Stop Anvil's interval mining: sent transactions wait in the pool until evm_mine or resume."""
    p.chain.rpc("evm_setIntervalMining", 0)


def resume_mining(p, seconds: int = 1) -> None:
    p.chain.rpc("evm_setIntervalMining", seconds)


def in_pool(p, tx_hash: str) -> bool:
    tx = p.rpc.call("eth_getTransactionByHash", tx_hash)
    return tx is not None and tx.get("blockNumber") is None
