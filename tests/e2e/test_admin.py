"""`blockproof deploy` (no --dev) and `blockproof admin …` on a real Anvil: sent with BLOCKPROOF_ADMIN_KEY, or
printed as unsigned calldata for a multisig. The commands run as a subprocess, as an operator runs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from eth_account import Account

from blockproof.admin import wait_for_receipt
from blockproof.devchain import DevChain, anvil_available
from chain.rpc import Rpc
from blockproof.settings import PROJECT_ROOT
from chain.vault import calldata


@pytest.fixture(scope="module")
def chain():
    if not anvil_available():
        pytest.skip("anvil not installed (npm ci)")
    with DevChain(chain_id=84532) as c:  # automine; not the dev chain id
        yield c


def _cli(chain, *args, key=True, vault="", chain_id="84532", extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKPROOF_")} | {
        "BLOCKPROOF_RPC_URL": chain.rpc_url, "BLOCKPROOF_CHAIN_ID": chain_id, "BLOCKPROOF_VAULT_ADDRESS": vault,
        "DATABASE_URL": "sqlite:///:memory:", **(extra or {})}
    if key:
        env["BLOCKPROOF_ADMIN_KEY"] = ADMIN.key.hex()
    return subprocess.run([sys.executable, "-m", "blockproof.cli", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)


ADMIN = Account.create()  # a fresh key: nothing of Anvil's dev accounts is used
INSTITUTION, SIGNER, NEW_ADMIN = (Account.create().address for _ in range(3))


def _view(chain, vault, signature, *args) -> str:
    return Rpc(chain.rpc_url).call("eth_call", {"to": vault, "data": calldata(signature, *args)}, "latest")


@pytest.fixture(scope="module")
def vault(chain):
    chain.rpc("anvil_setBalance", ADMIN.address, hex(10**20))  # the operator funds the admin
    done = _cli(chain, "deploy")
    assert done.returncode == 0, done.stderr
    lines = dict(line.split("=", 1) for line in done.stdout.split())
    assert lines["BLOCKPROOF_CHAIN_ID"] == "84532" and int(lines["BLOCKPROOF_VAULT_DEPLOY_BLOCK"]) > 0
    address = lines["BLOCKPROOF_VAULT_ADDRESS"]
    assert _view(chain, address, "superAdmin()")[-40:].lower() == ADMIN.address[2:].lower()
    return address


def test_deploy_refuses_another_chain_and_a_missing_key(chain):
    wrong = _cli(chain, "deploy", chain_id="1")
    assert wrong.returncode == 2 and "serves chain 84532; expected 1" in wrong.stderr
    keyless = _cli(chain, "deploy", key=False)
    assert keyless.returncode == 2 and "BLOCKPROOF_ADMIN_KEY is not set" in keyless.stderr


def test_the_admin_registers_an_institution_adds_and_removes_a_controller_and_pauses(chain, vault):
    done = _cli(chain, "admin", "register-institution", "--institution", INSTITUTION, "--name", "Uni", vault=vault)
    assert done.returncode == 0, done.stderr
    assert "setRegistrar" in done.stdout and "upsertInstitution" in done.stdout
    assert _cli(chain, "admin", "add-controller", "--institution", INSTITUTION, "--controller", SIGNER,
                vault=vault).returncode == 0
    assert int(_view(chain, vault, "isController(address,address)", INSTITUTION, SIGNER), 16) == 1
    assert _cli(chain, "admin", "remove-controller", "--institution", INSTITUTION, "--controller", SIGNER,
                vault=vault).returncode == 0
    assert int(_view(chain, vault, "isController(address,address)", INSTITUTION, SIGNER), 16) == 0
    assert _cli(chain, "admin", "pause", vault=vault).returncode == 0
    assert int(_view(chain, vault, "paused()"), 16) == 1
    assert _cli(chain, "admin", "unpause", vault=vault).returncode == 0
    assert int(_view(chain, vault, "paused()"), 16) == 0


def test_print_calldata_sends_nothing_and_its_calls_do_what_they_say_when_the_admin_sends_them(chain, vault):
    nonce = Rpc(chain.rpc_url).nonce(ADMIN.address)
    done = _cli(chain, "admin", "transfer-admin", "--to", NEW_ADMIN, "--print-calldata", key=False, vault=vault)
    assert done.returncode == 0, done.stderr
    proposal = json.loads(done.stdout)
    assert proposal["chainId"] == "84532" and "nothing was sent" in done.stderr
    [call] = proposal["transactions"]
    assert call["to"] == vault and call["value"] == "0" and call["data"].startswith("0x")
    assert Rpc(chain.rpc_url).nonce(ADMIN.address) == nonce  # not one transaction
    # what the Safe would execute, here signed by the admin key directly
    rpc = Rpc(chain.rpc_url)
    tx = {"to": call["to"], "data": call["data"], "value": 0, "nonce": nonce, "gas": 100_000, "chainId": 84532,
          "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
    sent = rpc.call("eth_sendRawTransaction", "0x" + ADMIN.sign_transaction(tx).raw_transaction.hex().removeprefix("0x"))
    assert int(wait_for_receipt(rpc, sent)["status"], 16) == 1
    assert _view(chain, vault, "pendingSuperAdmin()")[-40:].lower() == NEW_ADMIN[2:].lower()


def test_a_call_the_contract_refuses_is_an_error_naming_the_reason(chain, vault):
    stranger = Account.create()
    chain.rpc("anvil_setBalance", stranger.address, hex(10**19))
    done = _cli(chain, "admin", "pause", vault=vault, key=False, extra={"BLOCKPROOF_ADMIN_KEY": stranger.key.hex()})
    assert done.returncode == 1 and "NotSuperAdmin" in done.stderr, done.stderr
