"""The batch extension (issueCredentialBatch / revokeCredentialBatch), ERC-165 detection and the
gas-lean storage layout's observable behaviour, on a real Anvil."""

from __future__ import annotations

import pytest
from web3.exceptions import ContractLogicError

from blockproof.devchain import deploy_dev_environment
from eth_utils import to_checksum_address

from chain import vault as codec
from contracts.artifacts import BASIC, BATCH_INTERFACE_ID, ERC165_INTERFACE_ID, PACKED_BATCH_INTERFACE_ID, VAULT
from contracts.deploy import has_batch_extension
from contracts.testing import ZERO32, ZERO_ADDRESS, VaultHarness, fp

pytestmark = pytest.mark.integration

CID = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"  # 46 chars
BASE = f"ipfs://{CID}/"


@pytest.fixture(scope="module")
def deployed(devchain):
    return deploy_dev_environment(devchain, artifact_name=VAULT)


@pytest.fixture(scope="module")
def deployed_basic(devchain):
    return deploy_dev_environment(devchain, artifact_name=BASIC)


def students(devchain, n):
    return [devchain.accounts[5 + i % 5].address for i in range(n)]


def items_for(devchain, labels, meta_fmt="{}.json", payload_fmt="{}.enc"):
    ws = students(devchain, len(labels))
    return [(w, fp(label), meta_fmt.format(label) if meta_fmt else "", payload_fmt.format(label) if payload_fmt
             else "", 0) for w, label in zip(ws, labels)]


def issue_batch(v, items, base=BASE, key=None):
    fn = v.f.issueCredentialBatch(v.env.institution_address, base, items)
    ids = fn.call({"from": v.env.signer_address if key is None else v.w3.eth.account.from_key(key).address})
    receipt = v.tx(fn, key)
    return ids, receipt


# ----------------------------------------------------------------------------- ERC-165

def test_erc165_probe_detects_batch_extension_on_ours_and_not_on_basic(devchain, deployed, deployed_basic):
    assert has_batch_extension(devchain.w3, deployed.vault_address) is True
    assert has_batch_extension(devchain.w3, deployed_basic.vault_address) is False


def test_supports_interface_answers_erc165_batch_and_packed_batch_ids_only(v):
    assert v.f.supportsInterface(ERC165_INTERFACE_ID).call() is True
    assert v.f.supportsInterface(BATCH_INTERFACE_ID).call() is True
    assert v.f.supportsInterface(PACKED_BATCH_INTERFACE_ID).call() is True
    assert v.f.supportsInterface(b"\xff\xff\xff\xff").call() is False
    assert v.f.supportsInterface(b"\x12\x34\x56\x78").call() is False


def test_erc165_probe_is_false_for_an_address_without_code(devchain):
    assert has_batch_extension(devchain.w3, devchain.accounts[9].address) is False


# ----------------------------------------------------------------------------- batch issue

def test_batch_issues_every_row_with_sequential_ids_and_one_event_per_row_with_full_uris(devchain, v):
    items = items_for(devchain, range(1, 6))
    ids, receipt = issue_batch(v, items)
    assert ids == [1, 2, 3, 4, 5]
    events = v.events(receipt, "CredentialIssued")
    assert events == [{
        "credentialId": i + 1, "studentWallet": it[0], "institution": v.env.institution_address,
        "fingerprint": it[1], "metadataURI": BASE + it[2], "encryptedPayloadURI": BASE + it[3], "expiresAt": 0,
    } for i, it in enumerate(items)]
    assert v.f.credentialCount().call() == 5


def test_get_credential_returns_full_uris_and_batch_institution_and_time(devchain, v):
    items = items_for(devchain, ["17", "18"])
    items[1] = (items[1][0], items[1][1], "18.json", "", 1_900_000_000)  # no payload URI: stays empty
    _, receipt = issue_batch(v, items)
    t = v.block_timestamp(receipt)
    inst = v.env.institution_address
    assert v.f.getCredential(1).call() == (
        1, items[0][0], inst, items[0][1], BASE + "17.json", BASE + "17.enc", t, 0, 0, ZERO32, False)
    assert v.f.getCredential(2).call() == (
        2, items[1][0], inst, items[1][1], BASE + "18.json", "", t, 1_900_000_000, 0, ZERO32, False)
    assert v.f.credentialStatus(2).call() == (True, True, False, items[1][1], items[1][0], inst, t,
                                              1_900_000_000, 0)


def test_batch_with_empty_base_stores_uris_as_given(devchain, v):
    long_meta = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi/metadata.json"
    items = [(devchain.accounts[5].address, fp("a"), long_meta, "", 0),
             (devchain.accounts[6].address, fp("b"), "", "", 0)]
    ids, receipt = issue_batch(v, items, base="")
    assert ids == [1, 2]
    assert v.f.getCredential(1).call()[4:6] == (long_meta, "")
    assert v.f.getCredential(2).call()[4:6] == ("", "")
    assert [(e["metadataURI"], e["encryptedPayloadURI"]) for e in v.events(receipt, "CredentialIssued")] == [
        (long_meta, ""), ("", "")]


def test_resubmitting_a_partly_issued_batch_skips_issued_rows_and_issues_the_rest(devchain, v):
    items = items_for(devchain, range(10))
    first_ids, _ = issue_batch(v, items[:4])  # an earlier, partial attempt
    assert first_ids == [1, 2, 3, 4]
    ids, receipt = issue_batch(v, items)  # the whole batch again
    assert ids == [0, 0, 0, 0, 5, 6, 7, 8, 9, 10]
    events = v.events(receipt, "CredentialIssued")
    # which rows were issued is visible from the events alone (fingerprint -> id)
    assert {e["fingerprint"]: e["credentialId"] for e in events} == {items[i][1]: i + 1 for i in range(4, 10)}
    assert v.f.credentialCount().call() == 10
    for i, item in enumerate(items):
        assert v.f.getCredential(i + 1).call()[3] == item[1]


def test_duplicate_fingerprints_inside_one_batch_issue_only_the_first(devchain, v):
    w = devchain.accounts[5].address
    items = [(w, fp("x"), "1.json", "", 0), (w, fp("y"), "2.json", "", 0), (w, fp("x"), "3.json", "", 0)]
    ids, receipt = issue_batch(v, items)
    assert ids == [1, 2, 0]
    assert [e["metadataURI"] for e in v.events(receipt, "CredentialIssued")] == [BASE + "1.json", BASE + "2.json"]
    assert v.f.getCredential(1).call()[4] == BASE + "1.json"
    assert v.f.studentCredentialIds(w).call() == [1, 2]


def test_fully_duplicate_batch_issues_nothing_and_does_not_revert(devchain, v):
    items = items_for(devchain, range(3))
    issue_batch(v, items)
    ids, receipt = issue_batch(v, items)
    assert ids == [0, 0, 0]
    assert receipt["status"] == 1 and v.events(receipt, "CredentialIssued") == []
    assert v.f.credentialCount().call() == 3


def test_empty_batch_is_a_no_op(v):
    ids, receipt = issue_batch(v, [])
    assert ids == [] and receipt["logs"] == []


def test_batch_rows_with_zero_wallet_or_zero_fingerprint_revert_the_whole_batch(devchain, v):
    good = items_for(devchain, ["ok"])[0]
    signer = v.env.signer_address
    inst = v.env.institution_address
    err = v.revert_of(v.f.issueCredentialBatch(inst, BASE, [good, (ZERO_ADDRESS, fp("z"), "", "", 0)]), signer)
    assert err.name == "InvalidStudentWallet"
    err = v.revert_of(v.f.issueCredentialBatch(inst, BASE, [good, (good[0], ZERO32, "", "", 0)]), signer)
    assert err.name == "InvalidFingerprint"


def test_batch_wide_checks_revert_with_interface_errors(devchain, v):
    a = devchain.accounts
    inst = v.env.institution_address
    items = items_for(devchain, ["w"])
    err = v.revert_of(v.f.issueCredentialBatch(inst, BASE, items), a[3].address)
    assert (err.name, err.args) == ("UnauthorizedController", {"institution": inst, "sender": a[3].address})
    other = a[8]
    err = v.revert_of(v.f.issueCredentialBatch(other.address, BASE, items), other.address)
    assert (err.name, err.args) == ("InstitutionNotFound", {"institution": other.address})
    v.tx(v.f.upsertInstitution(inst, "Example University", False), v.env.admin_key)
    err = v.revert_of(v.f.issueCredentialBatch(inst, BASE, items), v.env.signer_address)
    assert (err.name, err.args) == ("InstitutionInactive", {"institution": inst})
    v.tx(v.f.upsertInstitution(inst, "Example University", True), v.env.admin_key)
    v.tx(v.f.setPaused(True), v.env.admin_key)
    assert v.revert_of(v.f.issueCredentialBatch(inst, BASE, items), v.env.signer_address).name == "ContractPaused"


def test_batch_and_single_issues_share_one_id_sequence_and_student_index(devchain, v):
    w = devchain.accounts[5].address
    assert v.issue(w, fp("s1"), "ipfs://single") == 1
    ids, _ = issue_batch(v, [(w, fp("b1"), "1.json", "", 0), (devchain.accounts[6].address, fp("b2"), "", "", 0)])
    assert ids == [2, 3]
    assert v.issue(w, fp("s2")) == 4
    assert v.f.studentCredentialIds(w).call() == [1, 2, 4]
    assert v.f.getCredential(1).call()[4] == "ipfs://single"
    assert v.f.getCredential(2).call()[4] == BASE + "1.json"
    assert v.f.getCredential(3).call()[4:6] == ("", "")


def test_two_batches_keep_their_own_base_uri(devchain, v):
    other_base = "https://credentials.example.edu/2026/"
    issue_batch(v, items_for(devchain, ["a"]))
    issue_batch(v, items_for(devchain, ["b"]), base=other_base)
    assert v.f.getCredential(1).call()[4] == BASE + "a.json"
    assert v.f.getCredential(2).call()[4:6] == (other_base + "b.json", other_base + "b.enc")


def test_single_issues_in_one_block_keep_their_own_institution_and_uris(devchain, v):
    """Singles share their institution's base-less batch record: prove attribution stays right in one block."""
    a = devchain.accounts
    other = a[8]
    v.tx(v.f.upsertInstitution(other.address, "Other College", True), v.env.admin_key)
    from contracts.deploy import send_call

    devchain.rpc("evm_setAutomine", False)
    try:
        plan = [(v.env.institution_address, v.env.signer_key, "u1"), (v.env.institution_address, v.env.signer_key,
                                                                      "u2"),
                (other.address, other.private_key, "o1"), (v.env.institution_address, v.env.signer_key, "u3")]
        nonces: dict[str, int] = {}
        hashes = []
        for inst, key, label in plan:
            sender = v.w3.eth.account.from_key(key).address
            nonce = nonces.setdefault(sender, v.w3.eth.get_transaction_count(sender, "pending"))
            nonces[sender] += 1
            req = (inst, a[5].address, fp(label), f"ipfs://{label}", "", 0)
            hashes.append(send_call(v.w3, v.f.issueCredential(req), key, nonce=nonce, gas=500_000))
        devchain.mine()
    finally:
        devchain.rpc("evm_setAutomine", True)
    receipts = [v.w3.eth.wait_for_transaction_receipt(h) for h in hashes]
    assert len({r["blockNumber"] for r in receipts}) == 1 and all(r["status"] == 1 for r in receipts)
    by_label = {}
    for r in receipts:
        e = v.events(r, "CredentialIssued")[0]
        by_label[e["metadataURI"][7:]] = e["credentialId"]
    for inst, _, label in plan:
        c = v.f.getCredential(by_label[label]).call()
        assert (c[2], c[4]) == (inst, f"ipfs://{label}")


# ----------------------------------------------------------------------------- batch revoke

def test_batch_revoke_revokes_each_id_and_skips_already_revoked_ones(devchain, v):
    issue_batch(v, items_for(devchain, range(5)))
    v.tx(v.f.revokeCredential(2, fp("earlier")))
    ids = [1, 2, 3, 5]
    reasons = [fp(f"reason{i}") for i in ids]
    receipt = v.tx(v.f.revokeCredentialBatch(ids, reasons))
    t = v.block_timestamp(receipt)
    assert v.events(receipt, "CredentialRevoked") == [
        {"credentialId": i, "revokedBy": v.env.signer_address, "reasonHash": fp(f"reason{i}"), "revokedAt": t}
        for i in (1, 3, 5)]
    assert v.f.getCredential(2).call()[9] == fp("earlier")  # first revocation wins
    assert [v.f.credentialStatus(i).call()[2] for i in range(1, 6)] == [True, True, True, False, True]
    assert v.f.getCredential(3).call()[8:] == (t, fp("reason3"), True)


def test_batch_revoke_rejects_unknown_id_mismatched_lengths_paused_and_unauthorized(devchain, v):
    issue_batch(v, items_for(devchain, range(2)))
    signer = v.env.signer_address
    err = v.revert_of(v.f.revokeCredentialBatch([1, 9], [ZERO32, ZERO32]), signer)
    assert (err.name, err.args) == ("CredentialNotFound", {"credentialId": 9})
    err = v.revert_of(v.f.revokeCredentialBatch([1, 2], [ZERO32]), signer)
    assert (err.name, err.args) == ("BatchLengthMismatch", {"credentialIds": 2, "reasonHashes": 1})
    outsider = devchain.accounts[3].address
    err = v.revert_of(v.f.revokeCredentialBatch([1], [ZERO32]), outsider)
    assert (err.name, err.args) == ("UnauthorizedController",
                                    {"institution": v.env.institution_address, "sender": outsider})
    v.tx(v.f.setPaused(True), v.env.admin_key)
    assert v.revert_of(v.f.revokeCredentialBatch([1], [ZERO32]), signer).name == "ContractPaused"


def test_basic_contract_has_no_batch_functions(devchain, deployed_basic):
    vb = VaultHarness(devchain, deployed_basic)
    assert not any(e.get("name") in ("issueCredentialBatch", "supportsInterface") for e in vb.contract.abi)
    # calling the batch selector on it reverts (no fallback)
    ours = VaultHarness(devchain, deploy_dev_environment(devchain, artifact_name=VAULT))
    data = ours.f.issueCredentialBatch(deployed_basic.institution_address, "", [])._encode_transaction_data()
    with pytest.raises(ContractLogicError):
        devchain.w3.eth.call({"to": deployed_basic.vault_address, "data": data, "from": deployed_basic.signer_address})


# ----------------------------------------------------------------------------- packed rows

def _codec_items(items):
    return [codec.IssueItem(w, f, m, p, e) for w, f, m, p, e in items]


def issue_packed(v, items, base=BASE, gas=None):
    data = codec.issue_batch_packed(v.env.institution_address, base, _codec_items(items))
    tx = {"from": v.env.signer_address, "to": v.env.vault_address, "data": data}
    ids = codec.decode_issue_batch_result(v.w3.eth.call(tx).to_0x_hex())
    from contracts.deploy import _sign_and_send

    tx.update(nonce=v.w3.eth.get_transaction_count(v.env.signer_address), chainId=v.w3.eth.chain_id,
              gas=gas or v.w3.eth.estimate_gas(tx), maxFeePerGas=10**11, maxPriorityFeePerGas=10**9)
    tx.pop("from")
    receipt = v.w3.eth.wait_for_transaction_receipt(_sign_and_send(v.w3, tx, v.env.signer_key))
    assert receipt["status"] == 1
    return ids, receipt


def test_packed_rows_issue_exactly_what_the_abi_batch_issues_with_a_quarter_of_the_calldata(devchain, v):
    items = items_for(devchain, range(1, 8))
    items[2] = (items[2][0], items[2][1], "", "", 2**64 - 1)  # no URIs, the largest expiry
    items[4] = (items[4][0], items[4][1], "5.json", "", 1_900_000_000)
    items.append(items[1])  # a duplicate: skipped
    snap = devchain.snapshot()
    abi_ids, abi_receipt = issue_batch(v, items)
    abi_answers = [v.f.getCredential(i).call() for i in abi_ids if i]
    assert devchain.revert(snap)
    ids, receipt = issue_packed(v, items)
    assert ids == abi_ids == [1, 2, 3, 4, 5, 6, 7, 0]
    assert [(log["topics"], log["data"]) for log in receipt["logs"]] == [
        (log["topics"], log["data"]) for log in abi_receipt["logs"]]
    assert [v.f.getCredential(i).call()[:6] + v.f.getCredential(i).call()[7:] for i in ids if i] == [
        a[:6] + a[7:] for a in abi_answers]  # all but issuedAt (another block)
    packed = codec.issue_batch_packed(v.env.institution_address, BASE, _codec_items(items))
    plain = codec.issue_batch(v.env.institution_address, BASE, _codec_items(items))
    assert len(packed) * 3 < len(plain)


def test_packed_rows_that_do_not_parse_revert_with_the_offset_of_the_bad_row(devchain, v):
    items = _codec_items(items_for(devchain, range(3)))
    rows = codec.pack_rows(items)
    inst, signer = v.env.institution_address, v.env.signer_address
    second = len(codec.pack_rows(items[:1]))
    err = v.revert_of(v.f.issueCredentialBatchPacked(inst, BASE, rows[:-1]), signer)
    assert (err.name, err.args) == ("PackedRowsMalformed", {"offset": len(codec.pack_rows(items[:2]))})
    bad_expiry = bytearray(rows)
    bad_expiry[second + 52] = 9  # an expiry of 9 bytes
    err = v.revert_of(v.f.issueCredentialBatchPacked(inst, BASE, bytes(bad_expiry)), signer)
    assert (err.name, err.args) == ("PackedRowsMalformed", {"offset": second})
    assert v.f.credentialCount().call() == 0
    assert v.f.issueCredentialBatchPacked(inst, BASE, b"").call({"from": signer}) == []


def test_packed_rows_keep_the_interface_errors_of_the_batch(devchain, v):
    inst = v.env.institution_address
    good = _codec_items(items_for(devchain, ["ok"]))
    zero_wallet = codec.pack_rows(good + [codec.IssueItem(ZERO_ADDRESS, fp("z"), "", "", 0)])
    assert v.revert_of(v.f.issueCredentialBatchPacked(inst, BASE, zero_wallet),
                       v.env.signer_address).name == "InvalidStudentWallet"
    outsider = devchain.accounts[3].address
    err = v.revert_of(v.f.issueCredentialBatchPacked(inst, BASE, codec.pack_rows(good)), outsider)
    assert (err.name, err.args) == ("UnauthorizedController", {"institution": inst, "sender": outsider})


# ----------------------------------------------------------------------------- blobs and buckets

def _check_every_credential(v, expected):
    """expected: id -> (wallet, fingerprint, full meta, full payload, expiresAt)."""
    inst = v.env.institution_address
    for cid, (wallet, fingerprint, meta, payload, expires) in expected.items():
        c = v.f.getCredential(cid).call()
        assert (c[0], c[1], c[2], c[3], c[4], c[5], c[7]) == (cid, wallet, inst, fingerprint, meta, payload, expires)
        assert v.f.verifyFingerprint(cid, fingerprint).call() is True
    assert v.f.credentialCount().call() == max(expected)
    assert v.f.credentialStatus(max(expected) + 1).call()[0] is False


def test_ids_in_blobs_that_cross_buckets_and_share_buckets_with_singles_all_read_back(devchain, v):
    """Blobs of 100, 1 and 200 rows between singles: ids cross the 224-id bucket boundary inside a blob,
    several blobs start in one bucket, singles sit between them."""
    expected = {}
    wallets = students(devchain, 5)

    def single(n):
        cid = v.issue(wallets[n % 5], fp(("s", n)), f"ipfs://single/{n}")
        expected[cid] = (wallets[n % 5], fp(("s", n)), f"ipfs://single/{n}", "", 0)

    def batch(label, size, packed=False):
        items = [(wallets[i % 5], fp((label, i)), f"{label}{i}.json" if i % 3 else "", "", 2_000_000_000 + i)
                 for i in range(size)]
        ids, _ = (issue_packed if packed else issue_batch)(v, items)
        for cid, item in zip(ids, items):
            expected[cid] = (item[0], item[1], BASE + item[2] if item[2] else "", "", item[4])

    single(1)
    batch("a", 100)
    single(2)
    batch("b", 1)
    batch("c", 200, packed=True)  # ids 104..303: crosses 224
    single(3)
    batch("d", 30)
    assert max(expected) == 334
    _check_every_credential(v, expected)
    for cid in (2, 101, 103, 104, 223, 224, 225, 303, 305, 334):  # revoke across blobs and buckets, one by one
        v.tx(v.f.revokeCredential(cid, fp(("why", cid))))
        assert v.f.getCredential(cid).call()[9:] == (fp(("why", cid)), True)
    assert v.f.studentCredentialIds(wallets[0]).call() == sorted(k for k, e in expected.items() if e[0] == wallets[0])


def test_a_batch_too_big_for_one_blob_is_split_and_a_row_too_big_for_any_blob_is_kept_in_slots(devchain, v):
    wallets = students(devchain, 5)
    long = "L" * 7_000  # four of them do not fit in a 24,576-byte blob
    huge = "H" * 24_600  # more than a blob can hold: kept in slots
    items = [(wallets[i % 5], fp(("big", i)), f"{i}-{long}", f"{i}.enc", 0) for i in range(7)]
    items.insert(3, (wallets[0], fp("huge"), huge, "", 2**64 - 1))
    ids, receipt = issue_batch(v, items, base="ipfs://dir/")
    assert ids == list(range(1, 9))
    assert [e["metadataURI"] for e in v.events(receipt, "CredentialIssued")] == [
        "ipfs://dir/" + it[2] for it in items]
    _check_every_credential(v, {cid: (it[0], it[1], "ipfs://dir/" + it[2], "ipfs://dir/" + it[3] if it[3] else "",
                                      it[4]) for cid, it in zip(ids, items)})
    created = v.w3.eth.get_transaction_count(v.env.vault_address) - 1  # a contract's nonce starts at 1
    assert created == 3  # 3 rows | the huge one in slots | 3 rows | 1 row


@pytest.mark.parametrize("scenario,goal", [("shared-dir", 80_000), ("empty", 65_000), ("distinct", 180_000)])
def test_a_batch_of_100_costs_less_than_the_goal_per_credential(devchain, v, scenario, goal):
    wallets = [to_checksum_address(fp(("goal wallet", i))[:20]) for i in range(100)]  # new students
    if scenario == "shared-dir":
        base, items = BASE, [(w, fp(("g", i)), f"{i}.json", f"{i}.enc", 0) for i, w in enumerate(wallets)]
    elif scenario == "empty":
        base, items = "", [(w, fp(("g", i)), "", "", 0) for i, w in enumerate(wallets)]
    else:
        base, items = "", [(w, fp(("g", i)), "ipfs://" + "m" * 59, "ipfs://" + "p" * 59, 0)
                           for i, w in enumerate(wallets)]
    _, receipt = issue_batch(v, items, base=base)
    assert receipt["gasUsed"] / 100 < goal


def test_a_batch_of_one_row_without_uris_is_kept_in_slots_and_creates_no_data_contract(devchain, v):
    w = devchain.accounts[5].address
    nonce = v.w3.eth.get_transaction_count(v.env.vault_address)
    ids, receipt = issue_batch(v, [(w, fp("lone"), "", "", 5_000_000_000)], base=BASE)
    assert ids == [1] and v.w3.eth.get_transaction_count(v.env.vault_address) == nonce
    assert v.events(receipt, "CredentialIssued") == [{
        "credentialId": 1, "studentWallet": w, "institution": v.env.institution_address, "fingerprint": fp("lone"),
        "metadataURI": "", "encryptedPayloadURI": "", "expiresAt": 5_000_000_000}]
    assert v.f.getCredential(1).call()[:6] == (1, w, v.env.institution_address, fp("lone"), "", "")
    assert issue_batch(v, [(w, fp("lone"), "", "", 0)])[0] == [0]  # issued already: skipped
    ids, _ = issue_batch(v, [(w, fp("with uri"), "1.json", "", 0)])  # a URI: a blob
    assert ids == [2] and v.w3.eth.get_transaction_count(v.env.vault_address) == nonce + 1
    assert v.f.studentCredentialIds(w).call() == [1, 2]
