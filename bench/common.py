"""Shared benchmark helpers: the machine, a process's CPU and memory, block statistics, py-spy."""
from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---- the machine ---------------------------------------------------------------------------
def machine() -> dict[str, str]:
    from blockproof.devchain import ANVIL_BIN

    try:
        anvil = subprocess.run([str(ANVIL_BIN), "--version"], capture_output=True, text=True, timeout=20).stdout
        anvil = anvil.strip().splitlines()[0] if anvil.strip() else "?"
    except Exception:  # noqa: BLE001 - informational only
        anvil = "?"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                                timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        commit = ""
    return {
        "commit": os.environ.get("BENCH_COMMIT") or commit or "?",
        "uname": " ".join(platform.uname()[i] for i in (0, 2, 4)),
        "nproc": str(os.cpu_count()),
        "python": platform.python_version(),
        "anvil": anvil,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


# ---- one process ---------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live descendants (Anvil runs under a node launcher)."""
    total = 0.0
    for p in [pid] + children(pid):
        try:
            total += tree_cpu_seconds(p) if p != pid else cpu_seconds(p)
        except OSError:
            pass
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_mb(pid: int) -> float:
    return _status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the resident set's high-water mark over the process's life."""
    return _status_kb(pid, "VmHWM") / 1024


# ---- blocks --------------------------------------------------------------------------------
@dataclass
class BlockRow:
    number: int
    timestamp: int
    gas_used: int
    gas_limit: int
    txs: int
    vault_txs: int
    vault_gas: int
    credentials: int
    base_fee: int = 0

    @property
    def utilisation(self) -> float:
        return self.gas_used / self.gas_limit


def block_rows(rpc, first: int, last: int, vault: str, credentials_per_block: Counter) -> list[BlockRow]:
    """Per block: gas used and limit, transactions, the vault's share (eth_getBlockReceipts)."""
    vault = vault.lower()
    rows = []
    numbers = list(range(first, last + 1))
    for start in range(0, len(numbers), 50):
        part = numbers[start : start + 50]
        replies = rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in part]
                            + [("eth_getBlockReceipts", [hex(n)]) for n in part])
        blocks, receipts = replies[: len(part)], replies[len(part):]
        for n, block, recs in zip(part, blocks, receipts):
            mine = [r for r in recs if (r.get("to") or "").lower() == vault]
            rows.append(BlockRow(n, int(block["timestamp"], 16), int(block["gasUsed"], 16), int(block["gasLimit"], 16),
                                 len(block["transactions"]), len(mine), sum(int(r["gasUsed"], 16) for r in mine),
                                 credentials_per_block.get(n, 0), int(block.get("baseFeePerGas", "0x0"), 16)))
    return rows


def steady_state(rows: list[BlockRow], low: float = 0.10, high: float = 0.90) -> list[BlockRow]:
    """The blocks between the one where the cumulative credentials pass `low` of the total and the one where
    they reach `high`: ramp-up (queue filling, first simulations) and tail (last partial batches) excluded."""
    total = sum(r.credentials for r in rows)
    if not total:
        return []
    out, running = [], 0
    for r in rows:
        before = running
        running += r.credentials
        if before >= low * total and before < high * total:
            out.append(r)
    return out


# ---- py-spy --------------------------------------------------------------------------------
@dataclass
class Profiler:
    """`py-spy record --pid` against a running process (no code change in it), raw collapsed stacks."""
    pid: int
    out: Path
    rate: int = 100
    proc: subprocess.Popen | None = None
    error: str = ""

    def start(self) -> bool:
        exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if not exe:
            self.error = "py-spy not installed (pip install -e .[test])"
            return False
        self.proc = subprocess.Popen([exe, "record", "--pid", str(self.pid), "--rate", str(self.rate), "--nonblocking", "--idle",
                                      "--format", "raw", "--output", str(self.out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return True

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                _, err = self.proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, err = self.proc.communicate()
            if not self.out.exists():
                self.error = (err or "")[-500:]


FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^():]+)(?::\d+)?\)$")

# what the signer process does: its thread (intake = the dramatiq worker's accept_jobs; loop = the signer
# thread), then the deepest application function on the stack that matches
CONTEXTS = [("intake", ("intake.py", "accept")), ("loop", ("loop.py", "run"))]
PHASES = [("fill", ("loop.py", "fill")), ("track", ("loop.py", "track")),
          ("refresh chain facts", ("loop.py", "refresh_chain_facts"))]
STEPS = [
    ("pick ready jobs (packer.next_ready_jobs)", ("packer.py", "next_ready_jobs")),
    ("encode calldata (packer)", ("packer.py", "build_call")),
    ("encode calldata (packer)", ("packer.py", "single_calls")),
    ("simulate (eth_call / estimateGas)", ("simulate.py", "simulate_many")),
    ("decode batch result", ("loop.py", "_drop_skipped")),
    ("sign (sender.new_attempt)", ("sender.py", "new_attempt")),
    ("job transitions (transition_many)", ("transitions.py", "transition_many")),
    ("broadcast (eth_sendRawTransaction)", ("loop.py", "_send")),
    ("reserve nonce", ("nonce.py", "reserve")),
    ("write-ahead commit, other", ("loop.py", "_sign_and_send")),
    ("in-flight count", ("loop.py", "in_flight")),
    ("JSON-RPC batch round trip (rpc.batch)", ("rpc.py", "batch")),
    ("record mined (tracker.record_mined)", ("tracker.py", "record_mined")),
]
LIBRARIES = [
    ("signing (eth_account / eth_keys / coincurve)", ("eth_account", "eth_keys", "coincurve", "rlp", "eth_rlp")),
    ("ABI encode/decode (eth_abi)", ("eth_abi",)),
    ("database (SQLAlchemy + driver)", ("sqlalchemy", "psycopg", "sqlite3", "sqlmodel")),
    ("JSON-RPC over HTTP (requests, json)", ("requests", "urllib3", "http/client", "socket", "json/", "ssl")),
    ("RabbitMQ (pika, dramatiq)", ("pika", "dramatiq")),
    ("hashing (keccak)", ("eth_hash", "pycryptodome", "Crypto")),
    ("logging", ("logging/",)),
]


def _is(func: str, name: str) -> bool:
    return func == name or func.endswith("." + name)  # py-spy names methods Class.method


def _parse(line: str) -> tuple[list[tuple[str, str]], int]:
    stack, _, count = line.rstrip().rpartition(" ")
    frames = []
    for part in stack.split(";"):
        m = FRAME.match(part.strip())
        frames.append((m["func"], m["file"]) if m else (part.strip(), ""))
    return frames, int(count)


WAITS = (("waiting for PostgreSQL", ("psycopg", "sqlite3")), ("waiting for the node (JSON-RPC)", ("socket.py", "http/client")),
         ("waiting for RabbitMQ", ("pika", "select.py", "selectors.py")))
IDLE_LEAVES = ("Condition.wait", "Event.wait", "sleep", "select", "poll", "epoll", "Lock.acquire")


def _wait_kind(frames: list[tuple[str, str]]) -> str:
    """What a sample is blocked on, from its innermost frames, or 'running' when it is computing."""
    func, file = frames[-1]
    if func in ("Connection.wait", "wait") and "psycopg" in file:
        return "waiting for PostgreSQL"
    if func in ("SocketIO.readinto", "readinto", "recv_into") or "socket.py" in file:
        stack = " ".join(f for _, f in frames)
        if "psycopg" in stack:
            return "waiting for PostgreSQL"
        return "waiting for RabbitMQ" if "pika" in stack else "waiting for the node (JSON-RPC)"
    if any(func.endswith(leaf) for leaf in IDLE_LEAVES) or "selectors.py" in file:
        return "idle (sleeping / waiting for work)"
    return "running Python"


def summarize_profile(path: Path) -> dict:
    """py-spy --idle samples, by thread and step (deepest matching project function), split into running and
    waiting; and the running samples by library (innermost match)."""
    steps: Counter = Counter()
    waits: dict[str, Counter] = {}
    libs: Counter = Counter()
    total = running = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        frames, count = _parse(line)
        context = next((name for name, (f, fn) in CONTEXTS if any(f in file and _is(func, fn) for func, file in frames)),
                       None)
        if context is None:
            continue  # the main thread waiting for a signal, broker heartbeats: idle by design
        total += count
        step = ""
        for func, file in frames:  # outermost first: the deepest match wins
            hit = next((name for name, (f, fn) in STEPS if f in file and _is(func, fn)), None)
            if hit:
                step = hit
        phase = next((name for func, file in frames for name, (f, fn) in PHASES if f in file and _is(func, fn)), "")
        label = f"{context} › {phase + ' › ' if phase and context == 'loop' else ''}{step or 'other'}"
        kind = _wait_kind(frames)
        steps[label] += count
        waits.setdefault(label, Counter())[kind] += count
        if kind != "running Python":
            continue
        running += count
        lib = "Python code of the project / other"
        for func, file in reversed(frames):  # innermost first
            hit = next((name for name, needles in LIBRARIES if any(n in file for n in needles)), None)
            if hit:
                lib = hit
                break
        libs[lib] += count
    return {"samples": total, "running": running, "steps": steps, "waits": waits, "libraries": libs}
