"""The committed contract artifacts are exactly what the pinned solc produces from the sources."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from contracts.artifacts import ARTIFACT_NAMES, BUILD_DIR, L1_FEE_ORACLE_STUB, load_artifact

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("node") is None or not (ROOT / "node_modules" / "solc").exists(),
                    reason="node or the npm solc package missing (npm ci)")
def test_recompiling_with_pinned_solc_reproduces_committed_artifacts_byte_for_byte(tmp_path):
    result = subprocess.run(["node", str(ROOT / "contracts" / "compile.mjs"), "--out", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name in (*ARTIFACT_NAMES, L1_FEE_ORACLE_STUB):
        fresh = (tmp_path / f"{name}.json").read_text()
        committed = (BUILD_DIR / f"{name}.json").read_text()
        assert fresh == committed, (
            f"contracts/build/{name}.json is stale or not reproducible: run `node contracts/compile.mjs` and commit")


def test_artifacts_record_compiler_and_settings():
    for name in ARTIFACT_NAMES:
        art = load_artifact(name)
        assert art.name == name
        assert art.compiler["version"].startswith("0.8.37+")
        assert art.settings["optimizer"] == {"enabled": True, "runs": 10000}
        assert art.bytecode.startswith("0x60") and len(art.bytecode) > 1000
