"""The attacks of the web security review, each replayed against the real app on a real SQLite database: a session
reused after logout, a cookie forged with a weak secret, 200 wrong logins then the right one, CSRF through HTTP
Basic, an audit log without names, missing headers, a 422 that echoes its input."""
from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
import tempfile
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner
from sqlalchemy import select, update
from sqlmodel import Session

from blockproof.settings import Settings
from models.db import engine_for, migrate
from models.tables import AuditEntry, Batch, LoginThrottle, WebSession
from tests.people import Person, log_in, login_token, session_client
from web import throttle
from web.app import create_app
from web.people import StartupRefused

ATTACKER = ("203.0.113.9", 40000)  # TEST-NET-3: the attacker's address
OFFICE = ("198.51.100.7", 40000)


def settings_for(url: str, **overrides) -> Settings:
    values = {"database_url": url, "rpc_url": "http://127.0.0.1:9", "vault_address": "",
              "web_secret": secrets.token_urlsafe(32)}
    if overrides.get("production"):  # what production asks for besides the web's own rules (docs/csv-format.md)
        values |= {"public_url": "https://verify.example.edu", "fingerprint_secret_file": FINGERPRINT_SECRET}
    return Settings(**values | overrides)


FINGERPRINT_SECRET = Path(tempfile.mkdtemp(prefix="bp-attacks-")) / "fingerprint.secret"
FINGERPRINT_SECRET.write_text(secrets.token_hex(32))


@pytest.fixture
def world(tmp_path):
    url = f"sqlite:///{tmp_path / 'web.db'}"
    migrate(url)
    engine = engine_for(url)
    with Session(engine) as s:
        batch = Batch(filename="graduates.csv", institution="0x" + "22" * 20)
        s.add(batch)
        s.commit()
        s.refresh(batch)
    ada, vic = Person("ada", "operator").enrol(engine), Person("vic", "viewer").enrol(engine)
    root = Person("root", "admin").enrol(engine)
    app = create_app(settings_for(url), engine, announce=None)
    return {"app": app, "engine": engine, "batch": batch.id, "ada": ada, "vic": vic, "root": root, "url": url}


def paused(world) -> bool:
    with Session(world["engine"]) as s:
        return s.get(Batch, world["batch"]).paused


def audit(world) -> list[AuditEntry]:
    with Session(world["engine"]) as s:
        return list(s.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars())


# ---- sessions that end --------------------------------------------------------------------------------
def test_a_session_cookie_captured_before_logout_reads_and_changes_nothing_after_it(world):
    client, csrf = session_client(world["app"], world["ada"])
    stolen = client.cookies.get("blockproof_session")
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303

    replay = TestClient(world["app"], cookies={"blockproof_session": stolen})
    assert replay.get("/api/me").status_code == 401
    r = replay.post(f"/api/batches/{world['batch']}/pause", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 401 and not paused(world)
    assert replay.get("/", follow_redirects=False).headers["location"].startswith("/login")


def test_the_cookie_is_a_random_id_the_database_keeps_only_its_hash_and_a_new_login_replaces_it(world):
    client, _ = session_client(world["app"], world["ada"])
    cookie = client.cookies.get("blockproof_session")
    assert len(cookie) >= 43 and "ada" not in cookie and "." not in cookie  # no signed payload
    with Session(world["engine"]) as s:
        ids = list(s.execute(select(WebSession.id)).scalars())
    assert cookie not in ids and len(ids) == 1
    log_in(client, world["vic"])
    assert client.cookies.get("blockproof_session") != cookie
    assert TestClient(world["app"], cookies={"blockproof_session": cookie}).get("/api/me").status_code == 401


def test_changing_the_password_or_being_disabled_ends_every_session_of_that_person(world):
    ada = world["ada"]
    laptop, _ = session_client(world["app"], ada)
    phone, phone_csrf = session_client(world["app"], ada)
    r = phone.post("/account/password", data={"csrf_token": phone_csrf, "current": ada.password,
                                              "new": "a-much-longer-passphrase", "again": "a-much-longer-passphrase"},
                   follow_redirects=False)
    assert r.status_code == 303, r.text
    assert laptop.get("/api/me").status_code == 401, "the other session ended"
    assert phone.get("/api/me").json()["user"] == "ada", "the browser that changed it goes on with a new session"

    admin, admin_csrf = session_client(world["app"], world["root"])
    assert admin.post("/admin/people/ada/disable", data={"csrf_token": admin_csrf},
                      follow_redirects=False).status_code == 303
    assert phone.get("/api/me").status_code == 401
    assert TestClient(world["app"]).get("/api/me", auth=ada).status_code == 401, "tokens stop working too"
    fresh = TestClient(world["app"])
    r = fresh.post("/login", data={"username": "ada", "password": "a-much-longer-passphrase",
                                   "csrf_token": login_token(fresh)})
    assert r.status_code == 401


def test_an_idle_session_and_one_past_its_absolute_age_are_over(world):
    idle, _ = session_client(world["app"], world["ada"])
    old, _ = session_client(world["app"], world["vic"])
    settings = world["app"].state.settings
    with Session(world["engine"]) as s:
        now = s.execute(select(WebSession.created_at)).scalars().first()
        s.execute(update(WebSession).where(WebSession.user_id == _id(s, "ada"))
                  .values(last_seen_at=now - timedelta(minutes=settings.session_idle_minutes + 1)))
        s.execute(update(WebSession).where(WebSession.user_id == _id(s, "vic"))
                  .values(created_at=now - timedelta(hours=settings.session_max_hours, minutes=1)))
        s.commit()
    assert idle.get("/api/me").status_code == 401
    assert old.get("/api/me").status_code == 401
    with Session(world["engine"]) as s:
        assert sorted(s.execute(select(WebSession.revoked_why)).scalars()) == ["expired", "idle"]


def _id(s: Session, name: str) -> int:
    from web.people import find

    return find(s, name).id


# ---- the web secret ------------------------------------------------------------------------------------
@pytest.mark.parametrize("weak", ["a", "s" * 40, "password" * 5, "3f9c2a7be1d04c68"],
                         ids=["one-char", "one-letter-repeated", "a-word-repeated", "random-but-short"])
def test_production_refuses_a_weak_web_secret_and_says_how_to_make_one(tmp_path, weak):
    with pytest.raises(StartupRefused, match="BLOCKPROOF_WEB_SECRET") as refused:
        create_app(Settings(database_url=f"sqlite:///{tmp_path / 'p.db'}", production=True, web_secret=weak),
                   announce=None)
    assert "secrets.token_urlsafe(32)" in str(refused.value)


def test_production_starts_only_once_there_is_a_first_admin(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with pytest.raises(StartupRefused, match="blockproof user add NAME --role admin"):
        create_app(settings_for(url, production=True), announce=None)
    migrate(url)
    Person("root", "admin").enrol(engine_for(url))
    assert create_app(settings_for(url, production=True), engine_for(url), announce=None) is not None


def test_a_cookie_forged_with_the_secret_is_not_a_session(world, tmp_path):
    """The old cookie was the signed session itself: whoever knew (or guessed) the secret was operator."""
    weak = "a"
    app = create_app(settings_for(world["url"], web_secret=weak), world["engine"], announce=None)  # dev mode warns
    payload = base64.b64encode(json.dumps({"user": "operator", "csrf": "x"}).encode())
    forged = TimestampSigner(weak).sign(payload).decode()
    attacker = TestClient(app, cookies={"blockproof_session": forged})
    assert attacker.get("/api/me").status_code == 401
    assert attacker.post(f"/api/batches/{world['batch']}/pause", headers={"X-CSRF-Token": "x"}).status_code == 401
    assert not paused(world)


# ---- throttling ------------------------------------------------------------------------------------------
def test_200_wrong_logins_then_the_right_password_is_refused_until_an_admin_lifts_the_lock(world):
    admin, admin_csrf = session_client(world["app"], world["root"], client=OFFICE)
    attacker = TestClient(world["app"], client=ATTACKER)
    token = login_token(attacker)
    answers = [attacker.post("/login", data={"username": "ada", "password": f"guess-{i}", "csrf_token": token}
                             ).status_code for i in range(200)]
    checked = answers.count(401)
    assert checked <= throttle.ACCOUNT.lock_after and answers.count(429) == 200 - checked
    right = attacker.post("/login", data={"username": "ada", "password": world["ada"].password, "csrf_token": token})
    assert right.status_code == 429 and "locked" in right.text and "blockproof_session" not in right.cookies
    assert int(right.headers["retry-after"]) > 0

    rows = [e for e in audit(world) if e.action.startswith("login.")]
    assert len(rows) == 201 and {(e.actor, e.ip) for e in rows} == {("ada", ATTACKER[0])}
    assert {e.action for e in rows} == {"login.failed", "login.throttled"}

    # the admin sees both locks and lifts the account's; the attacker's address stays locked
    locks = {lock["key"] for lock in admin.get("/api/people").json()["locks"]}
    assert locks == {"user:ada", f"ip:{ATTACKER[0]}"}
    assert admin.post("/api/locks/lift", params={"key": "user:ada"}, headers={"X-CSRF-Token": admin_csrf}
                      ).json()["lifted"] is True
    from_office = TestClient(world["app"], client=OFFICE)
    log_in(from_office, world["ada"])
    again = attacker.post("/login", data={"username": "ada", "password": world["ada"].password, "csrf_token": token})
    assert again.status_code == 429
    assert [e.actor for e in audit(world) if e.action == "lock.lift"] == ["root"]


def test_wrong_api_tokens_are_audited_and_throttled_per_address(world):
    attacker = TestClient(world["app"], client=ATTACKER)
    answers = [attacker.get("/api/batches", headers={"Authorization": f"Bearer bpt_{i:040d}"}).status_code
               for i in range(200)]
    assert 0 < answers.count(401) <= throttle.ADDRESS.lock_after and answers.count(429) == 200 - answers.count(401)
    rows = [e for e in audit(world) if e.action.startswith("token.")]
    assert len(rows) == 200 and {e.ip for e in rows} == {ATTACKER[0]}
    assert all("bpt_00000000" == e.target for e in rows), "only the token's first characters are logged"
    # a real token from the locked address waits too; from elsewhere it works
    assert attacker.get("/api/batches", auth=world["ada"]).status_code == 429
    assert TestClient(world["app"], client=OFFICE).get("/api/batches", auth=world["ada"]).status_code == 200


def test_the_delay_grows_with_each_failure_then_the_account_locks_and_the_lock_ends():
    p = throttle.ACCOUNT
    delays = [throttle.delay_after(n, p) for n in range(12)]
    assert delays[:p.free_failures] == [0] * p.free_failures
    assert all(a < b for a, b in zip(delays[p.free_failures - 1:8], delays[p.free_failures:9]))
    assert max(delays) == p.max_delay_seconds
    now = __import__("datetime").datetime(2030, 1, 1, tzinfo=__import__("datetime").timezone.utc)
    row = None
    for _ in range(p.lock_after):
        failures, lock = throttle.after_failure(row, now, p)
        row = LoginThrottle(key="user:x", failures=failures, last_failure_at=now, locked_until=lock)
    assert row.locked_until == now + timedelta(minutes=p.lock_minutes)
    assert throttle.wait_seconds(row, now, p) == p.lock_minutes * 60
    later = now + timedelta(minutes=p.forget_after_minutes + p.lock_minutes + 1)
    assert throttle.wait_seconds(row, later, p) == 0, "the lock is temporary"
    assert throttle.after_failure(row, later, p)[0] == 1, "old failures are forgotten"


# ---- HTTP Basic and CSRF --------------------------------------------------------------------------------
def test_a_form_on_another_origin_cannot_pause_a_batch_with_credentials_a_browser_remembered(world):
    basic = "Basic " + base64.b64encode(f"ada:{world['ada'].password}".encode()).decode()
    browser = TestClient(world["app"])
    r = browser.post(f"/api/batches/{world['batch']}/pause", data={"x": "1"},
                     headers={"Authorization": basic, "Origin": "https://evil.example"})
    assert r.status_code == 401 and "Bearer" in r.json()["detail"]
    assert not paused(world)


def test_no_answer_asks_the_browser_for_credentials(world):
    client = TestClient(world["app"])
    basic = {"Authorization": "Basic " + base64.b64encode(b"ada:wrong").decode()}
    answers = [client.get("/api/overview"), client.get("/api/me", headers=basic), client.get("/metrics"),
               client.get("/openapi.json"), client.post(f"/api/batches/{world['batch']}/pause"),
               client.get("/api/batches", headers={"Authorization": "Bearer bpt_nope"})]
    for r in answers:
        assert r.status_code == 401
        assert "basic" not in r.headers.get("www-authenticate", "").lower(), r.headers


# ---- the audit log names people ----------------------------------------------------------------------------
def test_every_audit_row_names_the_person_and_their_address(world):
    ada, root = world["ada"], world["root"]
    TestClient(world["app"], client=ATTACKER).post(f"/api/batches/{world['batch']}/pause", auth=ada)
    browser, csrf = session_client(world["app"], root, client=OFFICE)
    browser.post(f"/batches/{world['batch']}/resume", data={"csrf_token": csrf}, follow_redirects=False)
    rows = [(e.actor, e.ip, e.action) for e in audit(world)]
    assert ("ada", ATTACKER[0], "batch.pause") in rows
    assert ("root", OFFICE[0], "login") in rows and ("root", OFFICE[0], "batch.resume") in rows
    shown = browser.get("/api/audit").json()["entries"]
    assert {(e["actor"], e["ip"]) for e in shown if e["action"].startswith("batch.")} == {
        ("ada", ATTACKER[0]), ("root", OFFICE[0])}
    assert "ada" in browser.get("/audit").text and ATTACKER[0] in browser.get("/audit").text


# ---- headers and docs ---------------------------------------------------------------------------------------
def test_production_sends_hsts_and_authenticated_json_is_never_cached(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    migrate(url)
    ada = Person("ada", "admin").enrol(engine_for(url))
    app = create_app(settings_for(url, production=True), engine_for(url), announce=None)
    client = TestClient(app, base_url="https://testserver")
    assert "secure" in client.get("/login").headers["set-cookie"].lower()
    for path in ("/login", "/healthz", "/api/me"):
        assert client.get(path).headers["strict-transport-security"].startswith("max-age=31536000")
    for path in ("/api/me", "/api/batches", "/api/audit", "/api/tokens", "/openapi.json"):
        assert client.get(path, auth=ada).headers["cache-control"] == "no-store", path
    assert "cache-control" not in client.get("/healthz").headers


def test_the_api_documents_are_behind_login(world):
    anonymous = TestClient(world["app"])
    assert anonymous.get("/openapi.json").status_code == 401
    assert anonymous.get("/docs", follow_redirects=False).headers["location"].startswith("/login")
    reader = TestClient(world["app"])
    assert "/api/batches" in reader.get("/openapi.json", auth=world["vic"]).json()["paths"]
    assert reader.get("/docs", auth=world["vic"]).status_code == 200


def test_a_422_never_echoes_a_large_input(world):
    client = TestClient(world["app"])
    r = client.post("/api/jobs/retry", auth=world["ada"], json={"job_ids": list(range(99_999))})
    assert r.status_code == 422 and len(r.content) < 2000, len(r.content)
    assert "99,999 items" in r.text and "99998" not in r.text
    r = client.post("/api/jobs/retry", auth=world["ada"], json={"job_ids": ["x" * 1000] * 500})
    assert r.status_code == 422 and len(r.content) < 10_000 and "more errors" in r.text
    r = client.get("/api/search", auth=world["ada"], params={"q": "y" * 5000})
    assert r.status_code == 422 and "y" * 200 not in r.text
