"""Run every benchmark (or only assemble their results) and write BENCHMARKS.md.

Each bench script writes bench/results/<name>.md with its command, machine, date and table;
this script puts them together in a fixed order. --quick runs every script's own --quick smoke run
instead, their results into a temporary directory, and leaves bench/results and BENCHMARKS.md alone.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ORDER = [
    ("gas", "bench/gas.py", "Gas per credential (issues 2 and 17)"),
    ("throughput", "bench/throughput.py", "Throughput against the seed's serial flow (issue 8)"),
    ("ingest", "bench/ingest.py", "Event consumer catch-up (issue 5)"),
    ("csv_ingest", "bench/csv_ingest.py", "CSV upload at scale (issue 6)"),
    ("verify", "bench/verify_load.py", "Verify endpoint under load (issue 7)"),
    ("export", "bench/export.py", "Results export (issue 16)"),
    ("rpc_budget", "bench/rpc_budget.py", "JSON-RPC calls, idle and busy (issue 14)"),
]


def nested(text: str) -> str:
    """A result file's headings one level below its section's (a file's own title is dropped: the section
    names what it measures)."""
    import re

    lines = text.splitlines()
    if lines and re.match(r"^# ", lines[0]):
        lines = lines[1:]
    return re.sub(r"(?m)^(#{1,5}) ", lambda m: "#" * (len(m.group(1)) + 2) + " " if len(m.group(1)) == 1
                  else "#" * (len(m.group(1)) + 1) + " ", "\n".join(lines)).strip()


def assemble() -> str:
    parts = ["# Benchmarks", "",
             "Produced by `make bench` (`.venv/bin/python bench/run_all.py`); each section names the command "
             "that produced it, the machine and the date. This machine is shared and noisy: compare the "
             "ratios measured side by side in one run, not absolute figures across runs.", ""]
    for name, script, title in ORDER:
        path = RESULTS / f"{name}.md"
        parts.append(f"## {title}")
        parts.append("")
        parts.append(nested(path.read_text().strip()) if path.exists() else f"_Not yet measured: run `{script}`._")
        parts.append("")
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assemble-only", action="store_true", help="only rebuild BENCHMARKS.md from bench/results")
    parser.add_argument("--quick", action="store_true", help="every script's smoke run; writes nothing here")
    parser.add_argument("--only", help="comma list of benchmarks to run: " + ",".join(name for name, _, _ in ORDER))
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else {name for name, _, _ in ORDER}
    unknown = only - {name for name, _, _ in ORDER}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    failed = []
    scratch = Path(tempfile.mkdtemp(prefix="bench-quick-")) if args.quick else None
    if not args.assemble_only:
        for name, script, _ in ORDER:
            if name not in only:
                continue
            print(f"== {script}", file=sys.stderr)
            command = [sys.executable, str(ROOT / script)]
            if scratch is not None:
                command += ["--quick", "--out", str(scratch / f"{name}.md")]
                if name == "throughput":
                    command += ["--json", str(scratch / "throughput.json")]
            if subprocess.run(command, cwd=ROOT).returncode != 0:
                failed.append(script)
    if scratch is None:
        (ROOT / "BENCHMARKS.md").write_text(assemble())
        print("wrote BENCHMARKS.md", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
