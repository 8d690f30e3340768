"""Every benchmark script has a --quick smoke run: it completes against the real services, prints its
table, and leaves the committed results (bench/results, BENCHMARKS.md) untouched."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from blockproof.devchain import anvil_available
from tests.conftest import require
from tests.harness import postgres_up, rabbitmq_up

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = [ROOT / "BENCHMARKS.md", *sorted((ROOT / "bench" / "results").glob("*"))]

# script -> (the header of the table it prints, services it needs)
BENCHES = {
    "gas": ("| operation | URIs | ours (gas/credential) |", ()),
    "ingest": ("| indexer | events stored |", ()),
    "csv_ingest": ("| | rows | time | per row | peak memory |", ("rabbitmq",)),
    "verify_load": ("| requests | rate (req/s) |", ()),
    "throughput": ("| run | contract | credentials |", ("rabbitmq", "postgresql")),
    "export": ("| export | rows | time |", ("postgresql",)),
    "rpc_budget": ("| configuration | idle calls/min |", ("rabbitmq",)),
}


def _fingerprints() -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in COMMITTED if p.is_file()}


def _require(services) -> None:
    require(anvil_available(), "Anvil (npm ci)")
    if "rabbitmq" in services:
        require(rabbitmq_up(), "RabbitMQ at 127.0.0.1:5672")
    if "postgresql" in services:
        require(postgres_up(), "PostgreSQL at 127.0.0.1:5432")


def _table_rows(stdout: str, header: str) -> list[str]:
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(header)), None)
    assert start is not None, f"no table with header {header!r} in the output:\n{stdout[-2000:]}"
    rows = []
    for line in lines[start + 2:]:  # after the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def _run(args: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=480)
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


@pytest.mark.parametrize("name", list(BENCHES))
def test_each_bench_script_in_quick_mode_prints_its_table_and_writes_no_committed_result(name, tmp_path):
    header, services = BENCHES[name]
    _require(services)
    before = _fingerprints()
    args = [f"bench/{name}.py", "--quick"]
    if name == "throughput":  # writes its results in every mode: send them here
        args += ["--out", str(tmp_path / "throughput.md"), "--json", str(tmp_path / "throughput.json")]
    result = _run(args)
    assert _table_rows(result.stdout, header), f"{name} printed an empty table"
    assert _fingerprints() == before, "a quick run changed bench/results or BENCHMARKS.md"


def test_run_all_in_quick_mode_runs_the_chosen_scripts_quickly_and_leaves_benchmarks_md_alone():
    _require(())
    before = _fingerprints()
    result = _run(["bench/run_all.py", "--quick", "--only", "gas"])
    assert _table_rows(result.stdout, BENCHES["gas"][0])
    assert "== bench/gas.py" in result.stderr and "== bench/ingest.py" not in result.stderr
    assert _fingerprints() == before
