"""The public verification page in real headless Chromium (Debian's /usr/bin/chromium via Playwright) against
`blockproof web` as its own process and a real pipeline (Anvil, RabbitMQ, SQLite, signer and consumer processes,
private fingerprints): one credential that stays valid, one revoked, one expired (the chain's clock moved 30 days
ahead), a valid document altered by hand, and a document never issued. Each verdict is read the way a person reads
it and photographed (docs/screenshots/verify-*.png via `make screenshots`). The same answers come from the chain
alone (a server with an empty database), and the public endpoints are rate-limited."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import uuid
import zipfile

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session

from models.db import migrate
from models.tables import Job
from producers.canonical import canonical_json, credential_document
from producers.export import iter_documents_zip
from tests.harness import revoke_and_wait, running_pipeline, write_csv
from tests.web_helpers import ARGS, CHROMIUM, SHOTS, require_chromium, web_server
from web.app import create_app
from web.ratelimit import RateLimit

DAY = 86400
WEB = {"operator_password": "op-" + uuid.uuid4().hex[:8], "viewer_password": "vw-" + uuid.uuid4().hex[:8],
       "web_secret": uuid.uuid4().hex * 2}
TITLES = {"valid": "Valid", "revoked": "Revoked", "expired": "Expired", "not_issued": "Not issued by this contract",
          "altered": "Altered"}


def test_a_client_past_its_budget_waits_and_its_budget_refills_with_time():
    now = [0.0]
    limit = RateLimit(60, burst=2, clock=lambda: now[0])
    assert limit.wait_seconds("a") == 0 and limit.wait_seconds("a") == 0
    assert limit.wait_seconds("a") == pytest.approx(1.0)  # one token a second
    assert limit.wait_seconds("b") == 0, "another client has its own budget"
    now[0] = 1.0
    assert limit.wait_seconds("a") == 0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three issued credentials (valid, revoked, expired by chain time), their documents from the results export,
    and `blockproof web` serving them."""
    require_chromium()
    secret = tmp_path_factory.mktemp("verify-page-secret") / "fingerprint.secret"
    secret.write_bytes(os.urandom(32).hex().encode())
    with running_pipeline(tmp_path_factory, "verify-page",
                          extra_env={"BLOCKPROOF_FINGERPRINT_SECRET_FILE": str(secret),
                                     "BLOCKPROOF_EXPLORER_URL": "https://explorer.example"}) as p:
        workdir, chain = p.workdir, p.chain
        source = write_csv(workdir / "plain.csv", 3, seed=29)
        with open(source, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        rows[2]["expires_at"] = (dt.date.today() + dt.timedelta(days=2)).isoformat()
        for row in rows:
            row.setdefault("expires_at", "")
        path = workdir / "graduates.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) + (["expires_at"] if "expires_at" not in rows[0] else []))
            writer.writeheader()
            writer.writerows(rows)
        report = p.upload(str(path))
        p.wait_until_settled(3)
        with Session(p.engine) as s:
            jobs = list(s.execute(select(Job).where(Job.batch_id == report.batch_id).order_by(Job.line)).scalars())
        revoke_and_wait(p, jobs[1].credential_id)
        chain.rpc("evm_setIntervalMining", 0)  # the chain's clock stands still from here, 30 days ahead
        chain.rpc("evm_increaseTime", 30 * DAY)
        chain.rpc("evm_mine")

        archive = zipfile.ZipFile(io.BytesIO(b"".join(iter_documents_zip(report.batch_id, settings=p.settings(),
                                                                         engine=p.engine))))
        by_id = {json.loads(archive.read(n))["studentId"]: archive.read(n).decode() for n in archive.namelist()}
        documents = {"valid": by_id[jobs[0].student_id], "revoked": by_id[jobs[1].student_id],
                     "expired": by_id[jobs[2].student_id]}
        altered = json.loads(documents["valid"])
        altered["degree"] = "Doctor of Medicine"
        documents["altered"] = json.dumps(altered, indent=2, ensure_ascii=False)
        never = credential_document(institution=p.env.institution_address, student_id="X-1", student_name="Nobody",
                                    student_wallet="0x" + "5a" * 20, degree="BSc", major="Physics",
                                    graduation_date="2025-06-14", secret=b"s" * 32)
        documents["not_issued"] = canonical_json(never).decode()

        env = os.environ | p.env_vars() | {"BLOCKPROOF_OPERATOR_PASSWORD": WEB["operator_password"],
                                           "BLOCKPROOF_VIEWER_PASSWORD": WEB["viewer_password"],
                                           "BLOCKPROOF_WEB_SECRET": WEB["web_secret"]}
        with web_server(env, workdir / "web.log") as base:
            empty = workdir / "empty.db"
            migrate(f"sqlite:///{empty}")
            yield {"p": p, "workdir": workdir, "base": base, "documents": documents, "jobs": jobs, "empty_url": f"sqlite:///{empty}"}


def _fingerprint(text: str) -> str:
    from producers.canonical import fingerprint

    return fingerprint(json.loads(text))


def test_the_page_gives_each_verdict_in_words_a_person_understands_with_a_screenshot_each(world):
    from playwright.sync_api import sync_playwright

    base, documents, jobs = world["base"], world["documents"], world["jobs"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_context(viewport={"width": 900, "height": 760}).new_page()
        SHOTS.mkdir(parents=True, exist_ok=True)
        for verdict, text in documents.items():
            page.goto(base + "/verify")
            if verdict == "valid":  # chosen as a file, as a person would
                path = world["workdir"] / f"{jobs[0].student_id}.json"
                path.write_text(text, encoding="utf-8")
                page.set_input_files("#file", str(path))
            else:
                page.fill("#document", text)
                page.click("#verify-button")
            page.wait_for_selector(f"#result[data-verdict={verdict}]", timeout=30_000)
            shown = page.locator("#result").inner_text()
            assert page.locator("#verdict").inner_text() == TITLES[verdict], shown
            if verdict in ("valid", "revoked", "expired"):
                assert "Example University" in shown and "Issued" in shown and "Transaction" in shown
                link = page.locator("#facts a", has_text="0x").first.get_attribute("href")
                assert link.startswith("https://explorer.example/tx/0x")
            assert {"revoked": "was revoked by its institution on", "expired": "expired on",
                    "altered": "changed after it was issued", "not_issued": "was issued by this contract",
                    "valid": "valid: issued on chain"}[verdict] in shown
            assert jobs[0].student_name not in shown and jobs[0].student_wallet not in shown
            page.wait_for_timeout(200)
            page.screenshot(path=str(SHOTS / f"verify-{verdict.replace('_', '-')}.png"), full_page=True)

        # the QR code's page: the non-personal facts of one fingerprint, rendered by the server
        fp = _fingerprint(documents["revoked"])
        page.goto(f"{base}/verify/{fp}")
        facts = page.locator("#result").inner_text()
        assert page.locator("#verdict").inner_text() == "Revoked" and "Example University" in facts
        assert jobs[1].student_name not in page.content() and jobs[1].student_wallet not in page.content()
        page.screenshot(path=str(SHOTS / "verify-qr.png"), full_page=True)
        browser.close()


def test_the_chain_alone_gives_the_same_answers_as_the_database(world):
    p = world["p"]
    with_db = TestClient(create_app(p.settings(**WEB), p.engine, announce=None))
    chain_only = TestClient(create_app(p.settings(**WEB, database_url=world["empty_url"]), announce=None))
    for verdict, text in world["documents"].items():
        document = json.loads(text)
        query = {"wallet": document["studentWallet"], "institution": document["institution"]}
        a = with_db.get(f"/api/verify/{_fingerprint(text)}", params=query)
        b = chain_only.get(f"/api/verify/{_fingerprint(text)}", params=query)
        assert a.status_code == b.status_code == 200, (a.text, b.text)
        assert a.json()["verdict"] == verdict, a.json()
        assert b.json()["source"] == "chain" and (a.json()["source"] == "database" or verdict in ("altered", "not_issued"))
        assert {k: v for k, v in a.json().items() if k != "source"} == \
            {k: v for k, v in b.json().items() if k != "source"}
        assert "student" not in json.dumps(a.json()).lower()


def test_the_public_endpoints_refuse_a_malformed_fingerprint_and_a_client_past_its_budget(world):
    p = world["p"]
    client = TestClient(create_app(p.settings(**WEB, verify_requests_per_minute=6), p.engine, announce=None))
    bad = client.get("/api/verify/0x12")
    assert bad.status_code == 422 and "0x followed by 64 hexadecimal digits" in bad.json()["detail"]
    assert client.get("/api/verify/0x12").status_code == 422
    refused = client.get("/api/verify/0x12")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert client.get("/verify").status_code == 429
