"""Ids the database cannot hold (past 32-bit row ids, 64-bit credential ids, 23 digits) on every id route of the
API and the pages, against real SQLite and PostgreSQL: "not found" (404) or "bad request" (422), never a 500."""
from __future__ import annotations

import re
import secrets

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from blockproof.settings import Settings
from tests.people import Person
from web import api, pages
from web.app import create_app

OP, VIEW = Person("olga", "operator"), Person("vera", "viewer")
ROW_IDS = [2**31, 2**63, 10**23]  # INTEGER on PostgreSQL ends at 2**31 - 1, SQLite's at 2**63 - 1
CREDENTIAL_IDS = [2**63, 10**23]  # BIGINT ends at 2**63 - 1; below it an unknown id is a question for the chain
# what a route needs besides its path to reach its handler
BODIES = {("POST", "/api/credentials/{credential_id}/revoke"): {"json": {"reason": "r"}},
          ("POST", "/credentials/{credential_id}/revoke"): {"data": {"reason": "r"}},
          ("POST", "/batches/{batch_id}/retry-failed"): {"data": {"expected_count": "0"}},
          ("POST", "/batches/{batch_id}/retry-selected"): {"data": {"job_ids": "1", "confirmed": "yes"}},
          ("GET", "/api/credentials/{credential_id}/verify"): {"params": {"fingerprint": "0x" + "ab" * 32}}}


@pytest.fixture
def client(database_url):
    settings = Settings(database_url=database_url, rpc_url="http://127.0.0.1:9", vault_address="0x" + "11" * 20,
                        web_secret=secrets.token_urlsafe(32))
    app = create_app(settings, announce=None)
    OP.enrol(app.state.engine)
    VIEW.enrol(app.state.engine)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.engine.dispose()


def _id_routes() -> list[tuple[str, str, str]]:
    out = []
    for route in [r for router in (api.router, pages.router) for r in router.routes if isinstance(r, APIRoute)]:
        params = re.findall(r"\{(\w+_id)\}", route.path)
        for method in route.methods - {"HEAD"}:
            out += [(method, route.path, name) for name in params]
    return out


def test_every_id_route_of_the_api_and_the_pages_answers_404_for_an_id_no_database_can_hold(client):
    routes = _id_routes()
    assert len(routes) >= 20, routes  # the API's and the pages' batch, job and credential routes
    failures = []
    for method, path, name in routes:
        for value in CREDENTIAL_IDS if name == "credential_id" else ROW_IDS:
            url = path.replace("{" + name + "}", str(value))
            r = client.request(method, url, auth=OP, follow_redirects=False, **BODIES.get((method, path), {}))
            if r.status_code != 404:
                failures.append(f"{method} {url}: {r.status_code} {r.text[:120]}")
    assert not failures, "\n".join(failures)


def test_the_issue_examples_are_404_for_anyone_who_may_ask(client):
    assert client.get("/api/credentials/9223372036854775808/status").status_code == 404  # public
    assert client.get("/api/credentials/9223372036854775808/verify",
                      params={"fingerprint": "0x" + "ab" * 32}).status_code == 404
    page = client.get("/jobs/99999999999999999999999", auth=VIEW)
    assert page.status_code == 404 and "job 99999999999999999999999 does not exist" in page.text


@pytest.mark.parametrize("path", [
    "/api/live?jobs=99999999999999999999,3000000000&batches=3000000000&batch=99999999999999999999",
    "/api/search?q=3000000000", "/api/search?q=99999999999999999999", "/search?q=3000000000",
    "/api/search?q=50%25_off", "/api/failed?code=InstitutionNotFound", "/failed"])
def test_numbers_too_large_for_an_id_in_lists_and_searches_find_nothing_on_either_database(client, path):
    r = client.get(path, auth=VIEW)
    assert r.status_code == 200, r.text
    assert "jobs" not in r.headers.get("content-type", "") or not r.json().get("jobs")


@pytest.mark.parametrize("path", ["/api/batches?before=3000000000", "/api/batches/1/jobs?after=99999999999999999999",
                                  "/api/audit?before=3000000000", "/api/search?q=x&after=3000000000",
                                  "/batches?before=3000000000", "/audit?before=99999999999999999999"])
def test_a_page_cursor_too_large_for_an_id_is_a_bad_request_that_says_the_limit(client, path):
    r = client.get(path, auth=VIEW)
    assert r.status_code == 422 and "2147483647" in r.text, r.text


def test_retrying_job_ids_too_large_for_the_database_is_a_bad_request(client):
    r = client.post("/api/jobs/retry", auth=OP, json={"job_ids": [1, 2**40]})
    assert r.status_code == 422 and "2147483647" in r.text


def test_the_pages_show_the_error_page_with_the_reason_for_a_batch_signer_or_upload_that_does_not_exist(client):
    signer = "0x" + "00" * 20
    for path, data, reason in [
            ("/batches/4242/pause", None, "batch 4242 does not exist"),
            ("/batches/4242/resume", None, "batch 4242 does not exist"),
            ("/batches/4242/retry-failed", {"expected_count": "1"}, "batch 4242 does not exist"),
            (f"/signers/{signer}/pause", None, f"signer {signer} is not known"),
            (f"/signers/{signer}/resume", None, f"signer {signer} is not known"),
            ("/upload/" + "y" * 32 + "/commit", None, "upload " + "y" * 32 + " does not exist")]:
        r = client.post(path, auth=OP, data=data, follow_redirects=False)
        assert r.status_code == 404 and "text/html" in r.headers["content-type"], (path, r.status_code, r.text[:200])
        assert reason in r.text, (path, r.text[:400])
