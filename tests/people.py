"""Named people for the web tests: real rows in the test's database (users and api_tokens), logged in through
/login, or sending their API token. A Person is an httpx auth, so `client.get(url, auth=ADA)` sends ADA's token."""
from __future__ import annotations

import re
import secrets
from datetime import timedelta

import httpx
from fastapi.testclient import TestClient
from sqlmodel import Session

from models.states import utcnow
from models.tables import ApiToken
from web import people, tokens


class Person(httpx.Auth):
    def __init__(self, name: str, role: str, *, scope: str | None = None):
        self.name, self.role = name, role
        self.scope = scope or ("read" if role == people.VIEWER else "operate")
        self.password = "pw-" + secrets.token_urlsafe(12)
        # one token for every database the person is enrolled in (tests use several apps at once)
        self.token = tokens.PREFIX + secrets.token_urlsafe(32)

    def enrol(self, engine) -> "Person":
        """Add the person with their password (already chosen: no one-time password) and their token; once per
        database."""
        with Session(engine) as s:
            if people.find(s, self.name) is not None:
                return self
        people.add(engine, self.name, self.role, by="tests", password=self.password, must_change_password=False)
        with Session(engine) as s:
            person = people.find(s, self.name)
            s.add(ApiToken(user_id=person.id, label="tests", scope=self.scope, prefix=self.token[:12],
                           token_hash=tokens.digest(self.token), expires_at=utcnow() + timedelta(days=1)))
            s.commit()
        return self

    def auth_flow(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request

    def __repr__(self) -> str:
        return f"Person({self.name!r}, {self.role!r})"


def login_token(client: TestClient) -> str:
    """The login form's CSRF token (and its pre-login cookie, kept by the client)."""
    form = re.search(r'action="/login">\s*<input type="hidden" name="csrf_token" value="([^"]+)"',
                     client.get("/login").text)
    return form.group(1)


def log_in(client: TestClient, person: Person, password: str | None = None) -> str:
    """Log in through the form; returns the session's CSRF token."""
    r = client.post("/login", data={"username": person.name, "password": password or person.password,
                                    "csrf_token": login_token(client), "next": "/"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client.get("/api/me").json()["csrf_token"]


def session_client(app, person: Person, **kwargs) -> tuple[TestClient, str]:
    client = TestClient(app, **kwargs)
    return client, log_in(client, person)
