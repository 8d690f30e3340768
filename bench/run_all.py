"""Run every benchmark (or only assemble their results) and write BENCHMARKS.md.

Each bench script writes bench/results/<name>.md with its command, machine, date and table;
this script puts them together in a fixed order.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ORDER = [
    ("gas", "bench/gas.py", "Gas per credential (issue 2)"),
    ("throughput", "bench/throughput.py", "Throughput against the seed's serial flow (issue 8)"),
    ("ingest", "bench/ingest.py", "Event consumer catch-up (issue 5)"),
    ("csv_ingest", "bench/csv_ingest.py", "CSV upload at scale (issue 6)"),
    ("verify", "bench/verify_load.py", "Verify endpoint under load (issue 7)"),
]


def assemble() -> str:
    parts = ["# Benchmarks", "",
             "Produced by `make bench` (`.venv/bin/python bench/run_all.py`); each section names the command "
             "that produced it, the machine and the date. This machine is shared and noisy: compare the "
             "ratios measured side by side in one run, not absolute figures across runs.", ""]
    for name, script, title in ORDER:
        path = RESULTS / f"{name}.md"
        parts.append(f"## {title}")
        parts.append("")
        parts.append(path.read_text().strip() if path.exists() else f"_Not yet measured: run `{script}`._")
        parts.append("")
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assemble-only", action="store_true", help="only rebuild BENCHMARKS.md from bench/results")
    args = parser.parse_args()
    failed = []
    if not args.assemble_only:
        for name, script, _ in ORDER:
            print(f"== {script}", file=sys.stderr)
            if subprocess.run([sys.executable, str(ROOT / script)], cwd=ROOT).returncode != 0:
                failed.append(script)
    (ROOT / "BENCHMARKS.md").write_text(assemble())
    print("wrote BENCHMARKS.md", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
