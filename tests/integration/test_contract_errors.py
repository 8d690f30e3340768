"""decode_revert / revert_data_from_exception on revert data produced by real reverting eth_calls."""

from __future__ import annotations

import pytest
from web3.exceptions import ContractCustomError, ContractLogicError, Web3RPCError

from blockproof.devchain import deploy_dev_environment
from contracts.artifacts import BASIC, VAULT, load_artifact
from contracts.errors import (
    ERROR_SELECTORS,
    INTERFACE_ERRORS,
    DecodedError,
    decode_revert,
    describe_exception,
    revert_data_from_exception,
)
from contracts.testing import ZERO32, ZERO_ADDRESS, VaultHarness, fp

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=[VAULT, BASIC])
def v(devchain, request):
    env = deploy_dev_environment(devchain, artifact_name=request.param)
    h = VaultHarness(devchain, env)
    a = devchain.accounts
    h.issue(a[5].address, fp("issued"))  # credential 1
    h.issue(a[5].address, fp("revoked"))  # credential 2, revoked
    h.tx(h.f.revokeCredential(2, ZERO32))
    h.tx(h.f.upsertInstitution(a[8].address, "Closed College", False), env.admin_key)
    return h


def raw_revert(v, fn, sender) -> tuple[bytes, ContractLogicError]:
    with pytest.raises(ContractLogicError) as info:
        fn.call({"from": sender})
    data = revert_data_from_exception(info.value)
    assert data, f"no revert data in {info.value!r}"
    return data, info.value


def cases(v, a):
    inst = v.env.institution_address
    signer, outsider = v.env.signer_address, a[3].address
    f = v.f
    return {
        "NotSuperAdmin": (f.setPaused(True), outsider, {}, True),
        "NotRegistrar": (f.upsertInstitution(a[9].address, "X", True), outsider, {}, True),
        "UnauthorizedController": (f.issueCredential(v.request(a[5].address, fp("n"))), outsider,
                                   {"institution": inst, "sender": outsider}, True),
        "InstitutionNotFound": (f.issueCredential(v.request(a[5].address, fp("n"), institution=a[9].address)),
                                a[9].address, {"institution": a[9].address}, True),
        "InstitutionInactive": (f.issueCredential(v.request(a[5].address, fp("n"), institution=a[8].address)),
                                a[8].address, {"institution": a[8].address}, True),
        "InvalidInstitution": (f.upsertInstitution(ZERO_ADDRESS, "X", True), v.env.admin_address, {}, False),
        "InvalidFingerprint": (f.issueCredential(v.request(a[5].address, ZERO32)), signer, {}, False),
        "InvalidStudentWallet": (f.issueCredential(v.request(ZERO_ADDRESS, fp("n"))), signer, {}, False),
        "FingerprintAlreadyUsed": (f.issueCredential(v.request(a[6].address, fp("issued"))), signer,
                                   {"fingerprint": "0x" + fp("issued").hex()}, False),
        "CredentialNotFound": (f.getCredential(404), outsider, {"credentialId": 404}, False),
        "CredentialRevokedAlready": (f.revokeCredential(2, ZERO32), signer, {"credentialId": 2}, False),
        "InvalidSuperAdminCandidate": (f.transferSuperAdmin(ZERO_ADDRESS), v.env.admin_address, {}, False),
    }


def test_every_interface_error_decodes_with_its_arguments_and_a_plain_message(devchain, v):
    a = devchain.accounts
    table = cases(v, a)
    for name, (fn, sender, args, retryable) in table.items():
        data, _ = raw_revert(v, fn, sender)
        err = decode_revert(data)
        assert isinstance(err, DecodedError), name
        assert (err.name, err.args, err.retryable) == (name, args, retryable), name
        assert err.message and err.message.endswith(".") and "0x" + data[:4].hex() == ERROR_SELECTORS[name]
        assert bool(err.retry_when) == retryable
    # ContractPaused needs the paused state: last, since the fixture's contract is shared
    snap = devchain.snapshot()
    try:
        v.tx(v.f.setPaused(True), v.env.admin_key)
        data, _ = raw_revert(v, v.f.issueCredential(v.request(a[5].address, fp("p"))), v.env.signer_address)
        err = decode_revert(data)
        assert (err.name, err.args, err.retryable) == ("ContractPaused", {}, True)
        assert "paused" in err.message and "unpause" in err.retry_when
    finally:
        devchain.revert(snap)
    assert set(table) | {"ContractPaused"} == set(INTERFACE_ERRORS)


def test_fingerprint_already_used_message_names_the_fingerprint_and_says_never_retry(devchain, v):
    data, exc = raw_revert(v, v.f.issueCredential(v.request(devchain.accounts[6].address, fp("issued"))),
                           v.env.signer_address)
    assert isinstance(exc, ContractCustomError)
    err = decode_revert(data)
    assert err.message.startswith("This credential was already issued: its fingerprint 0x" + fp("issued").hex()[:8])
    assert err.retryable is False


def test_decode_accepts_hex_string_with_or_without_prefix_and_bytes(devchain, v):
    data, _ = raw_revert(v, v.f.getCredential(7), devchain.accounts[3].address)
    for form in (data, bytearray(data), "0x" + data.hex(), data.hex(), "0X" + data.hex().upper()):
        assert decode_revert(form).args == {"credentialId": 7}


def test_decode_returns_none_for_empty_unknown_or_malformed_data():
    assert decode_revert(None) is None
    assert decode_revert("") is None
    assert decode_revert("0x") is None
    assert decode_revert("0xdeadbeef") is None
    assert decode_revert("not hex") is None
    assert decode_revert(ERROR_SELECTORS["CredentialNotFound"]) is None  # selector without its argument


def test_revert_data_is_found_in_every_web3_v8_exception_shape(devchain, v):
    data, exc = raw_revert(v, v.f.getCredential(8), devchain.accounts[3].address)
    hexdata = "0x" + data.hex()
    # the custom error web3 raises on eth_call / estimate_gas
    assert revert_data_from_exception(exc) == data
    assert revert_data_from_exception(ContractLogicError("execution reverted", data=hexdata)) == data
    # a Web3RPCError carrying the node's error object
    rpc_exc = Web3RPCError("execution reverted", rpc_response={
        "jsonrpc": "2.0", "id": 1, "error": {"code": 3, "message": "execution reverted", "data": hexdata}})
    assert revert_data_from_exception(rpc_exc) == data
    nested = Web3RPCError("x", rpc_response={"error": {"code": -32000, "message": "m", "data": {"data": hexdata}}})
    assert revert_data_from_exception(nested) == data
    # legacy ValueError({...}) and wrapped exceptions
    assert revert_data_from_exception(ValueError({"code": 3, "message": "reverted", "data": hexdata})) == data
    try:
        try:
            raise exc
        except ContractLogicError as inner:
            raise RuntimeError("send failed") from inner
    except RuntimeError as outer:
        assert describe_exception(outer).name == "CredentialNotFound"
    assert revert_data_from_exception(RuntimeError("no data")) is None
    assert revert_data_from_exception(None) is None


def test_raw_rpc_eth_call_error_data_decodes(devchain, v):
    """What a caller sees using make_request directly (no web3 exception at all)."""
    fn = v.f.getCredential(9)
    response = devchain.w3.provider.make_request(
        "eth_call", [{"to": v.env.vault_address, "data": fn._encode_transaction_data()}, "latest"])
    assert "error" in response
    err = decode_revert(response["error"]["data"])
    assert (err.name, err.args) == ("CredentialNotFound", {"credentialId": 9})


def test_every_error_in_the_abi_is_decodable():
    for name in (VAULT, BASIC):
        abi_errors = {e["name"] for e in load_artifact(name).abi if e["type"] == "error"}
        assert abi_errors <= set(ERROR_SELECTORS), abi_errors - set(ERROR_SELECTORS)
    assert len(INTERFACE_ERRORS) == 13
