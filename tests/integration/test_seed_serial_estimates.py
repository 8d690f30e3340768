"""The seed's own write flow (web3 build_transaction with its default gas estimate as the gas limit, no
margin, sign, send, wait for the receipt) never runs out of gas against our vault, whatever block the
estimate assumed: gas must not depend on the block's timestamp."""

from __future__ import annotations

import hashlib

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from blockproof.devchain import DevChain, anvil_available, deploy_dev_environment
from contracts.artifacts import VAULT
from contracts.deploy import transact, vault_contract

pytestmark = pytest.mark.integration

SINGLES = 200


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("/".join(map(str, parts)).encode()).digest()


def _wallet(n: int) -> str:
    return to_checksum_address(_digest("wallet", n)[:20])


def seed_issue(w3, contract, key: str, request: tuple):
    """What the seed's Django view does: estimate by default, sign, send, wait."""
    sender = Account.from_key(key).address
    tx = contract.functions.issueCredential(request).build_transaction(
        {"from": sender, "nonce": w3.eth.get_transaction_count(sender), "chainId": w3.eth.chain_id})
    signed = Account.sign_transaction(tx, key)
    return w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction), timeout=60)


def serial_flow(block_time: float | None) -> tuple[list, int]:
    """Two batches, then SINGLES seed-style singles in a row: (failed (n, gasUsed), credentialCount)."""
    with DevChain(block_time=block_time) as chain:
        env = deploy_dev_environment(chain, artifact_name=VAULT)
        w3, vault = chain.w3, vault_contract(chain.w3, env.vault_address, VAULT)
        for n, base in enumerate(("ipfs://QmBatchDirectory/", "")):  # a batch with a base URI, a plain one
            items = [(_wallet(("batch", n, i)), _digest("batch fp", n, i), f"{i}.json", f"{i}.enc", 0)
                     for i in range(20)]
            transact(w3, vault.functions.issueCredentialBatch(env.institution_address, base, items), env.signer_key)

        failed = []
        for n in range(SINGLES):
            uris = ("", "") if n % 3 == 0 else (f"ipfs://QmSingle{n}/meta.json", f"ipfs://QmSingle{n}/doc.enc")
            request = (env.institution_address, _wallet(n), _digest("single fp", n), *uris, 0)
            receipt = seed_issue(w3, vault, env.signer_key, request)
            if receipt["status"] != 1:
                failed.append((n, receipt["gasUsed"]))
        return failed, vault.functions.credentialCount().call()


@pytest.mark.parametrize("block_time", [None, 1], ids=["automine", "1s-blocks"])
def test_two_hundred_seed_style_singles_after_batches_all_succeed_with_the_default_estimate(block_time):
    if not anvil_available():
        pytest.skip("anvil not installed (npm ci)")
    failed, count = serial_flow(block_time)
    assert failed == [], f"{len(failed)} of {SINGLES} seed-style issueCredential txs failed (n, gasUsed): {failed[:5]}"
    assert count == 40 + SINGLES
