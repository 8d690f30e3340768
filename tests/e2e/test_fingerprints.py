"""Private fingerprints (document version 2): the salt's properties as pure rules, docs/fingerprints.md's worked
example, and a real pipeline (Anvil, RabbitMQ, SQLite, signer and consumer processes) where re-uploads stay
idempotent with the same secret, with a new secret (the database check by row identity), and v1 documents issued
before the secret existed still verify."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import rfc8785
from sqlalchemy import select
from sqlmodel import Session

from blockproof.errors import ConfigurationError
from blockproof.settings import PROJECT_ROOT, Settings
from blockproof.verify import credential_status
from models.tables import Job
from producers.canonical import credential_document, fingerprint
from blockproof.production import fingerprint_secret, read_secret
from producers.salt import salt
from producers.upload import commit, plan
from producers.validation import validate_file
from tests.harness import write_csv

SECRET_A = b"a" * 16 + b"institution secret number one"
SECRET_B = b"b" * 16 + b"institution secret number two"
ROW = dict(institution="0x70997970C51812dc3A010C7d01b50e0d17dc79C8", student_id="00123",
           student_name="Zoë O'Connor", student_wallet="0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
           degree="Bachelor of Science", major="Computer Science", graduation_date="2025-06-14")
SPEC = (PROJECT_ROOT / "docs" / "fingerprints.md").read_text(encoding="utf-8")


def test_the_salt_is_the_same_for_the_same_row_and_secret_so_a_re_upload_keeps_its_fingerprint():
    assert credential_document(**ROW, secret=SECRET_A) == credential_document(**ROW, secret=SECRET_A)
    doc = credential_document(**ROW, secret=SECRET_A)
    assert doc["version"] == 2 and re.fullmatch(r"0x[0-9a-f]{64}", doc["salt"])
    unsalted = {k: v for k, v in doc.items() if k != "salt"}
    assert doc["salt"] == salt(SECRET_A, rfc8785.dumps(unsalted))


def test_another_secret_gives_another_salt_and_fingerprint_and_neither_is_the_plain_one():
    a, b = credential_document(**ROW, secret=SECRET_A), credential_document(**ROW, secret=SECRET_B)
    plain = credential_document(**ROW)
    assert a["salt"] != b["salt"] and len({fingerprint(a), fingerprint(b), fingerprint(plain)}) == 3
    assert plain["version"] == 1 and "salt" not in plain
    assert credential_document(**ROW | {"student_id": "00124"}, secret=SECRET_A)["salt"] != a["salt"]


def test_validation_builds_the_same_version_2_documents_as_credential_document(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("student_id,student_name,student_wallet,degree,major,graduation_date,institution,expires_at\n"
                    f"00123,Zoë O'Connor,{ROW['student_wallet']},Bachelor of Science,Computer Science,2025-06-14,"
                    f"{ROW['institution']},\n"
                    f'S2,"Kim, ""MJ""",{ROW["student_wallet"]},MA,History,2025-06-14,{ROW["institution"]},2031-01-01\n',
                    encoding="utf-8")
    rows, errors, _ = validate_file(path, secret=SECRET_A)
    assert not errors
    for row in rows.itertuples():
        doc = credential_document(institution=row.institution, student_id=row.student_id,
                                  student_name=row.student_name, student_wallet=row.student_wallet, degree=row.degree,
                                  major=row.major, graduation_date=row.graduation_date, expires_at=row.expires_at,
                                  secret=SECRET_A)
        assert row.document == rfc8785.dumps(doc).decode() and row.fingerprint == fingerprint(doc)


def test_the_worked_example_in_docs_fingerprints_md_is_what_the_code_computes():
    secret = re.search(r"Secret \(the file's bytes\): `([^`]+)`", SPEC).group(1).encode()
    doc = credential_document(**ROW, secret=secret)
    assert doc["salt"] in SPEC and fingerprint(doc) in SPEC and rfc8785.dumps(doc).decode() in SPEC
    assert rfc8785.dumps({k: v for k, v in doc.items() if k != "salt"}).decode() in SPEC


def test_the_secret_file_is_read_without_its_trailing_newline_and_a_short_or_missing_one_is_refused(tmp_path):
    good = tmp_path / "secret"
    good.write_bytes(SECRET_A + b"\n")
    assert read_secret(good) == SECRET_A
    short = tmp_path / "short"
    short.write_bytes(b"tooshort-secret\n")
    with pytest.raises(ConfigurationError) as exc:
        read_secret(short)
    assert "15 bytes" in str(exc.value) and "at least 32" in str(exc.value) and "tooshort" not in str(exc.value)
    with pytest.raises(ConfigurationError, match="cannot read"):
        read_secret(tmp_path / "missing")
    assert fingerprint_secret(Settings(fingerprint_secret_file=None)) is None
    with pytest.raises(ConfigurationError, match="BLOCKPROOF_FINGERPRINT_SECRET_FILE"):
        fingerprint_secret(Settings(fingerprint_secret_file=None, production=True))


# ---- a real pipeline ----------------------------------------------------------------------------------------
def _upload(p, path: Path, secret_file: Path | None):
    settings = p.settings(fingerprint_secret_file=secret_file)
    report, rows = plan(str(path), filename=path.name, institution=None, settings=settings, engine=p.engine)
    return commit(report, rows, settings=settings, engine=p.engine)


def _issued(p, batch_id: int) -> list[Job]:
    with Session(p.engine) as s:
        return list(s.execute(select(Job).where(Job.batch_id == batch_id).order_by(Job.line)).scalars())


def test_re_uploads_stay_idempotent_across_versions_and_secrets_and_v1_documents_still_verify(
        make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url)
    p.start("signer")
    p.start("consumer")
    first, second = write_csv(tmp_path / "first.csv", 6, seed=61), write_csv(tmp_path / "second.csv", 6, seed=62)
    secret_a, secret_b = tmp_path / "secret-a", tmp_path / "secret-b"
    secret_a.write_bytes(SECRET_A + b"\n")
    secret_b.write_bytes(SECRET_B)

    plain = _upload(p, first, None)  # issued before the institution had a secret: version 1
    private = _upload(p, second, secret_a)
    assert plain.queued == private.queued == 6
    p.wait_until_settled(12)

    again = _upload(p, second, secret_a)  # same secret: the same fingerprints
    assert (again.new, again.duplicate, again.queued) == (0, 6, 0)
    assert all("was uploaded before" in e.reason and "another fingerprint" not in e.reason for e in again.skipped)
    lost = _upload(p, second, secret_b)  # the secret was lost and replaced: recognised by row identity
    assert (lost.new, lost.duplicate, lost.queued) == (0, 6, 0)
    assert all("under another fingerprint" in e.reason for e in lost.skipped), lost.skipped
    upgraded = _upload(p, first, secret_a)  # v1 rows uploaded again once the secret exists
    assert (upgraded.new, upgraded.duplicate, upgraded.queued) == (0, 6, 0)
    p.assert_exactly_once(12)

    for batch_id, version in ((plain.batch_id, 1), (private.batch_id, 2)):
        for job in _issued(p, batch_id):
            document = json.loads(job.document)
            assert document["version"] == version and ("salt" in document) == (version == 2)
            answer = credential_status(job.credential_id, fingerprint=fingerprint(document), settings=p.settings(),
                                       engine=p.engine)
            assert answer["verdict"] == "valid", answer

    database = Path(sqlite_url.removeprefix("sqlite:///"))
    stored = b"".join(f.read_bytes() for f in database.parent.glob(database.name + "*"))
    logs = "".join(p.log(role) for role in ("signer", "consumer"))
    for secret in (SECRET_A, SECRET_B):
        assert secret not in stored and secret.decode() not in logs, "the secret reached the database or a log"
        assert secret.decode() not in json.dumps([r.as_dict() for r in (private, again, lost, upgraded)])
