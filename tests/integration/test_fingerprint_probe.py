"""The FingerprintProbe runtime code embedded in producers/chain_checks.py is exactly what the pinned solc makes of
producers/contracts/FingerprintProbe.sol: the bytes the upload places on the chain are the reviewed source."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from producers.chain_checks import PROBE_RUNTIME

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("node") is None or not (ROOT / "node_modules" / "solc").exists(),
                    reason="node or the npm solc package missing (npm ci)")
def test_recompiling_the_probe_with_pinned_solc_gives_the_embedded_runtime_code_byte_for_byte():
    result = subprocess.run(["node", str(ROOT / "producers" / "contracts" / "compile_probe.mjs")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    fresh = result.stdout.strip()
    assert len(fresh) > 1000 and fresh.endswith("a164736f6c6343000825000a")  # metadata: solc 0.8.37, no hash
    assert PROBE_RUNTIME == fresh, (
        "PROBE_RUNTIME in producers/chain_checks.py is not the probe's source compiled: run "
        "`node producers/contracts/compile_probe.mjs` and embed its output")
