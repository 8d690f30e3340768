"""People, one-time passwords and API tokens, through the pages, the JSON API and `blockproof user|token`, on a
real SQLite database."""
from __future__ import annotations

import io
import os
import re
import secrets
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlmodel import Session

from blockproof.settings import PROJECT_ROOT, Settings
from models.db import engine_for, migrate
from models.states import utcnow
from models.tables import ApiToken, AuditEntry, Person as PersonRow
from tests.people import Person, login_token, session_client
from web import people
from web.app import create_app


@pytest.fixture
def world(tmp_path):
    url = f"sqlite:///{tmp_path / 'web.db'}"
    migrate(url)
    engine = engine_for(url)
    root = Person("root", "admin").enrol(engine)
    app = create_app(Settings(database_url=url, rpc_url="http://127.0.0.1:9", web_secret=secrets.token_urlsafe(32)),
                     engine, announce=None)
    return {"app": app, "engine": engine, "root": root, "url": url, "db": Path(tmp_path / "web.db")}


def _row(engine, name: str) -> PersonRow:
    with Session(engine) as s:
        return people.find(s, name)


def test_a_password_is_stored_as_an_argon2id_hash_and_a_short_one_is_refused(world):
    people.add(world["engine"], "grace", "viewer", by="t", password="a-long-enough-pass")
    stored = _row(world["engine"], "grace").password_hash
    assert stored.startswith("$argon2id$") and "a-long-enough-pass" not in stored
    with pytest.raises(people.PeopleError, match="at least 12 characters"):
        people.add(world["engine"], "linus", "viewer", by="t", password="short")
    with pytest.raises(people.PeopleError, match="not valid"):
        people.add(world["engine"], "Robert'); DROP", "viewer", by="t")
    with pytest.raises(people.PeopleError, match="role"):
        people.add(world["engine"], "linus", "root", by="t")


def test_a_dev_database_with_nobody_gets_a_first_admin_with_a_one_time_password_printed_once(tmp_path):
    told = io.StringIO()
    url = f"sqlite:///{tmp_path / 'dev.db'}"
    create_app(Settings(database_url=url, web_secret=secrets.token_urlsafe(32)), announce=told)
    password = re.search(r"one-time password (\S+)", told.getvalue()).group(1)
    assert people.authenticate(engine_for(url), "admin", password) is not None
    again = io.StringIO()
    create_app(Settings(database_url=url, web_secret=secrets.token_urlsafe(32)), announce=again)
    assert again.getvalue() == "", "made once"
    chosen = f"sqlite:///{tmp_path / 'chosen.db'}"
    create_app(Settings(database_url=chosen, admin_user="boss", admin_password="chosen-in-dev-123"), announce=None)
    assert not people.authenticate(engine_for(chosen), "boss", "chosen-in-dev-123").must_change_password


def test_an_admin_adds_a_person_who_must_choose_a_password_before_anything_else(world):
    admin, csrf = session_client(world["app"], world["root"])
    page = admin.post("/admin/people", data={"csrf_token": csrf, "name": "ada", "role": "operator"})
    one_time = re.search(r"one-time password, shown only now: <code>([^<]+)</code>", page.text).group(1)
    assert one_time not in admin.get("/admin/people").text, "shown once"

    ada = TestClient(world["app"])
    r = ada.post("/login", data={"username": "ada", "password": one_time, "csrf_token": login_token(ada)},
                 follow_redirects=False)
    assert r.headers["location"] == "/account/password"
    assert ada.get("/batches", follow_redirects=False).headers["location"] == "/account/password"
    assert ada.get("/api/batches").status_code == 403
    csrf_ada = re.search(r'name="csrf_token" value="([^"]+)"', ada.get("/account/password").text).group(1)
    r = ada.post("/account/password", data={"csrf_token": csrf_ada, "current": one_time, "new": "too-short",
                                            "again": "too-short"})
    assert r.status_code == 422 and "at least 12 characters" in r.text
    r = ada.post("/account/password", data={"csrf_token": csrf_ada, "current": one_time,
                                            "new": "she-chose-this-one", "again": "she-chose-this-one"})
    assert r.status_code == 200 and "Password changed" in r.text
    assert ada.get("/api/batches").status_code == 200
    assert ada.get("/api/me").json() | {"csrf_token": None} == {"user": "ada", "role": "operator", "via": "session",
                                                                "scope": None, "csrf_token": None}


def test_an_admin_resets_a_password_and_a_viewer_or_operator_cannot_administer(world):
    grace = Person("grace", "viewer").enrol(world["engine"])
    olga = Person("olga", "operator").enrol(world["engine"])
    browser, _ = session_client(world["app"], grace)
    admin, csrf = session_client(world["app"], world["root"])
    page = admin.post("/admin/people/grace/reset-password", data={"csrf_token": csrf})
    assert "one-time password" in page.text and browser.get("/api/me").status_code == 401
    for who in (olga, grace):
        client, their_csrf = session_client(world["app"], who) if who is olga else (TestClient(world["app"]), "")
        if who is olga:
            assert client.get("/admin/people").status_code == 403
            assert client.post("/admin/people", data={"csrf_token": their_csrf, "name": "x", "role": "admin"}
                               ).status_code == 403
        assert TestClient(world["app"]).get("/api/people", auth=who).status_code == 403
    assert TestClient(world["app"]).get("/api/people", auth=world["root"]).status_code == 403, \
        "people are administered from a browser, not with a token"
    with pytest.raises(people.PeopleError, match="last active admin"):
        people.set_disabled(world["engine"], "root", True)


def test_the_token_lifecycle_made_once_used_listed_scoped_expired_revoked(world):
    olga = Person("olga", "operator").enrol(world["engine"])
    browser, csrf = session_client(world["app"], olga)
    made = browser.post("/api/tokens", json={"scope": "read", "label": "grafana", "days": 30},
                        headers={"X-CSRF-Token": csrf})
    assert made.status_code == 200, made.text
    token, token_id = made.json()["token"], made.json()["id"]
    assert token.startswith("bpt_") and len(token) >= 40
    assert token not in world["db"].read_bytes().decode("latin-1"), "stored hashed"
    listed = {t["id"]: t for t in browser.get("/api/tokens").json()["tokens"]}
    assert "token" not in listed[token_id] and listed[token_id]["last_used_at"] is None
    assert listed[token_id]["prefix"] == token[:12]

    script = TestClient(world["app"], client=("192.0.2.50", 1234))
    bearer = {"Authorization": f"Bearer {token}"}
    assert script.get("/api/batches", headers=bearer).status_code == 200
    used = {t["id"]: t for t in browser.get("/api/tokens").json()["tokens"]}[token_id]
    assert used["last_used_at"] and used["last_used_ip"] == "192.0.2.50"
    r = script.post("/api/batches/1/pause", headers=bearer)
    assert r.status_code == 403 and "read-only token" in r.json()["detail"]
    assert script.post("/api/tokens", json={"scope": "operate"}, headers=bearer).status_code == 403, \
        "a token cannot mint tokens"

    assert browser.delete(f"/api/tokens/{token_id}", headers={"X-CSRF-Token": csrf}).json()["state"] == "revoked"
    assert script.get("/api/batches", headers=bearer).status_code == 401

    # an expired token is refused; a viewer's token can only read
    with Session(world["engine"]) as s:
        s.execute(update(ApiToken).where(ApiToken.user_id == _row(world["engine"], "olga").id,
                                         ApiToken.label == "tests").values(expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()
    assert TestClient(world["app"]).get("/api/batches", auth=olga).status_code == 401
    grace = Person("grace", "viewer").enrol(world["engine"])
    viewer, vcsrf = session_client(world["app"], grace)
    r = viewer.post("/api/tokens", json={"scope": "operate"}, headers={"X-CSRF-Token": vcsrf})
    assert r.status_code == 422 and "can only read" in r.text
    with Session(world["engine"]) as s:
        actions = [a for a in s.execute(select(AuditEntry.action).where(AuditEntry.actor == "olga")).scalars()]
    assert actions.count("token.create") == 1 and actions.count("token.revoke") == 1


def test_a_token_made_on_the_account_page_is_shown_once(world):
    olga = Person("olga", "operator").enrol(world["engine"])
    browser, csrf = session_client(world["app"], olga)
    page = browser.post("/account/tokens", data={"csrf_token": csrf, "scope": "operate", "label": "nightly", "days": 7})
    token = re.search(r"shown only now:</strong> <code>([^<]+)</code>", page.text).group(1)
    assert token not in browser.get("/account").text
    assert TestClient(world["app"]).post("/api/batches/999/pause",
                                         headers={"Authorization": f"Bearer {token}"}).status_code == 404


def _cli(world, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blockproof.cli", *args], cwd=PROJECT_ROOT, input=stdin,
                          env=os.environ | {"DATABASE_URL": world["url"]}, capture_output=True, text=True, timeout=120)


def test_the_user_and_token_commands_add_list_disable_reset_unlock_and_revoke(world):
    added = _cli(world, "user", "add", "ada", "--role", "operator")
    assert added.returncode == 0, added.stderr
    one_time = added.stdout.strip()
    assert "one-time password" in added.stderr and one_time not in added.stderr
    assert people.authenticate(world["engine"], "ada", one_time).must_change_password
    assert _cli(world, "user", "add", "ada", "--role", "viewer").returncode == 2
    assert _cli(world, "user", "add", "linus", "--role", "viewer", "--password-stdin",
                stdin="his-own-password-1\n").returncode == 0

    listed = _cli(world, "user", "list")
    assert re.search(r"^ada\s+operator\s+one-time password", listed.stdout, re.M), listed.stdout
    made = _cli(world, "token", "create", "--user", "ada", "--scope", "operate", "--label", "ci")
    token = made.stdout.strip()
    assert made.returncode == 0 and token.startswith("bpt_")
    assert TestClient(world["app"]).get("/api/batches", headers={"Authorization": f"Bearer {token}"}
                                        ).status_code == 200, "a script's token needs no browser login first"
    assert token[:12] in _cli(world, "token", "list", "--user", "ada").stdout

    reset = _cli(world, "user", "reset-password", "ada")
    assert reset.returncode == 0 and people.authenticate(world["engine"], "ada", reset.stdout.strip())
    assert _cli(world, "user", "disable", "ada").returncode == 0
    assert people.authenticate(world["engine"], "ada", reset.stdout.strip()) is None
    from web import throttle

    for _ in range(throttle.ACCOUNT.lock_after):
        throttle.failed(world["engine"], "linus", "192.0.2.1")
    assert throttle.check(world["engine"], "linus", "192.0.2.99").locked
    assert "lock lifted" in _cli(world, "user", "unlock", "linus").stderr
    assert throttle.check(world["engine"], "linus", "192.0.2.99") is None
    assert _cli(world, "token", "revoke", str(_token_id(world, token))).returncode == 0
    with Session(world["engine"]) as s:
        actors = set(s.execute(select(AuditEntry.actor)).scalars())
    assert all(a.startswith("cli:") for a in actors), actors


def _token_id(world, token: str) -> int:
    from web import tokens

    with Session(world["engine"]) as s:
        return s.execute(select(ApiToken.id).where(ApiToken.token_hash == tokens.digest(token))).scalar_one()


def test_people_sessions_throttling_and_tokens_work_the_same_on_sqlite_and_postgresql(database_url):
    migrate(database_url)
    engine = engine_for(database_url)
    olga = Person("olga", "operator").enrol(engine)
    app = create_app(Settings(database_url=database_url, rpc_url="http://127.0.0.1:9",
                              web_secret=secrets.token_urlsafe(32)), engine, announce=None)
    browser, csrf = session_client(app, olga, client=("192.0.2.7", 1))
    made = browser.post("/api/tokens", json={"scope": "read"}, headers={"X-CSRF-Token": csrf}).json()
    assert TestClient(app).get("/api/batches", headers={"Authorization": f"Bearer {made['token']}"}).status_code == 200
    attacker = TestClient(app, client=("203.0.113.5", 1))
    token = login_token(attacker)
    for i in range(12):
        attacker.post("/login", data={"username": "olga", "password": f"guess-{i}", "csrf_token": token})
    r = attacker.post("/login", data={"username": "olga", "password": olga.password, "csrf_token": token})
    assert r.status_code == 429 and "locked" in r.text
    assert browser.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert browser.get("/api/me").status_code == 401
    with Session(engine) as s:
        rows = list(s.execute(select(AuditEntry.actor, AuditEntry.ip, AuditEntry.action)).all())
    assert ("olga", "192.0.2.7", "logout") in rows and ("olga", "203.0.113.5", "login.failed") in rows
