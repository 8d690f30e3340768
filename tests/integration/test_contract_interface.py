"""Every call, error, event and rule of the interface (docs/contract.md), on a real Anvil, against BOTH our vault and the
interface-only Basic contract (so the Basic one is proven to be a faithful compatibility target)."""

from __future__ import annotations

import pytest

from blockproof.devchain import deploy_dev_environment
from contracts.artifacts import BASIC, VAULT
from contracts.testing import ZERO32, ZERO_ADDRESS, fp

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=[VAULT, BASIC])
def deployed(devchain, request):
    return deploy_dev_environment(devchain, artifact_name=request.param)


@pytest.fixture
def acct(devchain):
    a = devchain.accounts
    return {"admin": a[0], "institution": a[1], "signer": a[2], "outsider": a[3], "registrar": a[4],
            "student": a[5], "student2": a[6], "newadmin": a[7], "other_inst": a[8]}


# ----------------------------------------------------------------------------- roles & admin

def test_deployer_is_super_admin_and_construction_emits_super_admin_updated(v, acct):
    assert v.f.superAdmin().call() == acct["admin"].address
    assert v.f.pendingSuperAdmin().call() == ZERO_ADDRESS
    assert v.f.paused().call() is False
    assert v.f.credentialCount().call() == 0
    logs = v.contract.events.SuperAdminUpdated().get_logs(from_block=0)
    assert [dict(e.args) for e in logs][:1] == [{"newAdmin": acct["admin"].address}]


def test_two_step_super_admin_transfer_only_completes_when_pending_admin_accepts(v, acct):
    new = acct["newadmin"]
    err = v.revert_of(v.f.transferSuperAdmin(new.address), acct["outsider"].address)
    assert (err.name, err.args) == ("NotSuperAdmin", {})
    err = v.revert_of(v.f.transferSuperAdmin(ZERO_ADDRESS), acct["admin"].address)
    assert err.name == "InvalidSuperAdminCandidate"

    v.tx(v.f.transferSuperAdmin(new.address), acct["admin"].private_key)
    assert v.f.pendingSuperAdmin().call() == new.address
    assert v.f.superAdmin().call() == acct["admin"].address  # not yet

    assert v.revert_of(v.f.acceptSuperAdmin(), acct["outsider"].address).name == "NotSuperAdmin"
    assert v.revert_of(v.f.acceptSuperAdmin(), acct["admin"].address).name == "NotSuperAdmin"
    receipt = v.tx(v.f.acceptSuperAdmin(), new.private_key)
    assert v.events(receipt, "SuperAdminUpdated") == [{"newAdmin": new.address}]
    assert v.f.superAdmin().call() == new.address
    assert v.f.pendingSuperAdmin().call() == ZERO_ADDRESS
    # the old admin lost its powers, the new one has them
    assert v.revert_of(v.f.setPaused(True), acct["admin"].address).name == "NotSuperAdmin"
    v.tx(v.f.setPaused(True), new.private_key)
    assert v.f.paused().call() is True


def test_accept_super_admin_without_pending_transfer_is_rejected(v, acct):
    assert v.revert_of(v.f.acceptSuperAdmin(), acct["outsider"].address).name == "NotSuperAdmin"


def test_only_super_admin_sets_registrars_and_each_change_emits_registrar_updated(v, acct):
    reg = acct["registrar"].address
    assert v.revert_of(v.f.setRegistrar(reg, True), acct["outsider"].address).name == "NotSuperAdmin"
    assert v.f.registrars(reg).call() is False
    receipt = v.tx(v.f.setRegistrar(reg, True), acct["admin"].private_key)
    assert v.events(receipt, "RegistrarUpdated") == [{"registrar": reg, "allowed": True}]
    assert v.f.registrars(reg).call() is True
    receipt = v.tx(v.f.setRegistrar(reg, False), acct["admin"].private_key)
    assert v.events(receipt, "RegistrarUpdated") == [{"registrar": reg, "allowed": False}]
    assert v.f.registrars(reg).call() is False


def test_pause_blocks_issue_and_revoke_with_contract_paused_until_unpaused(v, acct):
    cid = v.issue(acct["student"].address, fp("p1"))
    assert v.revert_of(v.f.setPaused(True), acct["outsider"].address).name == "NotSuperAdmin"
    receipt = v.tx(v.f.setPaused(True), acct["admin"].private_key)
    assert v.events(receipt, "PausedStateChanged") == [{"isPaused": True, "triggeredBy": acct["admin"].address}]
    assert v.f.paused().call() is True

    err = v.revert_of(v.f.issueCredential(v.request(acct["student"].address, fp("p2"))), acct["signer"].address)
    assert (err.name, err.args) == ("ContractPaused", {})
    err = v.revert_of(v.f.revokeCredential(cid, ZERO32), acct["signer"].address)
    assert err.name == "ContractPaused"

    receipt = v.tx(v.f.setPaused(False), acct["admin"].private_key)
    assert v.events(receipt, "PausedStateChanged") == [{"isPaused": False, "triggeredBy": acct["admin"].address}]
    assert v.issue(acct["student"].address, fp("p2")) == cid + 1
    v.tx(v.f.revokeCredential(cid, ZERO32))


# ----------------------------------------------------------------------------- institutions

def test_upsert_institution_requires_a_registrar(v, acct):
    inst = acct["other_inst"].address
    err = v.revert_of(v.f.upsertInstitution(inst, "Other", True), acct["outsider"].address)
    assert (err.name, err.args) == ("NotRegistrar", {})
    v.tx(v.f.setRegistrar(acct["admin"].address, False), acct["admin"].private_key)
    # the super admin is not implicitly a registrar
    assert v.revert_of(v.f.upsertInstitution(inst, "Other", True), acct["admin"].address).name == "NotRegistrar"


def test_upsert_institution_rejects_zero_address_and_empty_name(v, acct):
    admin = acct["admin"].address
    assert v.revert_of(v.f.upsertInstitution(ZERO_ADDRESS, "X", True), admin).name == "InvalidInstitution"
    assert v.revert_of(v.f.upsertInstitution(acct["other_inst"].address, "", True), admin).name == "InvalidInstitution"


def test_first_upsert_sets_created_at_and_every_upsert_sets_last_updated_at(devchain, v, acct):
    inst = acct["other_inst"].address
    assert v.f.getInstitution(inst).call() == ("", False, False, 0, 0)
    r1 = v.tx(v.f.upsertInstitution(inst, "Other College", True), acct["admin"].private_key)
    t1 = v.block_timestamp(r1)
    assert v.events(r1, "InstitutionUpserted") == [
        {"institution": inst, "name": "Other College", "isActive": True, "timestamp": t1}]
    assert v.f.getInstitution(inst).call() == ("Other College", True, True, t1, t1)

    devchain.increase_time(100)
    r2 = v.tx(v.f.upsertInstitution(inst, "Other College (renamed)", False), acct["admin"].private_key)
    t2 = v.block_timestamp(r2)
    assert t2 >= t1 + 100
    assert v.events(r2, "InstitutionUpserted") == [
        {"institution": inst, "name": "Other College (renamed)", "isActive": False, "timestamp": t2}]
    assert v.f.getInstitution(inst).call() == ("Other College (renamed)", True, False, t1, t2)


def test_set_institution_controller_allowed_for_super_admin_registrar_and_institution_only(v, acct):
    inst, ctrl = acct["institution"], acct["student2"].address
    err = v.revert_of(v.f.setInstitutionController(inst.address, ctrl, True), acct["outsider"].address)
    assert (err.name, err.args) == ("UnauthorizedController",
                                    {"institution": inst.address, "sender": acct["outsider"].address})
    # super admin (drop its registrar role first to prove the super-admin path on its own)
    v.tx(v.f.setRegistrar(acct["admin"].address, False), acct["admin"].private_key)
    r = v.tx(v.f.setInstitutionController(inst.address, ctrl, True), acct["admin"].private_key)
    assert v.events(r, "InstitutionControllerUpdated") == [
        {"institution": inst.address, "controller": ctrl, "allowed": True}]
    assert v.f.isController(inst.address, ctrl).call() is True
    # the institution itself
    r = v.tx(v.f.setInstitutionController(inst.address, ctrl, False), inst.private_key)
    assert v.events(r, "InstitutionControllerUpdated") == [
        {"institution": inst.address, "controller": ctrl, "allowed": False}]
    assert v.f.isController(inst.address, ctrl).call() is False
    # a registrar
    v.tx(v.f.setRegistrar(acct["registrar"].address, True), acct["admin"].private_key)
    v.tx(v.f.setInstitutionController(inst.address, ctrl, True), acct["registrar"].private_key)
    assert v.f.isController(inst.address, ctrl).call() is True


def test_set_institution_controller_rejects_unknown_institution_and_zero_controller(v, acct):
    admin = acct["admin"].address
    unknown = acct["other_inst"].address
    err = v.revert_of(v.f.setInstitutionController(unknown, acct["signer"].address, True), admin)
    assert (err.name, err.args) == ("InstitutionNotFound", {"institution": unknown})
    inst = acct["institution"].address
    err = v.revert_of(v.f.setInstitutionController(inst, ZERO_ADDRESS, True), admin)
    assert (err.name, err.args) == ("UnauthorizedController", {"institution": inst, "sender": ZERO_ADDRESS})


def test_can_issue_for_institution_is_true_for_the_institution_itself_and_enabled_controllers(v, acct):
    inst = acct["institution"].address
    assert v.f.canIssueForInstitution(inst, inst).call() is True
    assert v.f.canIssueForInstitution(inst, acct["signer"].address).call() is True
    assert v.f.isController(inst, acct["signer"].address).call() is True
    assert v.f.isController(inst, inst).call() is False
    assert v.f.canIssueForInstitution(inst, acct["outsider"].address).call() is False
    v.tx(v.f.setInstitutionController(inst, acct["signer"].address, False), acct["admin"].private_key)
    assert v.f.canIssueForInstitution(inst, acct["signer"].address).call() is False
    err = v.revert_of(v.f.issueCredential(v.request(acct["student"].address, fp("x"))), acct["signer"].address)
    assert (err.name, err.args) == ("UnauthorizedController", {"institution": inst, "sender": acct["signer"].address})


# ----------------------------------------------------------------------------- issuing

def test_issue_credential_returns_sequential_ids_and_emits_credential_issued(v, acct):
    student = acct["student"].address
    req = v.request(student, fp(1), "ipfs://meta-1", "ipfs://payload-1", 0)
    assert v.f.issueCredential(req).call({"from": acct["signer"].address}) == 1
    r = v.tx(v.f.issueCredential(req))
    assert v.events(r, "CredentialIssued") == [{
        "credentialId": 1, "studentWallet": student, "institution": acct["institution"].address,
        "fingerprint": fp(1), "metadataURI": "ipfs://meta-1", "encryptedPayloadURI": "ipfs://payload-1",
        "expiresAt": 0}]
    assert v.issue(acct["student2"].address, fp(2), expires_at=2**64 - 1) == 2
    assert v.issue(student, fp(3)) == 3
    assert v.f.credentialCount().call() == 3
    assert v.f.fingerprintUsed(fp(1)).call() is True
    assert v.f.fingerprintUsed(fp(99)).call() is False


def test_get_credential_returns_every_stored_field(v, acct):
    student = acct["student"].address
    meta, payload = "ipfs://" + "m" * 59, "ipfs://" + "p" * 59
    r = v.tx(v.f.issueCredential(v.request(student, fp("g"), meta, payload, 4_000_000_000)))
    t = v.block_timestamp(r)
    assert v.f.getCredential(1).call() == (
        1, student, acct["institution"].address, fp("g"), meta, payload, t, 4_000_000_000, 0, ZERO32, False)
    assert v.f.credentialStatus(1).call() == (
        True, True, False, fp("g"), student, acct["institution"].address, t, 4_000_000_000, 0)


def test_get_credential_of_unknown_id_reverts_credential_not_found(v, acct):
    for unknown in (0, 1, 12345):
        err = v.revert_of(v.f.getCredential(unknown), acct["outsider"].address)
        assert (err.name, err.args) == ("CredentialNotFound", {"credentialId": unknown})


def test_issue_rejects_sender_that_is_neither_institution_nor_controller(v, acct):
    err = v.revert_of(v.f.issueCredential(v.request(acct["student"].address, fp(1))), acct["outsider"].address)
    assert (err.name, err.args) == ("UnauthorizedController",
                                    {"institution": acct["institution"].address, "sender": acct["outsider"].address})


def test_issue_for_unregistered_institution_reverts_institution_not_found(v, acct):
    unknown = acct["other_inst"]
    req = v.request(acct["student"].address, fp(1), institution=unknown.address)
    err = v.revert_of(v.f.issueCredential(req), unknown.address)  # the institution itself may issue
    assert (err.name, err.args) == ("InstitutionNotFound", {"institution": unknown.address})


def test_issue_for_deactivated_institution_reverts_until_reactivated(v, acct):
    inst = acct["institution"].address
    v.tx(v.f.upsertInstitution(inst, "Example University", False), acct["admin"].private_key)
    err = v.revert_of(v.f.issueCredential(v.request(acct["student"].address, fp(1))), acct["signer"].address)
    assert (err.name, err.args) == ("InstitutionInactive", {"institution": inst})
    v.tx(v.f.upsertInstitution(inst, "Example University", True), acct["admin"].private_key)
    assert v.issue(acct["student"].address, fp(1)) == 1


def test_issue_rejects_zero_student_wallet_and_zero_fingerprint(v, acct):
    signer = acct["signer"].address
    assert v.revert_of(v.f.issueCredential(v.request(ZERO_ADDRESS, fp(1))), signer).name == "InvalidStudentWallet"
    assert v.revert_of(v.f.issueCredential(v.request(acct["student"].address, ZERO32)), signer).name == \
        "InvalidFingerprint"


def test_issue_rejects_a_fingerprint_used_before_even_for_another_student(v, acct):
    v.issue(acct["student"].address, fp("dup"))
    err = v.revert_of(v.f.issueCredential(v.request(acct["student2"].address, fp("dup"))), acct["signer"].address)
    assert (err.name, err.args) == ("FingerprintAlreadyUsed", {"fingerprint": "0x" + fp("dup").hex()})
    assert v.f.credentialCount().call() == 1


def test_institution_address_itself_can_issue_and_revoke(v, acct):
    inst = acct["institution"]
    cid = v.issue(acct["student"].address, fp("self"), key=inst.private_key)
    assert v.f.getCredential(cid).call()[2] == inst.address
    v.tx(v.f.revokeCredential(cid, ZERO32), inst.private_key)
    assert v.f.credentialStatus(cid).call()[2] is True


# ----------------------------------------------------------------------------- revoking

def test_revoke_credential_records_reason_and_emits_credential_revoked(v, acct):
    cid = v.issue(acct["student"].address, fp("r"))
    reason = fp("reason: diploma withdrawn")
    r = v.tx(v.f.revokeCredential(cid, reason))
    t = v.block_timestamp(r)
    assert v.events(r, "CredentialRevoked") == [
        {"credentialId": cid, "revokedBy": acct["signer"].address, "reasonHash": reason, "revokedAt": t}]
    c = v.f.getCredential(cid).call()
    assert (c[8], c[9], c[10]) == (t, reason, True)
    assert v.f.credentialStatus(cid).call()[:3] == (True, False, True)
    assert v.f.credentialStatus(cid).call()[8] == t


def test_revoke_rejects_unknown_id_unauthorized_sender_and_second_revocation(v, acct):
    err = v.revert_of(v.f.revokeCredential(77, ZERO32), acct["signer"].address)
    assert (err.name, err.args) == ("CredentialNotFound", {"credentialId": 77})
    cid = v.issue(acct["student"].address, fp("r2"))
    err = v.revert_of(v.f.revokeCredential(cid, ZERO32), acct["outsider"].address)
    assert (err.name, err.args) == ("UnauthorizedController",
                                    {"institution": acct["institution"].address, "sender": acct["outsider"].address})
    v.tx(v.f.revokeCredential(cid, ZERO32))
    err = v.revert_of(v.f.revokeCredential(cid, fp("again")), acct["signer"].address)
    assert (err.name, err.args) == ("CredentialRevokedAlready", {"credentialId": cid})


def test_revoke_with_zero_reason_hash_is_allowed(v, acct):
    cid = v.issue(acct["student"].address, fp("r3"))
    r = v.tx(v.f.revokeCredential(cid, ZERO32))
    assert v.events(r, "CredentialRevoked")[0]["reasonHash"] == ZERO32
    assert v.f.getCredential(cid).call()[9:] == (ZERO32, True)


# ----------------------------------------------------------------------------- status & views

def test_credential_status_of_unknown_id_is_all_zero_with_exists_false(v, acct):
    assert v.f.credentialStatus(5).call() == (False, False, False, ZERO32, ZERO_ADDRESS, ZERO_ADDRESS, 0, 0, 0)
    assert v.f.verifyFingerprint(5, fp(5)).call() is False


def test_credential_becomes_invalid_once_expires_at_is_in_the_past(devchain, v, acct):
    now = v.block_timestamp()
    expiring = v.issue(acct["student"].address, fp("exp"), expires_at=now + 100)
    forever = v.issue(acct["student"].address, fp("forever"), expires_at=0)
    assert v.f.credentialStatus(expiring).call()[1] is True
    assert v.f.verifyFingerprint(expiring, fp("exp")).call() is True

    devchain.increase_time(50)
    assert v.f.credentialStatus(expiring).call()[1] is True
    devchain.increase_time(200)
    status = v.f.credentialStatus(expiring).call()
    assert status[:3] == (True, False, False)  # exists, not valid, not revoked
    assert status[7] == now + 100
    assert v.f.verifyFingerprint(expiring, fp("exp")).call() is False
    assert v.f.credentialStatus(forever).call()[1] is True
    assert v.f.verifyFingerprint(forever, fp("forever")).call() is True


def test_verify_fingerprint_needs_matching_fingerprint_and_valid_credential(v, acct):
    cid = v.issue(acct["student"].address, fp("v"))
    assert v.f.verifyFingerprint(cid, fp("v")).call() is True
    assert v.f.verifyFingerprint(cid, fp("other")).call() is False
    v.tx(v.f.revokeCredential(cid, ZERO32))
    assert v.f.verifyFingerprint(cid, fp("v")).call() is False


def test_student_credential_ids_lists_a_students_ids_in_issue_order(v, acct):
    a, b = acct["student"].address, acct["student2"].address
    assert v.f.studentCredentialIds(a).call() == []
    ids_a = [v.issue(a, fp("a1"))]
    ids_b = [v.issue(b, fp("b1"))]
    ids_a += [v.issue(a, fp("a2")), v.issue(a, fp("a3"))]
    ids_b += [v.issue(b, fp("b2"))]
    assert v.f.studentCredentialIds(a).call() == ids_a == [1, 3, 4]
    assert v.f.studentCredentialIds(b).call() == ids_b == [2, 5]
    v.tx(v.f.revokeCredential(3, ZERO32))  # revoked credentials stay listed
    assert v.f.studentCredentialIds(a).call() == [1, 3, 4]


def test_get_institution_of_unknown_address_is_empty(v, acct):
    assert v.f.getInstitution(acct["outsider"].address).call() == ("", False, False, 0, 0)


# ----------------------------------------------------------------------------- ABI compatibility

def _canonical(params) -> str:
    def one(p):
        t = p["type"]
        if t.startswith("tuple"):
            return "(" + _canonical(p["components"]) + ")" + t[len("tuple"):]
        return t + (" indexed" if p.get("indexed") else "")
    return ",".join(one(p) for p in params)


def _entries(abi):
    out = {}
    for e in abi:
        if e["type"] in ("function", "event", "error"):
            out[(e["type"], e["name"], _canonical(e.get("inputs", [])))] = (
                _canonical(e.get("outputs", [])), e.get("stateMutability"), e.get("anonymous"))
    return out


def test_our_abi_contains_every_interface_function_event_and_error_with_identical_types():
    from contracts.artifacts import load_artifact

    basic, ours = _entries(load_artifact(BASIC).abi), _entries(load_artifact(VAULT).abi)
    missing = {k: v for k, v in basic.items() if ours.get(k) != v}
    assert not missing, missing
    extensions = {k[1] for k in set(ours) - set(basic)}
    assert extensions == {"issueCredentialBatch", "revokeCredentialBatch", "supportsInterface",
                          "BatchLengthMismatch", "issueCredentialBatchPacked", "PackedRowsMalformed"}
    assert len([k for k in basic if k[0] == "error"]) == 13
    assert len([k for k in basic if k[0] == "event"]) == 7
