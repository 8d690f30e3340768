"""The HTTP API against a real pipeline: Anvil, RabbitMQ, SQLite, the signer and the consumer as processes.
Uploads go through the API (the producers' one code path); nothing is faked."""
from __future__ import annotations

import csv
import io
import re
import secrets
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlmodel import Session

from blockproof.settings import Settings
from models.tables import AuditEntry, Job
from tests.harness import running_pipeline, write_csv
from web.app import create_app
from tests.people import Person, session_client
from web.auth import StartupRefused, resolve_secret

# named people: an operator and a viewer, each with a password for /login and an API token (auth=OP sends it)
OP, VIEW = Person("olga", "operator"), Person("vera", "viewer")
WEB = {"web_secret": secrets.token_urlsafe(32)}


# ---- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """One running pipeline for the module, with a batch uploaded through the API and settled."""
    with running_pipeline(tmp_path_factory, "webapi") as p:
        yield p


@pytest.fixture(scope="module")
def app(pipeline):
    app = create_app(pipeline.settings(**WEB, max_upload_mb=1), pipeline.engine, announce=None)
    OP.enrol(pipeline.engine)
    VIEW.enrol(pipeline.engine)
    return app


@pytest.fixture(scope="module")
def api(app):
    return TestClient(app)


@pytest.fixture(scope="module")
def issued(api, pipeline, tmp_path_factory):
    """A 12-row CSV with bad rows, previewed and committed through the API, then confirmed on chain."""
    path = write_csv(tmp_path_factory.mktemp("csv") / "graduates.csv", 12, seed=11, invalid_fraction=0.25)
    with open(path, "rb") as f:
        preview = api.post("/api/uploads", auth=OP, files={"file": ("graduates.csv", f, "text/csv")})
    assert preview.status_code == 200, preview.text
    commit = api.post(f"/api/uploads/{preview.json()['token']}/commit", auth=OP)
    assert commit.status_code == 200, commit.text
    batch_id = commit.json()["committed"]["batch_id"]
    pipeline.wait_until_settled(commit.json()["report"]["new"], timeout=120)
    return {"preview": preview.json(), "commit": commit.json(), "batch_id": batch_id, "csv": path}


def _session_client(app, user=OP) -> tuple[TestClient, str]:
    """A browser-like client logged in through /login; returns it and its CSRF token."""
    return session_client(app, user)


def _jobs(pipeline) -> int:
    with Session(pipeline.engine) as s:
        return s.execute(select(func.count()).select_from(Job)).scalar_one()


# ---- authentication ---------------------------------------------------------------------------------
READS = ["/api/overview", "/api/live", "/api/queues", "/api/signers", "/api/indexer", "/api/alerts", "/api/batches",
         "/api/batches/1", "/api/batches/1/jobs", "/api/jobs/1", "/api/search?q=x", "/api/audit", "/api/me",
         "/metrics"]
PAGES = ["/", "/batches", "/batches/1", "/jobs/1", "/upload", "/audit", "/search?q=x", "/credentials/1"]


def test_every_api_read_answers_401_without_credentials_and_every_page_redirects_to_login(api):
    for path in READS:
        r = api.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith("Bearer")
    for path in PAGES:
        r = api.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path


def test_a_wrong_token_is_401_on_the_api_and_a_wrong_password_is_refused_by_the_login_form(app, api):
    assert api.get("/api/overview", headers={"Authorization": "Bearer bpt_wrong"}).status_code == 401
    assert api.get("/api/overview", auth=(OP.name, OP.password)).status_code == 401, "HTTP Basic is gone"
    client = TestClient(app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"username": OP.name, "password": "wrong", "csrf_token": token})
    assert r.status_code == 401 and "Wrong user name or password" in r.text
    assert client.get("/api/me").status_code == 401


def test_a_viewer_can_read_but_cannot_upload_retry_revoke_or_pause(api, issued, pipeline):
    assert api.get("/api/overview", auth=VIEW).status_code == 200
    batch = issued["batch_id"]
    jobs_before = _jobs(pipeline)
    forbidden = [
        ("post", "/api/uploads", {"files": {"file": ("x.csv", b"student_id\n1\n", "text/csv")}}),
        ("post", f"/api/uploads/{issued['preview']['token']}/commit", {}),
        ("post", f"/api/batches/{batch}/retry-failed", {}),
        ("post", "/api/jobs/retry", {"json": {"job_ids": [1]}}),
        ("post", "/api/jobs/1/retry", {}),
        ("post", "/api/credentials/1/revoke", {"json": {"reason": "test"}}),
        ("post", f"/api/batches/{batch}/pause", {}),
        ("post", f"/api/batches/{batch}/resume", {}),
        ("post", f"/api/signers/{pipeline.env.signer_address}/pause", {}),
        ("delete", f"/api/uploads/{issued['preview']['token']}", {}),
    ]
    for method, path, kwargs in forbidden:
        r = getattr(api, method)(path, auth=VIEW, **kwargs)
        assert r.status_code == 403, (path, r.status_code, r.text)
        assert "operator" in r.json()["detail"]
    assert _jobs(pipeline) == jobs_before


def test_a_cookie_session_post_needs_the_session_csrf_token(app, issued):
    client, token = _session_client(app)
    path = f"/api/batches/{issued['batch_id']}/resume"
    assert client.post(path).status_code == 403
    assert client.post(path, headers={"X-CSRF-Token": "forged"}).status_code == 403
    other, other_token = _session_client(app)
    assert client.post(path, headers={"X-CSRF-Token": other_token}).status_code == 403, "another session's token"
    assert client.post(path, headers={"X-CSRF-Token": token}).status_code == 200
    # forms: the hidden field
    r = client.post(f"/batches/{issued['batch_id']}/resume", data={"csrf_token": "nope"}, follow_redirects=False)
    assert r.status_code == 403
    r = client.post(f"/batches/{issued['batch_id']}/resume", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    # the login form itself
    fresh = TestClient(app)
    fresh.get("/login")
    r = fresh.post("/login", data={"username": OP.name, "password": OP.password, "csrf_token": "x"})
    assert r.status_code == 403


def test_an_upload_over_the_size_limit_is_refused_with_413_and_nothing_is_kept(api, app):
    big = b"student_id,student_name\n" + b"S1,Somebody\n" * 120_000  # > 1 MB
    stored_before = set(app.state.uploads.root.iterdir())
    r = api.post("/api/uploads", auth=OP, files={"file": ("big.csv", big, "text/csv")})
    assert r.status_code == 413 and "1 MB" in r.json()["detail"]
    assert set(app.state.uploads.root.iterdir()) == stored_before


def test_unknown_ids_are_404(api):
    for path in ["/api/batches/999999", "/api/batches/999999/jobs", "/api/jobs/999999",
                 "/api/uploads/" + "x" * 32, "/api/uploads/" + "x" * 32 + "/errors.csv",
                 "/api/credentials/999999/status",
                 "/api/credentials/999999/verify?fingerprint=0x" + "ab" * 32]:
        assert api.get(path, auth=VIEW).status_code == 404, path
    for path in ["/api/batches/999999/pause", "/api/batches/999999/retry-failed", "/api/jobs/999999/retry",
                 "/api/uploads/" + "y" * 32 + "/commit", "/api/signers/0x" + "00" * 20 + "/pause"]:
        assert api.post(path, auth=OP).status_code == 404, path
    assert api.post("/api/credentials/999999/revoke", auth=OP, json={"reason": "r"}).status_code == 404
    assert api.get("/jobs/999999", auth=VIEW).status_code == 404


def test_production_mode_refuses_to_start_without_a_web_secret_and_dev_mode_makes_a_random_one():
    with pytest.raises(StartupRefused, match="BLOCKPROOF_WEB_SECRET"):
        resolve_secret(Settings(production=True), announce=None)
    strong = secrets.token_urlsafe(32)
    assert resolve_secret(Settings(production=True, web_secret=strong), announce=None) == strong
    told = io.StringIO()
    first = resolve_secret(Settings(production=False), announce=told)
    assert first != resolve_secret(Settings(production=False), announce=None) and len(first) >= 43
    assert told.getvalue() == "", "a secret made for this process is never printed"


# ---- the upload flow -------------------------------------------------------------------------------------
def test_the_preview_counts_and_lists_every_invalid_row_and_queues_nothing_before_commit(api, pipeline, tmp_path):
    path = write_csv(tmp_path / "preview.csv", 8, seed=99, invalid_fraction=0.4)
    jobs_before = _jobs(pipeline)
    with open(path, "rb") as f:
        r = api.post("/api/uploads", auth=OP, files={"file": ("preview.csv", f, "text/csv")})
    report = r.json()["report"]
    assert r.status_code == 200 and report["total_rows"] == 8
    assert report["invalid"] > 0 and report["new"] + report["invalid"] == 8
    assert all({"line", "field", "value", "reason"} <= set(e) for e in report["errors"])
    assert _jobs(pipeline) == jobs_before, "a preview queued something"
    errors = api.get(f"/api/uploads/{r.json()['token']}/errors.csv", auth=VIEW)
    assert errors.status_code == 200 and errors.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(errors.text.lstrip("\ufeff"))))
    assert len(rows) == len(report["errors"]) and {int(x["line"]) for x in rows} == {e["line"] for e in report["errors"]}
    assert api.delete(f"/api/uploads/{r.json()['token']}", auth=OP).status_code == 200
    assert api.get(f"/api/uploads/{r.json()['token']}", auth=VIEW).status_code == 404


def test_the_error_csv_neutralises_cells_a_spreadsheet_would_run_as_formulas(api, tmp_path):
    path = tmp_path / "evil.csv"
    path.write_text("student_id,student_name,student_wallet,degree,major,graduation_date,institution\n"
                    "S-1,Eve,0x12,BSc,CS,=1+2,0x70997970C51812dc3A010C7d01b50e0d17dc79C8\n")
    with open(path, "rb") as f:
        token = api.post("/api/uploads", auth=OP, files={"file": ("evil.csv", f, "text/csv")}).json()["token"]
    body = api.get(f"/api/uploads/{token}/errors.csv", auth=OP).text
    assert "'=1+2" in body, body
    assert "\n=" not in body and ",=" not in body


def test_a_committed_batch_is_confirmed_and_committing_twice_or_re_uploading_issues_nothing_twice(api, issued):
    preview = issued["preview"]["report"]
    assert preview["invalid"] >= 1 and preview["new"] >= 6
    summary = api.get(f"/api/batches/{issued['batch_id']}", auth=VIEW).json()
    assert summary["confirmed"] == preview["new"] == summary["total"]
    assert summary["progress"] == f"{preview['new']}/{preview['new']} confirmed · 0 pending · 0 failed"
    again = api.post(f"/api/uploads/{issued['preview']['token']}/commit", auth=OP).json()
    assert again["committed"]["batch_id"] == issued["batch_id"], "the first commit stands"
    with open(issued["csv"], "rb") as f:
        second = api.post("/api/uploads", auth=OP, files={"file": ("same.csv", f, "text/csv")}).json()
    assert second["report"]["new"] == 0 and second["report"]["duplicate"] == preview["new"]


# ---- batches, jobs, search -------------------------------------------------------------------------------
def test_the_job_list_pages_by_keyset_and_filters_by_state(api, issued):
    url = f"/api/batches/{issued['batch_id']}/jobs"
    first = api.get(url, params={"limit": 3}, auth=VIEW).json()
    second = api.get(url, params={"limit": 3, "after": first["next_after"]}, auth=VIEW).json()
    back = api.get(url, params={"limit": 3, "before": second["prev_before"]}, auth=VIEW).json()
    assert [j["id"] for j in back["jobs"]] == [j["id"] for j in first["jobs"]]
    assert first["jobs"][-1]["id"] < second["jobs"][0]["id"]
    everything = api.get(url, params={"limit": 500}, auth=VIEW).json()["jobs"]
    assert {j["state"] for j in everything} == {"confirmed"}
    assert api.get(url, params={"state": "failed"}, auth=VIEW).json()["jobs"] == []
    assert api.get(url, params={"state": "bogus"}, auth=VIEW).status_code == 422


def test_search_finds_a_job_by_student_id_wallet_fingerprint_credential_id_and_transaction_hash(api, issued):
    job = api.get(f"/api/batches/{issued['batch_id']}/jobs", auth=VIEW).json()["jobs"][2]
    for q in (job["student_id"], job["student_wallet"], job["student_wallet"].lower(), job["fingerprint"],
              str(job["credential_id"]), job["tx_hash"]):
        found = api.get("/api/search", params={"q": q}, auth=VIEW).json()["jobs"]
        assert job["id"] in [j["id"] for j in found], q
        in_batch = api.get(f"/api/batches/{issued['batch_id']}/jobs", params={"q": q}, auth=VIEW).json()["jobs"]
        assert job["id"] in [j["id"] for j in in_batch], q


def test_search_finds_a_job_by_any_part_of_the_student_name_in_any_case_and_wildcards_match_only_themselves(
        api, issued):
    job = api.get(f"/api/batches/{issued['batch_id']}/jobs", auth=VIEW).json()["jobs"][3]
    surname = job["student_name"].split()[-1]
    for q in (job["student_name"], surname.upper(), surname[1:-1].lower()):
        found = api.get("/api/search", params={"q": q}, auth=VIEW).json()["jobs"]
        assert job["id"] in [j["id"] for j in found], q
        in_batch = api.get(f"/api/batches/{issued['batch_id']}/jobs", params={"q": q}, auth=VIEW).json()["jobs"]
        assert job["id"] in [j["id"] for j in in_batch], q
    for q in ("%%", "__"):
        assert api.get("/api/search", params={"q": q}, auth=VIEW).json()["jobs"] == [], q


def test_a_job_shows_its_row_history_attempts_receipt_and_event(api, issued):
    job_id = api.get(f"/api/batches/{issued['batch_id']}/jobs", auth=VIEW).json()["jobs"][0]["id"]
    job = api.get(f"/api/jobs/{job_id}", auth=VIEW).json()
    assert [t["to"] for t in job["history"]][-1] == "confirmed"
    assert {"queued", "ready", "submitted"} <= {t["to"] for t in job["history"]}
    tx = job["transactions"][0]
    assert tx["status"] == "mined" and tx["gas_used"] > 0 and tx["mined_hash"] == job["tx_hash"]
    assert tx["attempts"][0]["tx_hash"] and tx["attempts"][0]["max_fee_per_gas"] > 0
    assert job["event"]["credential_id"] == job["credential_id"] and job["event"]["fingerprint"] == job["fingerprint"]
    page = api.get(f"/jobs/{job_id}", auth=VIEW)
    assert page.status_code == 200 and job["tx_hash"][:10] in page.text


def test_retry_checks_counts_and_names_them(api, issued):
    url = f"/api/batches/{issued['batch_id']}/retry-failed"
    assert api.post(url, auth=OP, json={"expected_count": 3}).status_code == 409, "the confirmed count is stale"
    r = api.post(url, auth=OP, json={"expected_count": 0})
    assert r.status_code == 200 and r.json()["requeued"] == []
    job_id = api.get(f"/api/batches/{issued['batch_id']}/jobs", auth=VIEW).json()["jobs"][0]["id"]
    r = api.post(f"/api/jobs/{job_id}/retry", auth=OP).json()
    assert r["skipped"] == [job_id] and r["requeued"] == [], "a confirmed job is never re-sent"


# ---- the read path ---------------------------------------------------------------------------------------
def test_verify_answers_from_the_database_without_auth(api, issued):
    job = api.get(f"/api/batches/{issued['batch_id']}/jobs", auth=VIEW).json()["jobs"][1]
    cid = job["credential_id"]
    status = api.get(f"/api/credentials/{cid}/status")
    assert status.status_code == 200 and status.json()["source"] == "database" and status.json()["valid"]
    ok = api.get(f"/api/credentials/{cid}/verify", params={"fingerprint": job["fingerprint"]}).json()
    assert ok["verified"] is True and ok["source"] == "database"
    wrong = api.get(f"/api/credentials/{cid}/verify", params={"fingerprint": "0x" + "11" * 32}).json()
    assert wrong["verified"] is False and wrong["fingerprint_matches"] is False
    assert api.get(f"/api/credentials/{cid}/verify", params={"fingerprint": "0x12"}).status_code == 422


def test_verify_falls_back_to_the_chain_when_the_database_has_not_seen_the_credential(pipeline, issued, api,
                                                                                      tmp_path):
    job = api.get(f"/api/batches/{issued['batch_id']}/jobs", auth=VIEW).json()["jobs"][3]
    empty_db = pipeline.settings(**WEB, database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    fresh = TestClient(create_app(empty_db, announce=None))
    status = fresh.get(f"/api/credentials/{job['credential_id']}/status").json()
    assert status["source"] == "chain" and status["valid"] and status["fingerprint"] == job["fingerprint"]
    verified = fresh.get(f"/api/credentials/{job['credential_id']}/verify",
                         params={"fingerprint": job["fingerprint"]}).json()
    assert verified["verified"] is True and verified["source"] == "chain"
    assert fresh.get("/api/credentials/999999/status").status_code == 404


def test_a_revocation_is_queued_reconciled_and_then_verify_says_revoked(api, issued, pipeline):
    job = api.get(f"/api/batches/{issued['batch_id']}/jobs", auth=VIEW).json()["jobs"][4]
    cid = job["credential_id"]
    assert api.post(f"/api/credentials/{cid}/revoke", auth=OP, json={"reason": ""}).status_code == 422
    r = api.post(f"/api/credentials/{cid}/revoke", auth=OP, json={"reason": "degree rescinded by the senate"})
    assert r.status_code == 200 and r.json()["created"] == 1
    again = api.post(f"/api/credentials/{cid}/revoke", auth=OP, json={"reason": "twice"})
    assert again.status_code == 200 and again.json()["created"] == 0 and again.json()["already_requested"] == 1
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = api.get(f"/api/credentials/{cid}/status").json()
        if status["revoked"]:
            break
        time.sleep(0.5)
    assert status["revoked"] and not status["valid"]
    detail = api.get(f"/api/jobs/{job['id']}", auth=VIEW).json()
    assert detail["revocations"] and detail["revoke_jobs"][0]["reason"] == "degree rescinded by the senate"
    assert api.post(f"/api/credentials/{cid}/revoke", auth=OP, json={"reason": "x"}).status_code == 409


# ---- panels, pause, audit, metrics -------------------------------------------------------------------------
def test_the_overview_shows_signer_queues_indexer_and_throughput(api, issued, pipeline):
    o = api.get("/api/overview", auth=VIEW).json()
    signer = o["signers"][0]
    assert signer["address"] == pipeline.env.signer_address and signer["balance_wei"] > 0
    assert signer["issuances_left"] > 0 and signer["local_nonce"] >= signer["chain_nonce"] >= 1
    assert o["indexer"]["last_indexed"] > 0 and o["indexer"]["lag"] >= 0
    names = [q["name"] for q in o["queues"]["queues"]]
    assert names == [pipeline.queue, f"{pipeline.queue}.DQ", f"{pipeline.queue}.XQ"]
    assert o["queues"]["queues"][0]["consumers"] >= 1, "the signer consumes the queue"
    assert o["throughput"]["per_minute"]["confirmed"] > 0
    live = api.get(f"/api/live?batch={issued['batch_id']}&jobs=1,2", auth=VIEW).json()
    assert live["batch"]["id"] == issued["batch_id"] and set(live["jobs"]) == {"1", "2"}


def test_pausing_a_batch_and_the_signer_is_recorded_and_audited(api, issued, pipeline):
    batch = issued["batch_id"]
    assert api.post(f"/api/batches/{batch}/pause", auth=OP).json()["paused"] is True
    assert api.get(f"/api/batches/{batch}", auth=VIEW).json()["paused"] is True
    assert api.post(f"/api/batches/{batch}/resume", auth=OP).json()["paused"] is False
    address = pipeline.env.signer_address
    assert api.post(f"/api/signers/{address.lower()}/pause", auth=OP).json()["paused"] is True
    assert api.get("/api/signers", auth=VIEW).json()["signers"][0]["paused"] is True
    assert api.post(f"/api/signers/{address}/resume", auth=OP).json()["paused"] is False
    entries = api.get("/api/audit", auth=VIEW).json()["entries"]
    assert [e["action"] for e in entries[:4]] == ["signer.resume", "signer.pause", "batch.resume", "batch.pause"]
    assert {(e["actor"], e["ip"]) for e in entries[:4]} == {(OP.name, "testclient")}, "the person, from where"
    with Session(pipeline.engine) as s:
        assert s.execute(select(AuditEntry).where(AuditEntry.action == "upload.commit")).first() is not None


def test_metrics_expose_pipeline_gauges_computed_at_scrape_time(api, issued, pipeline):
    text = api.get("/metrics", auth=VIEW).text
    for name in ("blockproof_jobs{state=\"confirmed\"}", "blockproof_signer_balance_wei", "blockproof_signer_nonce",
                 "blockproof_pending_transactions", "blockproof_gas_price_wei", "blockproof_time_to_confirm_seconds",
                 "blockproof_indexer_lag_blocks", "blockproof_queue_messages", "blockproof_open_alerts"):
        assert name in text, name
    confirmed = re.search(r'blockproof_jobs\{state="confirmed"\} (\d+)', text).group(1)
    assert int(float(confirmed)) == pipeline.counts().get("confirmed")


def test_healthz_and_openapi_are_served(api):
    assert api.get("/healthz").json() == {"ok": True, "database": "ok"}
    spec = api.get("/openapi.json", auth=VIEW).json()
    assert "/api/credentials/{credential_id}/verify" in spec["paths"] and "/api/uploads" in spec["paths"]
    assert api.get("/docs", auth=VIEW).status_code == 200


def test_pages_escape_what_users_typed(app, api, issued):
    client, token = _session_client(app)
    r = client.get("/search", params={"q": "<script>alert(1)</script>"})
    assert "<script>alert(1)</script>" not in r.text and "&lt;script&gt;" in r.text
