"""Send-error classification (pure) against the messages a real Anvil answers to eth_sendRawTransaction
(captured from anvil 1.x: code -32003), plus geth's and other clients' wordings."""
from __future__ import annotations

import pytest

from blockproof.errors import RpcError, RpcUnavailable
from chain.rpc_errors import SendOutcome, classify_send_error

ANVIL = [  # (message, outcome) exactly as Anvil answered in this project's capture
    ("transaction already imported", SendOutcome.ALREADY_KNOWN),
    ("replacement transaction underpriced", SendOutcome.REPLACEMENT_UNDERPRICED),
    ("nonce too low", SendOutcome.NONCE_TOO_LOW),
    ("max fee per gas less than block base fee", SendOutcome.FEE_TOO_LOW),
    ("Insufficient funds for gas * price + value", SendOutcome.INSUFFICIENT_FUNDS),
]
OTHERS = [
    ("already known", SendOutcome.ALREADY_KNOWN),  # geth
    ("ALREADY_EXISTS: already known", SendOutcome.ALREADY_KNOWN),
    ("nonce too high", SendOutcome.NONCE_TOO_HIGH),
    ("insufficient funds for gas * price + value: balance 0", SendOutcome.INSUFFICIENT_FUNDS),
    ("transaction underpriced", SendOutcome.FEE_TOO_LOW),
    ("fee cap less than block base fee", SendOutcome.FEE_TOO_LOW),
    ("OldNonce", SendOutcome.NONCE_TOO_LOW),
    ("invalid sender", SendOutcome.REJECTED),
]


@pytest.mark.parametrize("message,outcome", ANVIL + OTHERS)
def test_each_node_answer_is_classified_in_one_place(message, outcome):
    assert classify_send_error(RpcError(-32003, message, None, "eth_sendRawTransaction")) is outcome


def test_replacement_underpriced_is_not_mistaken_for_a_plain_fee_too_low():
    error = RpcError(-32000, "replacement transaction underpriced")
    assert classify_send_error(error) is SendOutcome.REPLACEMENT_UNDERPRICED


def test_an_answer_that_never_came_has_an_unknown_outcome():
    assert classify_send_error(RpcUnavailable("timed out")) is SendOutcome.UNKNOWN


def test_the_reason_may_hide_in_the_error_data():
    assert classify_send_error(RpcError(-32000, "err", "nonce too low: next nonce 5")) is SendOutcome.NONCE_TOO_LOW


def test_a_live_anvil_answers_are_classified_as_expected(devchain):
    """The same classification against a running Anvil (automine): each fault produced for real."""
    from chain.rpc import Rpc
    from workers.signer.sender import broadcast, new_account

    rpc = Rpc(devchain.rpc_url)
    account = new_account(devchain.accounts[7].private_key)
    base = int(rpc.get_block("latest")["baseFeePerGas"], 16)

    def raw(nonce, max_fee=3 * base + 10**9, tip=10**9, value=0):
        signed = account.sign_transaction({"type": 2, "chainId": rpc.chain_id(), "to": account.address, "gas": 21_000,
                                           "value": value, "nonce": nonce, "maxFeePerGas": max_fee,
                                           "maxPriorityFeePerGas": tip})
        return "0x" + signed.raw_transaction.hex().removeprefix("0x")

    n = rpc.nonce(account.address)
    assert broadcast(rpc, raw(n))[0] is SendOutcome.ACCEPTED  # automine: mined at once
    assert broadcast(rpc, raw(n, value=1))[0] is SendOutcome.NONCE_TOO_LOW
    assert broadcast(rpc, raw(n + 1, max_fee=1, tip=1))[0] is SendOutcome.FEE_TOO_LOW
    devchain.rpc("anvil_setBalance", account.address, "0x0")
    try:
        assert broadcast(rpc, raw(n + 1))[0] is SendOutcome.INSUFFICIENT_FUNDS
    finally:
        devchain.rpc("anvil_setBalance", account.address, hex(10**22))
    devchain.rpc("evm_setAutomine", False)
    try:
        pending = raw(n + 1)
        assert broadcast(rpc, pending)[0] is SendOutcome.ACCEPTED
        assert broadcast(rpc, pending)[0] is SendOutcome.ALREADY_KNOWN
        assert broadcast(rpc, raw(n + 1, value=2))[0] is SendOutcome.REPLACEMENT_UNDERPRICED
    finally:
        devchain.rpc("evm_setAutomine", True)
