"""Where the signing key lives: an encrypted keystore, a remote signer (JSON-RPC eth_signTransaction; Anvil
answers it for its dev accounts), or a plain dev key, refused in production. The demo list is issued with
each backend; the remote signer's answers are checked before they are stored."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from eth_account import Account

from blockproof.errors import ConfigurationError
from blockproof.settings import PROJECT_ROOT
from tests.faults import assert_invariants
from chain.keys import checked

DEMO_LIST = PROJECT_ROOT / "examples" / "graduates.csv"
PASSWORD = "correct horse battery staple"


def cli(*args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blockproof.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=PROJECT_ROOT, env=os.environ | (env or {}), timeout=120)


def keystore_of(key: str, tmp_path) -> tuple:
    (tmp_path / "password").write_text(PASSWORD + "\n")
    out = tmp_path / "signer.json"
    made = cli("key", "import", "--out", str(out), "--password-file", str(tmp_path / "password"), stdin=key + "\n")
    assert made.returncode == 0, made.stderr
    assert key.removeprefix("0x") not in made.stdout + made.stderr
    return out, tmp_path / "password", made.stdout.strip()


def test_key_import_and_address_never_show_the_key_and_agree(tmp_path):
    account = Account.create()
    path, _, printed = keystore_of(account.key.hex(), tmp_path)
    assert printed == account.address
    assert cli("key", "address", str(path)).stdout.strip() == account.address
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert cli("key", "import", "--out", str(path), "--password-file", str(tmp_path / "password"),
               stdin=account.key.hex()).returncode == 2, "an existing keystore is never overwritten"


def test_the_demo_list_is_issued_with_the_key_in_an_encrypted_keystore(make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url)
    path, password, _ = keystore_of(p.env.signer_key, tmp_path)
    p.extra_env.update(BLOCKPROOF_SIGNER_KEY="", BLOCKPROOF_SIGNER_KEYSTORE=str(path),
                       BLOCKPROOF_SIGNER_PASSWORD_FILE=str(password))
    p.start("consumer")
    p.start("signer")
    report = p.upload(DEMO_LIST)
    p.wait_until_settled(report.new, timeout=240)
    assert_invariants(p, report.new)


def test_the_demo_list_is_issued_through_a_remote_signer(make_pipeline, sqlite_url):
    p = make_pipeline(sqlite_url)
    p.extra_env.update(BLOCKPROOF_SIGNER_KEY="", BLOCKPROOF_SIGNER_URL=p.chain.rpc_url,
                       BLOCKPROOF_SIGNER_ADDRESS=p.env.signer_address)
    p.start("consumer")
    p.start("signer")
    report = p.upload(DEMO_LIST)
    p.wait_until_settled(report.new, timeout=240)
    assert_invariants(p, report.new)


def test_production_refuses_a_plain_key_and_names_the_two_safe_options(tmp_path):
    key = Account.create().key.hex()
    result = cli("signer", env={"BLOCKPROOF_PRODUCTION": "true", "BLOCKPROOF_SIGNER_KEY": key,
                                "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"})
    assert result.returncode == 2
    assert "refused in production" in result.stderr and "keystore" in result.stderr and "remote signer" in result.stderr
    assert key.removeprefix("0x") not in result.stderr + result.stdout


TX = {"type": 2, "chainId": 31337, "nonce": 7, "to": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "value": 0,
      "data": "0x1234", "gas": 100_000, "maxFeePerGas": 3 * 10**9, "maxPriorityFeePerGas": 10**9}


def test_a_remote_signature_is_kept_only_when_it_is_the_expected_key_and_the_requested_fields():
    ours, theirs = Account.create(), Account.create()
    raw = ours.sign_transaction(TX).raw_transaction
    assert checked(raw, TX, ours.address).hash == ours.sign_transaction(TX).hash
    with pytest.raises(ConfigurationError, match="signed as"):
        checked(theirs.sign_transaction(TX).raw_transaction, TX, ours.address)
    with pytest.raises(ConfigurationError, match="changed nonce"):
        checked(ours.sign_transaction(TX | {"nonce": 8}).raw_transaction, TX, ours.address)
    with pytest.raises(ConfigurationError, match="recipient or the call data"):
        checked(ours.sign_transaction(TX | {"data": "0xdead"}).raw_transaction, TX, ours.address)
