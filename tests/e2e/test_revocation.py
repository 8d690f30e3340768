"""Bulk revocation: the CSV (aliases, robust reading, row errors) and 200 credentials revoked end to end."""
from __future__ import annotations

import codecs

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from contracts.deploy import vault_contract
from models.tables import ChainTransaction, CredentialEvent, Job, RevocationEvent
from producers.records import CsvFileError
from producers.revocation_csv import read_revocations
from producers.revocations import revoke_file
from tests.harness import write_csv

FP = "0x" + "ab" * 32


def messages(text: str) -> list[str]:
    return [e.message for e in read_revocations(text.encode("utf-8"))[1]]


def test_header_aliases_bom_semicolons_and_quoted_newlines_are_read():
    data = codecs.BOM_UTF8 + f'Credential ID;Credential Hash;Revocation Reason\r\n7;;"issued in error;\r\nsee ticket 12"\r\n;{FP.upper().replace("0X", "0x")};fraud\r\n'.encode()
    requests, errors, total = read_revocations(data)
    assert errors == [] and total == 2
    assert requests == [{"line": 2, "reason": "issued in error;\r\nsee ticket 12", "credential_id": 7, "fingerprint": None},
                        {"line": 4, "reason": "fraud", "credential_id": None, "fingerprint": FP}]


@pytest.mark.parametrize("row,expected", [
    ("x,,fraud", 'Line 2, credential_id "x": is not a credential id (a whole number from 1).'),
    ("0,,fraud", 'Line 2, credential_id "0": is not a credential id (a whole number from 1).'),
    (",0x12,fraud", 'Line 2, fingerprint "0x12": is not a fingerprint (0x followed by 64 hex digits).'),
    (",,fraud", 'Line 2, credential_id "": is required (a credential id or a fingerprint).'),
    ("5,,", 'Line 2, reason "": is required.'),
    ("5,,a\x07b", 'Line 2, reason "a\x07b": contains a control character (U+0007).'),
    ("5,," + "r" * 501, 'Line 2, reason "' + "r" * 40 + '…": is too long (501 characters, at most 500).'),
    ("5,,fraud,extra", 'Line 2: has 4 fields but the header has 3.'),
])
def test_each_bad_row_has_its_exact_message(row, expected):
    assert messages(f"credential_id,fingerprint,reason\n{row}\n") == [expected]


def test_a_credential_listed_twice_is_a_duplicate():
    assert messages("id,reason\n5,fraud\n6,x\n5,again\n") == ["Line 4: duplicate of line 2."]


@pytest.mark.parametrize("text,message", [
    ("student,why\n5,x\n", "Missing required column(s): credential_id or fingerprint. Found columns: student, why."),
    ("id,fingerprint\n5,\n", "Missing required column(s): reason. Found columns: id, fingerprint."),
    ("id,reason\n", "The file has a header row but no data rows."),
    ("", "The file is empty."),
])
def test_file_level_problems(text, message):
    with pytest.raises(CsvFileError) as exc:
        read_revocations(text.encode())
    assert exc.value.message == message


def test_two_hundred_credentials_issued_then_revoked_from_a_csv_are_revoked_on_chain_and_in_the_database(
        make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url)
    p.start("signer")
    p.start("consumer")
    issued = p.upload(write_csv(tmp_path / "list.csv", 200, seed=12))
    assert issued.queued == 200
    p.wait_until_settled(200, timeout=120)
    with Session(p.engine) as s:
        creds = s.execute(select(CredentialEvent.credential_id, CredentialEvent.fingerprint)
                          .order_by(CredentialEvent.credential_id)).all()
    assert len(creds) == 200
    lines = ["Credential No;Hash;Why"]  # semicolons, aliases; half by id, half by fingerprint
    lines += [f"{cid};;graduation record corrected" if i % 2 else f";{fp};issued in error" for i, (cid, fp) in enumerate(creds)]
    lines += ["999999;;typo", f"{creds[0][0]};;listed twice"]
    path = tmp_path / "revoke.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = revoke_file(path, settings=p.settings(), engine=p.engine, filename=path.name)

    assert (report.requested, report.created, report.queued) == (202, 200, 200)
    assert [e.message for e in report.errors] == [
        'Line 202, credential_id "999999": is not a credential this system has seen on chain.',
        "Line 203: duplicate of line 2."]  # the same credential, once by fingerprint, once by id
    p.wait_until_settled(400, timeout=120)
    vault = vault_contract(p.chain.w3, p.env.vault_address)
    statuses = [vault.functions.credentialStatus(cid).call() for cid, _ in creds]
    assert all(st[2] and not st[1] for st in statuses), "not every credential is revoked on chain"  # revoked, not valid
    with Session(p.engine) as s:
        assert s.execute(select(func.count()).select_from(CredentialEvent).where(CredentialEvent.revoked)).scalar_one() == 200
        assert s.execute(select(func.count()).select_from(RevocationEvent)).scalar_one() == 200
        states = dict(s.execute(select(Job.state, func.count()).where(Job.kind == "revoke").group_by(Job.state)).all())
        kinds = dict(s.execute(select(ChainTransaction.kind, func.count()).group_by(ChainTransaction.kind)).all())
    assert states == {"confirmed": 200}
    assert kinds.get("revoke_batch", 0) >= 1 and "revoke_single" not in kinds

    again = revoke_file(path, settings=p.settings(), engine=p.engine, filename=path.name)
    assert again.created == 0 and again.batch_id is None
    assert sum("is already revoked" in e.reason for e in again.errors) == 201  # the 200 and the line listing one twice
