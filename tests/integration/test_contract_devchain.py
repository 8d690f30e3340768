"""DevChain: the Anvil wrapper the contract tests, benchmarks and demos run on."""

from __future__ import annotations

import socket

import pytest

from blockproof.devchain import DevChain, DevChainError, anvil_available, deploy_dev_environment
from contracts.deploy import has_batch_extension

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not anvil_available(), reason="anvil not installed")]


def test_accounts_are_anvils_funded_default_accounts_and_keys_stay_out_of_repr(devchain):
    w3 = devchain.w3
    assert [a.address for a in devchain.accounts] == w3.eth.accounts
    assert all(w3.eth.get_balance(a.address) > 0 for a in devchain.accounts)
    address, key = devchain.accounts[0]
    assert w3.eth.account.from_key(key).address == address
    assert key[2:] not in repr(devchain.accounts) and key[2:] not in str(devchain.accounts[0])


def test_dev_environment_has_admin_institution_and_controller_signer(devchain):
    env = deploy_dev_environment(devchain)
    a = devchain.accounts
    assert (env.admin_address, env.institution_address, env.signer_address) == (a[0].address, a[1].address,
                                                                                a[2].address)
    assert env.admin_key not in repr(env) and env.signer_key not in repr(env)
    from contracts.deploy import vault_contract

    vault = vault_contract(devchain.w3, env.vault_address)
    assert vault.functions.getInstitution(env.institution_address).call()[:3] == ("Example University", True, True)
    assert vault.functions.isController(env.institution_address, env.signer_address).call() is True
    assert vault.functions.registrars(env.admin_address).call() is True
    assert has_batch_extension(devchain.w3, env.vault_address)


def test_restart_with_state_file_keeps_port_and_deployed_contracts(tmp_path):
    state = tmp_path / "anvil-state.json"
    with DevChain(state_path=state) as chain:
        port = chain.port
        env = deploy_dev_environment(chain)
        block = chain.w3.eth.block_number
        chain.restart()
        assert chain.port == port and chain.running
        assert chain.w3.eth.block_number >= block
        assert has_batch_extension(chain.w3, env.vault_address)
    assert not chain.running


def test_no_mining_leaves_transactions_pending_until_mined():
    with DevChain(no_mining=True) as chain:
        a = chain.accounts
        w3 = chain.w3
        start = w3.eth.block_number
        tx_hash = w3.eth.send_transaction({"from": a[0].address, "to": a[1].address, "value": 1})
        assert w3.eth.block_number == start
        chain.mine()
        assert w3.eth.get_transaction_receipt(tx_hash)["status"] == 1


def test_start_on_a_busy_port_fails_with_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        chain = DevChain(port=port, startup_timeout=10)
        with pytest.raises(DevChainError, match="anvil"):
            chain.start()
        chain.stop()
