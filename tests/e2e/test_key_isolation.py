"""Only the signer holds the signing key. The web, the consumer, `upload` and `status` run in a working directory
whose var/dev.env (as `blockproof chain` wrote it) contains BLOCKPROOF_SIGNER_KEY: none of them keeps it, neither in
the settings they build nor in any object they hold afterwards; the signer still starts with it."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid

import pytest

from tests.faults import wait_for
from tests.harness import BROKER_URL, delete_queue

# In the child: build the settings the way the role's entrypoint does, then look for any 64-hex-digit string
# whose hash is the key's, in every object the garbage collector tracks and one level below.
PROBE = r'''
import gc, hashlib, re, sys
role, digest = sys.argv[1], sys.argv[2]
if role == "web":
    from web.app import create_app
    settings = create_app(announce=None).state.settings
else:
    from blockproof.cli import _context
    settings, engine = _context()
HEX = re.compile(r"[0-9a-fA-F]{64}")
def holds_key(value):
    from pydantic import SecretStr
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return isinstance(value, str) and any(
        hashlib.sha256(m.encode()).hexdigest() == digest for m in HEX.findall(value))
holders = set()
for obj in gc.get_objects():
    for ref in [obj, *gc.get_referents(obj)]:
        inner = gc.get_referents(ref) if isinstance(ref, (dict, list, tuple)) else []
        if holds_key(ref) or any(holds_key(x) for x in inner):
            holders.add(type(obj).__name__)
print("settings fields:", sorted(type(settings).model_fields))
print("holders:", sorted(holders))
'''


@pytest.fixture
def dev_workdir(devchain, tmp_path):
    from blockproof.devchain import deploy_dev_environment
    from blockproof.devchain_cli import write_dev_env

    env = deploy_dev_environment(devchain)
    write_dev_env(devchain.rpc_url, env, 0, path=tmp_path / "var" / "dev.env")
    with open(tmp_path / "var" / "dev.env", "a") as f:
        f.write(f"DATABASE_URL=sqlite:///{tmp_path / 'blockproof.db'}\n")
    assert env.signer_key in (tmp_path / "var" / "dev.env").read_text()
    return tmp_path, env


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("BLOCKPROOF_") and k != "DATABASE_URL"}


@pytest.mark.parametrize("role", ["web", "consumer", "upload", "status"])
def test_processes_other_than_the_signer_never_hold_the_key_from_dev_env(dev_workdir, role):
    workdir, env = dev_workdir
    digest = hashlib.sha256(env.signer_key.removeprefix("0x").encode()).hexdigest()
    out = subprocess.run([sys.executable, "-c", PROBE, role, digest], cwd=workdir, env=clean_environ(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "signer_key" not in out.stdout.split("settings fields:")[1].split("\n")[0]
    assert "holders: []" in out.stdout, out.stdout


def test_the_signer_still_starts_with_the_key_from_dev_env(dev_workdir, rabbitmq):
    workdir, env = dev_workdir
    queue = f"test-{uuid.uuid4().hex[:10]}"
    log = workdir / "signer.log"
    proc = subprocess.Popen([sys.executable, "-m", "blockproof.cli", "signer"], cwd=workdir,
                            env=clean_environ() | {"BLOCKPROOF_QUEUE_NAME": queue, "BLOCKPROOF_BROKER_URL": BROKER_URL},
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: f"signer {env.signer_address} ready" in log.read_text() or proc.poll() is not None, 60,
                 what="the signer to start")
        assert proc.poll() is None, log.read_text()
        assert env.signer_key.removeprefix("0x") not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        delete_queue(queue)


@pytest.mark.parametrize("bad_key", ["0x" + "zz" * 32, "0x1234", "f" * 64, "0x" + "ab" * 2500],
                         ids=["not hex", "too short", "out of the curve's range", "5,000 characters"])
def test_an_invalid_signer_key_stops_the_signer_with_one_line_that_never_shows_it(tmp_path, bad_key):
    out = subprocess.run([sys.executable, "-m", "blockproof.cli", "signer"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, env=clean_environ() | {
                             "BLOCKPROOF_SIGNER_KEY": bad_key, "DATABASE_URL": f"sqlite:///{tmp_path / 'bp.db'}"})
    assert out.returncode == 2
    assert out.stdout == "" and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith("error: BLOCKPROOF_SIGNER_KEY is not") and "Traceback" not in out.stderr
    assert bad_key.removeprefix("0x")[:16] not in out.stderr
