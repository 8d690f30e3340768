"""Throughput: the seed's serial flow vs the pipeline, on Anvil with 1-second blocks and 30M gas.

    .venv/bin/python bench/throughput.py [--quick] [--full] [--db postgresql|sqlite] [--out PATH]

In one run, each phase on its own fresh Anvil (--block-time 1, --gas-limit 30000000):
  baseline  the seed's write flow against OUR contract: web3.py build_transaction -> sign ->
            send_raw_transaction -> wait_for_transaction_receipt, one issueCredential per tx (50)
  basic     the pipeline (RabbitMQ, signer and consumer as separate processes) against the
            interface-only BlockProofCredentialVaultBasic (no batch call), 2,000 credentials
  full      the pipeline with our contract, 10,000 credentials from a CSV (one document directory
            per batch): from the upload (producers.upload plan + commit) to the last job confirmed;
            like basic and the remote phases at BLOCKPROOF_PACING=max (a burst: every block full)
  sustained 50,000 credentials (--sustained-rows) at the default settings (target pacing): the base fee
            at the end against the start, the mean price paid, beside the burst's (issue 14)
  full-v1   (only when asked) the same against the vault before issue 17 (V1: every credential in storage
            slots, the ABI batch call), to compare with the full phase in one run
  memory    (--full only) 100,000 credentials through the full pipeline; signer and consumer RSS
  basic-remote, full-remote  the same two pipelines with the key in a remote signer (JSON-RPC
            eth_signTransaction, here the node's own dev account), beside the local key's figures

The signer is profiled with `py-spy record --idle --pid` (no code change) during the pipeline phases.
Other BLOCKPROOF_* variables in the environment reach the signer and consumer too.
BLOCKPROOF_* tunables in the environment (BATCH_SIZE, MAX_IN_FLIGHT, MAX_TX_GAS, CONFIRMATIONS...)
are passed to the signer and consumer. Writes bench/results/throughput.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eth_account import Account  # noqa: E402
from eth_utils import keccak  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlmodel import Session  # noqa: E402

import common  # noqa: E402
from chain import vault as vault_codec  # noqa: E402
from blockproof.devchain import DevChain, deploy_dev_environment  # noqa: E402
from contracts.deploy import vault_contract  # noqa: E402

GAS_LIMIT = 30_000_000
FULL_MAX = "full pipeline, max pacing (burst)"
START_BASE_FEE = 10**9
BLOCK_TIME = 1
# the product's defaults where the test harness shortens them (tests/harness.py sets 2 and 0.2)
PRODUCT_DEFAULTS = {"BLOCKPROOF_CONFIRMATIONS": "3", "BLOCKPROOF_CONSUMER_POLL_SECONDS": "0.5"}
FORWARDED = ("BATCH_SIZE", "MAX_IN_FLIGHT", "MAX_IN_FLIGHT_SINGLE", "MAX_TX_GAS", "CONFIRMATIONS", "BASE_FEE_MULTIPLIER",
             "SIGNER_POLL_SECONDS", "CONSUMER_POLL_SECONDS", "RESEND_AFTER_SECONDS", "GETLOGS_CHUNK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# batches sized so that two transactions' gas limits (1.1 x estimate + 20,000) tile a 30M block, and at most
# five blocks' worth in flight so that EIP-1559's base fee cannot outgrow maxFee (2 x base fee) while one waits


def tunables(overrides: dict | None = None) -> dict[str, str]:
    env = dict(PRODUCT_DEFAULTS) | (overrides or {})
    for name in FORWARDED:
        if f"BLOCKPROOF_{name}" in os.environ:
            env[f"BLOCKPROOF_{name}"] = os.environ[f"BLOCKPROOF_{name}"]
    return env


@dataclass
class Result:
    name: str
    contract: str
    credentials: int
    seconds: float = 0.0
    upload_seconds: float | None = None
    gas_per_credential: float = 0.0
    txs: int = 0
    blocks: list = field(default_factory=list)
    steady: list = field(default_factory=list)
    signer_cpu: float | None = None
    consumer_cpu: float | None = None
    anvil_cpu: float | None = None
    bench_cpu: float | None = None
    signer_peak_mb: float | None = None
    consumer_peak_mb: float | None = None
    rss_samples: list = field(default_factory=list)
    profile: dict | None = None
    profile_error: str = ""
    stages: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    load: str = ""
    notes: list = field(default_factory=list)
    exactly_once: str = ""
    fees: dict = field(default_factory=dict)  # pacing figures: base fee start/end/peak, price paid, refusals

    @property
    def rate(self) -> float:
        return self.credentials / self.seconds if self.seconds else 0.0

    def steady_rate(self) -> float | None:
        if len(self.steady) < 2:
            return None
        span = self.steady[-1].timestamp - self.steady[0].timestamp + BLOCK_TIME
        return sum(b.credentials for b in self.steady) / span if span > 0 else None

    def as_json(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("blocks", "steady", "rss_samples")}
        out["rate"] = self.rate
        out["steady_rate"] = self.steady_rate()
        out["blocks"] = [b.__dict__ for b in self.blocks]
        out["steady_blocks"] = [b.number for b in self.steady]
        out["rss_samples"] = self.rss_samples
        if self.profile:
            out["profile"] = {"samples": self.profile["samples"], "running": self.profile["running"],
                              "steps": dict(self.profile["steps"]), "libraries": dict(self.profile["libraries"]),
                              "waits": {k: dict(v) for k, v in self.profile["waits"].items()}}
        return out


def new_chain() -> DevChain:
    return DevChain(block_time=BLOCK_TIME, gas_limit=GAS_LIMIT).start()


def credentials_by_block(rpc, address: str, first: int, last: int) -> Counter:
    logs = rpc.call("eth_getLogs", {"address": address, "fromBlock": hex(first), "toBlock": hex(last),
                                    "topics": [vault_codec.ISSUED_TOPIC]})
    return Counter(int(entry["blockNumber"], 16) for entry in logs)


def chain_figures(result: Result, rpc, address: str, first: int, last: int) -> None:
    per_block = credentials_by_block(rpc, address, first, last)
    rows = common.block_rows(rpc, first, last, address, per_block)
    with_work = [r for r in rows if r.vault_txs]
    if with_work:  # from the first to the last block that carries one of our transactions
        rows = [r for r in rows if with_work[0].number <= r.number <= with_work[-1].number]
    result.blocks = rows
    result.steady = common.steady_state(rows)
    issued = sum(r.credentials for r in rows)
    result.txs = sum(r.vault_txs for r in rows)
    result.gas_per_credential = sum(r.vault_gas for r in rows) / issued if issued else 0.0
    if issued != result.credentials:
        result.notes.append(f"{issued} CredentialIssued events on chain for {result.credentials} credentials")


# ---- 1. the seed's serial flow -----------------------------------------------------------------
def run_baseline(count: int) -> Result:
    """One issueCredential per transaction, each built, signed, sent and awaited before the next."""
    log(f"baseline: seed's serial flow, {count} credentials")
    chain = new_chain()
    try:
        env = deploy_dev_environment(chain)
        w3 = chain.w3
        contract = vault_contract(w3, env.vault_address)
        account = Account.from_key(env.signer_key)
        base = (Path(tempfile.gettempdir()) / "blockproof-bench" / "documents" / "1").resolve().as_uri() + "/"
        first = w3.eth.block_number + 1
        result = Result("seed's serial flow", "ours (issueCredential)", count, load=common.load_average())
        started = time.perf_counter()
        for n in range(1, count + 1):
            request = (env.institution_address, Account.create().address, keccak(text=f"baseline-{n}-{started}"),
                       f"{base}{n + 1}.json", "", 0)
            tx = contract.functions.issueCredential(request).build_transaction({
                "from": account.address, "nonce": w3.eth.get_transaction_count(account.address),
                "chainId": w3.eth.chain_id})
            # web3's estimate is taken against the latest block, where this institution's (issuedAt) record of
            # the previous credential already exists; mined in the next block the call must create a new one and
            # runs out of gas (every second transaction reverted with the bare estimate): add a 20% margin
            tx["gas"] = int(tx["gas"] * 1.2)
            signed = account.sign_transaction(tx)
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
            if receipt["status"] != 1:
                raise RuntimeError(f"baseline issueCredential {n} reverted")
        result.seconds = time.perf_counter() - started
        chain_figures(result, rpc_for(chain), env.vault_address, first, w3.eth.block_number)
        log(f"baseline: {result.rate:.2f} credentials/s")
        return result
    finally:
        chain.stop()


def rpc_for(chain: DevChain):
    from chain.rpc import Rpc

    return Rpc(chain.rpc_url, 60)


# ---- 2-4. the pipeline --------------------------------------------------------------------------
def write_csv(path: Path, rows: int, seed: int) -> Path:
    from tests.harness import write_csv as harness_write_csv

    return harness_write_csv(path, rows, seed=seed)


def make_database(kind: str, workdir: Path):
    from tests.harness import fresh_database, postgres_up

    if kind == "postgresql" and not postgres_up():
        log("PostgreSQL is not reachable: using SQLite")
        kind = "sqlite"
    url, drop = fresh_database(kind, workdir)
    return kind, url, drop


def stage_times(engine, started_wall: float) -> dict:
    """For each state a job reached: seconds after the upload began when 10%, 50% and 100% of jobs got there."""
    from models.tables import JobTransition

    out = {}
    with Session(engine) as s:
        for state in ("queued", "ready", "submitted", "mined", "confirmed"):
            times = sorted(t.timestamp() for t in s.execute(
                select(JobTransition.at).where(JobTransition.to_state == state)).scalars())
            if times:
                pick = lambda q: round(times[min(len(times) - 1, int(q * len(times)))] - started_wall, 1)  # noqa: E731
                out[state] = {"n": len(times), "p10": pick(0.10), "p50": pick(0.50), "p100": round(times[-1] - started_wall, 1)}
    return out


class Sampler(threading.Thread):
    """RSS of the signer and consumer every `every` seconds while a phase runs."""

    def __init__(self, pids: dict[str, int], every: float = 2.0):
        super().__init__(daemon=True)
        self.pids, self.every, self.samples, self.stop_event = pids, every, [], threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        while not self.stop_event.wait(self.every):
            try:
                self.samples.append([round(time.perf_counter() - self.t0, 1)]
                                    + [round(common.rss_mb(pid), 1) for pid in self.pids.values()]
                                    + [round(common.peak_rss_mb(pid), 1) for pid in self.pids.values()])
            except OSError:
                return


def run_pipeline(name: str, artifact: str, rows: int, *, db: str, profile: bool, seed: int,
                 timeout: float, block_time: float = BLOCK_TIME, overrides: dict | None = None,
                 remote_signer: bool = False) -> Result:
    from tests.harness import Pipeline, rabbitmq_up

    if not rabbitmq_up():
        raise SystemExit("RabbitMQ is not reachable on 127.0.0.1:5672: the pipeline phases need it")
    contract = {"BlockProofCredentialVault": "ours (issueCredentialBatchPacked)",
                "BlockProofCredentialVaultV1": "V1, before issue 17 (issueCredentialBatch)"}.get(
        artifact, "Basic (issueCredential only)")
    log(f"{name}: {rows} credentials, {artifact}")
    workdir = Path(tempfile.mkdtemp(prefix="bp-throughput-"))
    csv_path = write_csv(workdir / "graduates.csv", rows, seed)
    db_kind, url, drop = make_database(db, workdir)
    # Anvil keeps every block's state in memory by default (tens of GB over a 100,000-credential run);
    # the pipeline only needs the latest state and the blocks' logs
    chain = DevChain(block_time=block_time, gas_limit=GAS_LIMIT, extra_args=["--prune-history", "256"]).start()
    pipeline = None
    result = Result(name, contract, rows)
    result.notes.append(f"database: {db_kind}")
    if overrides:
        result.notes.append("settings: " + ", ".join(f"{k}={v}" for k, v in overrides.items()))
    profiler = None
    try:
        pipeline = Pipeline(chain=chain, database_url=url, workdir=workdir, artifact_name=artifact, extra_env=tunables(overrides))
        if remote_signer:  # the key stays in the node; every transaction is signed over eth_signTransaction
            pipeline.extra_env.update(BLOCKPROOF_SIGNER_KEY="", BLOCKPROOF_SIGNER_URL=chain.rpc_url,
                                      BLOCKPROOF_SIGNER_ADDRESS=pipeline.env.signer_address)
            result.notes.append("key: remote signer (eth_signTransaction, batched)")
        signer = pipeline.start("signer")
        consumer = pipeline.start("consumer")
        anvil_pid = chain._proc.pid
        deadline = time.monotonic() + 120
        while "consuming queue" not in pipeline.log("signer") or "ready" not in pipeline.log("signer"):
            if time.monotonic() > deadline or signer.poll() is not None:
                raise RuntimeError(f"signer did not start:\n{pipeline.log('signer')[-2000:]}")
            time.sleep(0.2)
        time.sleep(1.0)
        if profile:
            profiler = common.Profiler(signer.pid, workdir / "signer.pyspy.txt")
            if not profiler.start():
                result.profile_error = profiler.error
        cpu0 = {k: common.cpu_seconds(p) for k, p in (("signer", signer.pid), ("consumer", consumer.pid),
                                                       ("bench", os.getpid()))} | {"anvil": common.tree_cpu_seconds(anvil_pid)}
        sampler = Sampler({"signer": signer.pid, "consumer": consumer.pid})
        sampler.start()
        # Anvil's empty blocks since it started have taken the base fee down to a few wei, where 12.5% rounds
        # away; a real chain's sits higher: every phase starts at 1 gwei, so its rise or fall reads as a ratio
        chain.rpc("anvil_setNextBlockBaseFeePerGas", hex(START_BASE_FEE))
        first = chain.w3.eth.block_number + 1
        result.load = common.load_average()
        started_wall = time.time()
        started = time.perf_counter()
        report = pipeline.upload(csv_path)
        result.upload_seconds = time.perf_counter() - started
        log(f"{name}: upload {report.queued} queued in {result.upload_seconds:.1f}s")
        if report.queued != rows:
            result.notes.append(f"upload queued {report.queued} of {rows} rows ({report.invalid} invalid)")
            result.credentials = report.queued
        counts = wait_until_confirmed(pipeline, result.credentials, timeout)
        result.seconds = time.perf_counter() - started
        cpu1 = {k: common.cpu_seconds(p) for k, p in (("signer", signer.pid), ("consumer", consumer.pid),
                                                       ("bench", os.getpid()))} | {"anvil": common.tree_cpu_seconds(anvil_pid)}
        sampler.stop_event.set()
        if profiler:
            profiler.stop()
            if profiler.out.exists():
                result.profile = common.summarize_profile(profiler.out)
            else:
                result.profile_error = profiler.error or "py-spy wrote nothing"
        result.signer_cpu = cpu1["signer"] - cpu0["signer"]
        result.consumer_cpu = cpu1["consumer"] - cpu0["consumer"]
        result.anvil_cpu = cpu1["anvil"] - cpu0["anvil"]
        result.bench_cpu = cpu1["bench"] - cpu0["bench"]
        result.signer_peak_mb = common.peak_rss_mb(signer.pid)
        result.consumer_peak_mb = common.peak_rss_mb(consumer.pid)
        result.rss_samples = sampler.samples
        bumps = pipeline.log("signer").count(": replacement ")
        result.notes.append(f"fee-bump replacements signed: {bumps}")
        result.counts = counts
        result.stages = stage_times(pipeline.engine, started_wall)
        chain_figures(result, rpc_for(chain), pipeline.env.vault_address, first, chain.w3.eth.block_number)
        result.fees = fee_figures(result, pipeline)
        try:
            pipeline.assert_exactly_once(result.credentials)
            pipeline.assert_no_nonce_gap()
            result.exactly_once = "yes (one CredentialIssued per fingerprint, every job confirmed, no nonce gap)"
        except AssertionError as exc:
            result.exactly_once = f"NO: {exc}"
        log(f"{name}: {result.rate:.1f} credentials/s end to end, steady {result.steady_rate() or 0:.1f}/s")
        return result
    finally:
        if profiler:
            profiler.stop()
        if pipeline is not None:
            pipeline.stop_all()
            pipeline.engine.dispose()
        chain.stop()
        try:
            drop()
        except Exception as exc:  # noqa: BLE001
            log(f"could not drop the database: {exc}")


def fee_figures(result: Result, pipeline) -> dict:
    """What the run paid and did to the base fee: the base fee in the first block with a vault transaction
    and after the last one (EIP-1559's rule on that block), its peak, the mean effective gas price paid
    (gas-weighted) and the mean tip in it, and the signs of pricing itself out (fee_too_low answers, stuck
    alerts, attempts at the fee ceiling)."""
    from models.alerts import Alert
    from models.tables import ChainTransaction, TxAttempt
    from workers.signer.pacing import next_base_fee

    settings = pipeline.settings()
    ceiling = int(settings.max_fee_gwei * 10**9)
    base_by_block = {b.number: b.base_fee for b in result.blocks}
    with Session(pipeline.engine) as s:
        txs = [t for t in s.execute(select(ChainTransaction).where(ChainTransaction.status == "mined")).scalars()
               if t.job_count and t.gas_used]
        at_ceiling = sum(1 for a in s.execute(select(TxAttempt)).scalars() if int(a.max_fee_per_gas) >= ceiling)
        stuck = sum(1 for a in s.execute(select(Alert).where(Alert.kind == "stuck_transaction")).scalars())
    gas = sum(t.gas_used for t in txs)
    paid = sum(t.gas_used * int(t.effective_gas_price or 0) for t in txs)
    tips = sum(t.gas_used * (int(t.effective_gas_price or 0) - base_by_block.get(t.block_number, 0)) for t in txs)
    rows = result.blocks
    out = {"pacing": settings.pacing, "fee_too_low": pipeline.log("signer").count("fee_too_low"),
           "stuck_alerts": stuck, "attempts_at_ceiling": at_ceiling}
    if rows and gas:
        last = rows[-1]
        out |= {"base_fee_start": rows[0].base_fee, "base_fee_peak": max(r.base_fee for r in rows),
                "base_fee_end": next_base_fee(last.base_fee, last.gas_used, last.gas_limit),
                "mean_price": paid / gas, "mean_tip": tips / gas, "wei_per_credential": paid / max(result.credentials, 1)}
    return out


def wait_until_confirmed(pipeline, expected: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    terminal = {"confirmed", "failed", "dead"}
    counts: dict = {}
    last_log = 0.0
    while time.monotonic() < deadline:
        counts = pipeline.counts()
        if sum(n for s, n in counts.items() if s in terminal) >= expected:
            return counts
        for role, proc in pipeline.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{role} exited ({proc.returncode}):\n{pipeline.log(role)[-3000:]}")
        if time.monotonic() - last_log > 15:
            rss = {role: f"{common.rss_mb(proc.pid):.0f}/{common.peak_rss_mb(proc.pid):.0f} MB"
                   for role, proc in pipeline.procs.items()}
            log(f"  {counts} RSS now/peak {rss}")
            last_log = time.monotonic()
        time.sleep(0.25)
    raise RuntimeError(f"not confirmed after {timeout}s: {counts}\n{pipeline.log('signer')[-3000:]}")


# ---- the report ---------------------------------------------------------------------------------
def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def fmt(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def utilisation(rows) -> tuple[float | None, float | None, float | None]:
    if not rows:
        return None, None, None
    u = [r.utilisation for r in rows]
    return statistics.mean(u), min(u), max(u)


def render(results: list[Result], info: dict, command: str, load_start: str, load_end: str) -> str:
    base = next((r for r in results if r.name == "seed's serial flow"), None)
    lines = [
        "# Throughput: the pipeline against the seed's serial flow", "",
        f"Command: `{command}`  ",
        f"Machine: {info['uname']}, {info['nproc']} CPUs, Python {info['python']}; **shared** with other engineers' "
        f"test runs (load average 1/5/15 min at start {load_start}, at end {load_end})  ",
        f"Date: {info['date']}; code measured: commit {info['commit']}  ",
        f"Chain: {info['anvil']}, a fresh Anvil per phase, `--block-time {BLOCK_TIME}`, `--gas-limit {GAS_LIMIT:,}`  ",
        f"Settings passed to the signer and consumer: `{json.dumps(tunables())}` (everything else the defaults of "
        "blockproof/settings.py)", "",
        "What limits each run: docs/throughput.md.", "",
        "Credentials/s is end to end: for the baseline from the first build_transaction to the last receipt; for the "
        "pipeline from the upload command (producers.upload plan + commit, in process: CSV validation, fingerprints, "
        "documents, bulk insert, publishing) to the moment the event consumer has confirmed the last job "
        "(its event at the configured depth). *Steady* is the on-chain rate over the steady-state blocks. Gas per "
        "credential is the vault transactions' gasUsed over the credentials they issued. Block utilisation is "
        "gasUsed/gasLimit per block: *steady state* = the blocks from the one where the cumulative count of "
        "issued credentials passes 10% of the total to the one where it reaches 90% (ramp-up and tail excluded); "
        "*all* = every block from the first to the last one carrying a vault transaction.", "",
        "| run | contract | credentials | seconds | credentials/s | × baseline | steady credentials/s | gas/credential "
        "| txs | block utilisation, steady (mean / min / max) | utilisation, all | credentials per steady block |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|",
    ]
    for r in results:
        mean, lo, hi = utilisation(r.steady)
        all_mean = utilisation(r.blocks)[0]
        ratio = f"{r.rate / base.rate:,.1f}×" if base and base.rate else "n/a"
        per_block = statistics.mean(b.credentials for b in r.steady) if r.steady else None
        lines.append(
            f"| {r.name} | {r.contract} | {r.credentials:,} | {r.seconds:,.1f} | **{r.rate:,.1f}** | {ratio} | "
            f"{fmt(r.steady_rate())} | {r.gas_per_credential:,.0f} | {r.txs:,} | "
            f"{pct(mean)} / {pct(lo)} / {pct(hi)} | {pct(all_mean)} | {fmt(per_block)} |")
    lines.append("")
    basic = next((r for r in results if r.contract.startswith("Basic")), None)
    if basic and basic.gas_per_credential:
        ceiling = GAS_LIMIT / basic.gas_per_credential / BLOCK_TIME
        lines += [f"Basic's block ceiling at its measured {basic.gas_per_credential:,.0f} gas/credential: "
                  f"{ceiling:,.1f} credentials/s; the pipeline reached {basic.rate / ceiling:.0%} of it end to end "
                  f"and {(basic.steady_rate() or 0) / ceiling:.0%} in the steady state.", ""]
    lines += pacing_table(results)
    pipelines = [r for r in results if r.signer_cpu is not None]
    if pipelines:
        lines += ["## Where the time goes", "",
                  "CPU seconds over the whole phase (utime+stime from /proc; the machine has "
                  f"{info['nproc']} cores shared by all of these and by other engineers' tests).", "",
                  "| run | upload (s) | signer CPU (s) | signer CPU per tx (ms) | signer CPU per credential (ms) | "
                  "consumer CPU (s) | Anvil CPU (s) | upload process CPU (s) | signer peak RSS (MB) | consumer peak RSS (MB) |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for r in pipelines:
            lines.append(f"| {r.name} | {fmt(r.upload_seconds)} | {fmt(r.signer_cpu)} | "
                         f"{fmt(1000 * r.signer_cpu / r.txs if r.txs else None)} | "
                         f"{fmt(1000 * r.signer_cpu / r.credentials, 2)} | {fmt(r.consumer_cpu)} | {fmt(r.anvil_cpu)} | "
                         f"{fmt(r.bench_cpu)} | {fmt(r.signer_peak_mb)} | {fmt(r.consumer_peak_mb)} |")
        lines += ["", "Seconds after the upload began at which 10% / 50% / 100% of the jobs had reached each state "
                  "(from job_transitions):", "",
                  "| run | " + " | ".join(("queued", "ready", "submitted", "mined", "confirmed")) + " |",
                  "|---|---|---|---|---|---|"]
        for r in pipelines:
            cells = [f"{v['p10']} / {v['p50']} / {v['p100']}" if (v := r.stages.get(s)) else "-"
                     for s in ("queued", "ready", "submitted", "mined", "confirmed")]
            lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
        lines.append("")
        for r in pipelines:
            lines += [f"### Signer profile: {r.name}", ""]
            if not r.profile:
                lines += [f"(no profile: {r.profile_error or 'disabled'})", ""]
                continue
            total, running = r.profile["samples"], r.profile["running"]
            kinds = ("running Python", "waiting for PostgreSQL", "waiting for the node (JSON-RPC)")
            lines += [f"`py-spy record --idle --nonblocking --pid` at 100 Hz over the whole phase: {total:,} samples of "
                      f"the intake thread (dramatiq worker: accept_jobs) and the signer loop thread, of which "
                      f"{running:,} running Python ({running / 100:,.1f} s; /proc says {fmt(r.signer_cpu)} s of CPU "
                      f"for the whole process) and the rest waiting for a reply or for work.", "",
                      "| thread › loop phase › step | share of samples | " + " | ".join(kinds) + " | other waits |",
                      "|---|--:|--:|--:|--:|--:|"]
            for label, n in r.profile["steps"].most_common(16):
                w = r.profile["waits"][label]
                other = n - sum(w.get(k, 0) for k in kinds)
                lines.append(f"| {label} | {n / total:.1%} | " + " | ".join(f"{w.get(k, 0) / total:.1%}" for k in kinds)
                             + f" | {other / total:.1%} |")
            lines += ["", "Running samples by library (innermost frame):", "", "| library | share of running |", "|---|--:|"]
            lines += [f"| {k} | {v / max(running, 1):.1%} |" for k, v in r.profile["libraries"].most_common()]
            lines.append("")
    for r in results:
        extra = [n for n in r.notes] + ([f"exactly once: {r.exactly_once}"] if r.exactly_once else [])
        extra += [f"final job counts: {r.counts}"] if r.counts else []
        extra += [f"load average at the phase's start: {r.load}"] if r.load else []
        if r.steady:
            spread = Counter(b.vault_txs for b in r.steady)
            extra.append("steady blocks by vault transactions: " + ", ".join(
                f"{k} tx: {v}" for k, v in sorted(spread.items())))
        if r.rss_samples:
            signer = [s[1] for s in r.rss_samples]
            consumer = [s[2] for s in r.rss_samples]
            thirds = max(1, len(signer) // 3)
            extra.append(f"RSS samples every 2 s: signer {min(signer):.0f}-{max(signer):.0f} MB (first third max "
                         f"{max(signer[:thirds]):.0f}, last third max {max(signer[-thirds:]):.0f}); consumer "
                         f"{min(consumer):.0f}-{max(consumer):.0f} MB (first third max {max(consumer[:thirds]):.0f}, "
                         f"last third max {max(consumer[-thirds:]):.0f})")
        if extra:
            lines += [f"- {r.name}: " + "; ".join(extra)]
    lines.append("")
    return "\n".join(lines)


def gwei(wei: float | None) -> str:
    return "n/a" if wei is None else f"{wei / 10**9:,.4g}"


def pacing_table(results: list[Result]) -> list[str]:
    """Issue 14, point 4: the sustained run at the default (target) pacing beside the burst at max pacing."""
    paced = [r for r in results if r.fees.get("base_fee_start")]
    if not paced:
        return []
    lines = ["## Pacing: the base fee and the price paid", "",
             "EIP-1559 raises the base fee by up to 12.5% after a block fuller than its target (half the gas limit). "
             "*target* pacing (the default) keeps the blocks our transactions fill near the target; *max* sends as "
             "fast as `max_in_flight` allows. Each phase's chain is set to a base fee of 1 gwei just before its upload "
             "(Anvil's idle blocks would have taken it down to a few wei). Base fee at the start: in the first block carrying a vault transaction; "
             "at the end: the one after the last (EIP-1559's rule on it). Mean price: the effective gas price paid, "
             "weighted by gas, over every mined vault transaction; *bound* = 1.5 × (start base fee + the mean tip "
             "paid). Target ceiling: half a block's gas a block ÷ gas per credential.", "",
             "| run | pacing | credentials | credentials/s | target ceiling (credentials/s) | of the ceiling | "
             "base fee start (gwei) | end (gwei) | end / start | peak / start | mean price (gwei) | mean price / bound "
             "| fee per credential (gwei) | fee_too_low answers | stuck alerts | attempts at the fee ceiling |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in paced:
        f = r.fees
        start, end, peak = f["base_fee_start"], f["base_fee_end"], f["base_fee_peak"]
        ceiling = GAS_LIMIT / 2 / BLOCK_TIME / r.gas_per_credential if r.gas_per_credential else None
        bound = 1.5 * (start + f["mean_tip"])
        lines.append(
            f"| {r.name} | {f['pacing']} | {r.credentials:,} | {r.rate:,.1f} | {fmt(ceiling)} | "
            f"{pct(r.rate / ceiling if ceiling else None)} | {gwei(start)} | {gwei(end)} | {end / start:,.2f}× | "
            f"{peak / start:,.2f}× | {gwei(f['mean_price'])} | {f['mean_price'] / bound:,.2f} | "
            f"{f['wei_per_credential'] / 10**9:,.0f} | {f['fee_too_low']:,} | {f['stuck_alerts']} | "
            f"{f['attempts_at_ceiling']:,} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (10 / 300 / 2,000): a smoke run")
    parser.add_argument("--full", action="store_true", help="also the 100,000-credential memory-bound run")
    parser.add_argument("--memory-rows", type=int, default=100_000)
    parser.add_argument("--only", default="baseline,basic,full,sustained,basic-remote,full-remote",
                        help="comma list of phases: baseline,basic,full,sustained,basic-remote,full-remote,full-v1,"
                             "memory")
    parser.add_argument("--sustained-rows", type=int, default=50_000)
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "throughput.md"))
    parser.add_argument("--json", default=str(Path(tempfile.gettempdir()) / "throughput.json"),
                        help="raw figures, per block and per phase")
    args = parser.parse_args(argv)
    phases = set(args.only.split(",")) | ({"memory"} if args.full else set())
    n_base, n_basic, n_full = (10, 300, 2_000) if args.quick else (50, 2_000, 10_000)
    n_sustained = 600 if args.quick else args.sustained_rows
    burst = {"BLOCKPROOF_PACING": "max"}  # today's behaviour before pacing: every block full
    info = common.machine()
    load_start = common.load_average()
    results: list[Result] = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = ".venv/bin/python bench/throughput.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))

    def save() -> str:  # after every phase: a later failure keeps what was measured
        text = render(results, info, command, load_start, common.load_average())
        out.write_text(text)
        Path(args.json).write_text(json.dumps([r.as_json() for r in results], indent=1, default=str))
        return text

    plan = [
        ("baseline", lambda: run_baseline(n_base)),
        ("basic", lambda: run_pipeline("pipeline, interface-only contract", "BlockProofCredentialVaultBasic", n_basic,
                                       db=args.db, profile=not args.no_profile, seed=11, timeout=max(600, n_basic),
                                       overrides=burst)),
        ("full", lambda: run_pipeline(FULL_MAX, "BlockProofCredentialVault", n_full,
                                      db=args.db, profile=not args.no_profile, seed=12, timeout=max(900, n_full / 5),
                                      overrides=burst)),
        ("sustained", lambda: run_pipeline(f"sustained, {n_sustained:,} credentials, default settings (target pacing)",
                                           "BlockProofCredentialVault", n_sustained, db=args.db, profile=False,
                                           seed=16, timeout=max(900, n_sustained / 20))),
        ("basic-remote", lambda: run_pipeline("pipeline, interface-only contract, remote signer",
                                              "BlockProofCredentialVaultBasic", n_basic, db=args.db, profile=False,
                                              seed=14, timeout=max(600, n_basic), remote_signer=True,
                                              overrides=burst)),
        ("full-remote", lambda: run_pipeline("full pipeline, remote signer, max pacing", "BlockProofCredentialVault",
                                             n_full, db=args.db, profile=False, seed=15, timeout=max(900, n_full / 5),
                                             remote_signer=True, overrides=burst)),
        ("full-v1", lambda: run_pipeline("full pipeline, previous vault (V1)", "BlockProofCredentialVaultV1", n_full,
                                         db=args.db, profile=not args.no_profile, seed=12,
                                         timeout=max(900, n_full / 5))),
        ("memory", lambda: run_pipeline(f"memory bound, {args.memory_rows:,} credentials, default settings",
                                        "BlockProofCredentialVault", args.memory_rows, db=args.db, profile=False,
                                        seed=13, timeout=max(3600, args.memory_rows / 20))),
    ]
    text = ""
    for phase, run in plan:
        if phase in phases:
            results.append(run())
            text = save()
    text = text + remote_vs_local(results)
    out.write_text(text)
    print(text)
    return 0


def local_signing_ms(count: int = 500) -> float:
    """Milliseconds per type-2 transaction signed with a local key (eth-account, coincurve when installed)."""
    from eth_account import Account

    account = Account.create()
    tx = {"type": 2, "chainId": 31337, "to": account.address, "value": 0, "data": "0x" + "ab" * 2_000,
          "gas": 15_000_000, "maxFeePerGas": 3 * 10**9, "maxPriorityFeePerGas": 10**9}
    started = time.perf_counter()
    for nonce in range(count):
        account.sign_transaction(tx | {"nonce": nonce})
    return (time.perf_counter() - started) * 1000 / count


def remote_vs_local(results: list[Result]) -> str:
    """The remote signer's end-to-end rate as a share of the local key's, measured in this run (issue 13's
    goals: >= 90% for the batch pipeline, >= 70% for one credential per transaction)."""
    by_name = {r.name: r for r in results}
    pairs = [(FULL_MAX, "full pipeline, remote signer, max pacing", 0.9),
             ("pipeline, interface-only contract", "pipeline, interface-only contract, remote signer", 0.7)]
    lines = ["", "## Remote signer against the local key (same run)", "",
             f"Local signing: {local_signing_ms():.2f} ms per transaction (500 type-2 transactions, 2 kB of call data).",
             "", "| pipeline | local key, credentials/s | remote signer, credentials/s | remote / local | goal |",
             "| --- | --: | --: | --: | --: |"]
    for local, remote, goal in pairs:
        if local in by_name and remote in by_name:
            a, b = by_name[local].rate, by_name[remote].rate
            lines.append(f"| {local} | {a:.1f} | {b:.1f} | {b / a:.0%} | >= {goal:.0%} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
