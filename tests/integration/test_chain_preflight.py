"""The one pre-flight of the intake and the signer (chain.preflight.refused_rows): a batch simulated in one call,
its rows one by one only when it reverts for a row's sake, on a real Anvil."""
from __future__ import annotations

import pytest

from blockproof.devchain import deploy_dev_environment
from chain import vault as codec
from chain.preflight import ALREADY_ISSUED, Group, refused_rows
from chain.rpc import Rpc
from contracts.artifacts import VAULT
from contracts.deploy import transact, vault_contract
from contracts.testing import ZERO_ADDRESS, fp
from tests.faults import RpcProxy

pytestmark = pytest.mark.integration

BASE = "ipfs://QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG/"


@pytest.fixture(scope="module")
def deployed(devchain):
    return deploy_dev_environment(devchain, artifact_name=VAULT)


class Counting(Rpc):
    """The real Rpc, counting the eth_calls it sends."""

    def __init__(self, url: str):
        super().__init__(url)
        self.eth_calls = 0

    def batch(self, calls):
        self.eth_calls += sum(1 for method, _ in calls if method == "eth_call")
        return super().batch(calls)


def rows(devchain, labels, *, bad=()):
    return [codec.IssueItem(ZERO_ADDRESS if label in bad else devchain.accounts[5].address, fp(label),
                            f"{label}.json", "", 0) for label in labels]


def alone(v, item):
    return codec.issue_single(v.env.institution_address, BASE, item)


def refused(v, groups, url=None):
    rpc = Counting(url or v.chain.rpc_url)
    out = refused_rows(rpc, v.env.signer_address, v.env.vault_address, groups,
                       alone=lambda item: alone(v, item))
    return out, rpc.eth_calls


def batch(v, items):
    return Group(items, codec.issue_batch(v.env.institution_address, BASE, items))


def test_a_batch_that_passes_is_one_call_and_refuses_nothing(devchain, v):
    assert refused(v, [batch(v, rows(devchain, "abcd"))]) == ([], 1)


def test_a_batch_that_reverts_for_one_row_refuses_only_that_row_with_its_reason(devchain, v):
    items = rows(devchain, "abcd", bad="c")
    out, calls = refused(v, [batch(v, items)])
    assert [(item, revert.code) for item, revert in out] == [(items[2], "InvalidStudentWallet")]
    assert calls == 1 + len(items)


def test_rows_already_on_chain_are_named_by_a_batch_that_passes(devchain, v):
    items = rows(devchain, "abcd")
    v.issue(items[1].student_wallet, items[1].fingerprint)
    assert refused(v, [batch(v, items)]) == ([(items[1], ALREADY_ISSUED)], 1)


def test_rows_without_a_batch_call_are_simulated_alone_before_the_batches_rows(devchain, v):
    alone, batched = rows(devchain, "ab", bad="a"), rows(devchain, "xyz", bad="z")
    out, calls = refused(v, [Group(alone), batch(v, batched)])
    assert [item for item, _ in out] == [alone[0], batched[2]]
    assert calls == 1 + len(alone) + len(batched)


def test_a_condition_of_the_contract_refuses_no_row(devchain, v):
    transact(v.w3, vault_contract(v.w3, v.env.vault_address).functions.setPaused(True), v.env.admin_key)
    items = rows(devchain, "abc", bad="b")
    assert refused(v, [batch(v, items), Group(items)])[0] == []


def test_a_batch_too_big_for_the_node_to_simulate_has_its_rows_simulated_one_by_one(devchain, v):
    items = rows(devchain, "abcd", bad="b")
    with RpcProxy(v.chain.rpc_url) as proxy:
        proxy.too_big("eth_call", over_bytes=max(len(alone(v, item)) for item in items), message="EVM error OutOfGas")
        out, calls = refused(v, [batch(v, items)], url=proxy.url)
        assert proxy.oversize_answered == 1
    assert [(item, revert.code) for item, revert in out] == [(items[1], "InvalidStudentWallet")]
    assert calls == 1 + len(items)
