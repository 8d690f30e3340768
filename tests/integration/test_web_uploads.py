"""The web upload's own storage and its error CSV, on a real SQLite database (no chain needed: with no contract
configured the preview skips the chain checks and says so)."""
from __future__ import annotations

import secrets

from fastapi.testclient import TestClient

from blockproof.settings import Settings
from models.db import engine_for, migrate
from producers.error_report import read_error_report
from tests.people import Person
from web.app import create_app

OP = Person("olga", "operator")
HEADER = "student_id,student_name,student_wallet,degree,major,graduation_date,institution\n"
INSTITUTION = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def web(tmp_path, name: str, **overrides) -> TestClient:
    url = f"sqlite:///{tmp_path / f'{name}.db'}"
    migrate(url)
    settings = Settings(database_url=url, vault_address="", rpc_url="http://127.0.0.1:9",
                        web_secret=secrets.token_urlsafe(32), document_dir=tmp_path / name / "documents", **overrides)
    OP.enrol(engine_for(url))
    return TestClient(create_app(settings, engine_for(url), announce=None))


def preview(client: TestClient, text: str) -> dict:
    r = client.post("/api/uploads", auth=OP, files={"file": ("list.csv", text.encode(), "text/csv")})
    assert r.status_code == 200, r.text
    return r.json()


def test_two_instances_with_their_own_staging_folders_do_not_see_each_others_pending_uploads(tmp_path):
    a = web(tmp_path, "a", upload_staging_dir=tmp_path / "a" / "uploads")
    b = web(tmp_path, "b", upload_staging_dir=tmp_path / "b" / "uploads")
    token = preview(a, HEADER + f"S1,Ada,0x{'11' * 20},BSc,CS,2025-06-14,{INSTITUTION}\n")["token"]

    assert a.get(f"/api/uploads/{token}", auth=OP).status_code == 200
    assert b.get(f"/api/uploads/{token}", auth=OP).status_code == 404
    assert b.post(f"/api/uploads/{token}/commit", auth=OP).status_code == 404
    assert (tmp_path / "a" / "uploads" / token / "upload.csv").is_file()
    assert not (tmp_path / "b" / "uploads").exists() or not any((tmp_path / "b" / "uploads").iterdir())


def test_the_error_csv_carries_each_invalid_rows_original_columns_before_and_after_the_commit(tmp_path):
    client = web(tmp_path, "w", upload_staging_dir=tmp_path / "uploads")
    text = ("Student ID,Name,Wallet,Degree,Major,Graduation date,Institution,Notes\n"
            f"S1,Ada,0x{'11' * 20},BSc,CS,2025-06-14,{INSTITUTION},fine\n"
            f"S2,Bob,0x12,BSc,CS,2025-06-14,{INSTITUTION},=cmd|' /C calc'!A0\n")
    token = preview(client, text)["token"]

    def rows():
        r = client.get(f"/api/uploads/{token}/errors.csv", auth=OP)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        return read_error_report(r.content)

    expected = [{"line": 3, "field": "student_wallet", "value": "0x12", "reason": "is not an Ethereum address",
                 "Student ID": "S2", "Name": "Bob", "Wallet": "0x12", "Degree": "BSc", "Major": "CS",
                 "Graduation date": "2025-06-14", "Institution": INSTITUTION, "Notes": "=cmd|' /C calc'!A0"}]
    assert rows() == expected
    committed = client.post(f"/api/uploads/{token}/commit", auth=OP, json={"reject_on_invalid": True})
    assert committed.status_code == 200 and committed.json()["committed"]["rejected"]
    assert rows() == expected  # the uploaded file is gone after the commit; its error CSV is not


def test_the_error_csv_of_a_file_that_cannot_be_read_says_why(tmp_path):
    client = web(tmp_path, "w", upload_staging_dir=tmp_path / "uploads")
    view = preview(client, "name,wallet\nAda,0x1\n")
    assert view["file_error"].startswith("Missing required column(s)")
    r = client.get(f"/api/uploads/{view['token']}/errors.csv", auth=OP)
    assert read_error_report(r.content) == [{"line": "", "field": "", "value": "", "reason": view["file_error"]}]
