"""The monitoring UI in real headless Chromium against `blockproof web` as its own process and a real pipeline
(Anvil, RabbitMQ, SQLite, signer and consumer processes): layout on a phone and beside long names, live updates
that keep their links, revocation with a confirmation step, name search, and the failed jobs of every batch."""
from __future__ import annotations

import csv
import os
import secrets
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session

from models.tables import Job, SignerState
from tests.harness import running_pipeline, write_csv
from tests.people import Person
from tests.web_helpers import (ARGS, CHROMIUM, REVERT_ALWAYS, batch_jobs, log_in, require_chromium, upload,
                               wait_states, wait_text, web_server)
from web.actions import set_signer_paused

OLGA = Person("olga", "operator")
LONG_NAME = "Wolfeschlegelsteinhausenbergerdorff" * 5 + "Maximiliane"  # 186 characters, no space to wrap at
SEARCHED_NAME = "Zéphyrine Quackenbush"
PHONE, DESKTOP = {"width": 375, "height": 740}, {"width": 1360, "height": 900}


def _csv(path: Path, rows: int, seed: int, names: dict[int, str] | None = None) -> Path:
    write_csv(path, rows, seed=seed)
    with open(path, newline="", encoding="utf-8") as f:
        data = list(csv.DictReader(f))
    for i, name in (names or {}).items():
        data[i]["student_name"] = name
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)
    return path


def _signer(p) -> str:
    with Session(p.engine) as s:
        return s.execute(select(SignerState.address)).scalars().first()


class Failing:
    """Jobs that fail pre-flight: queued while the signer is paused, then signed against a contract that refuses
    everything; the contract's code comes back on leaving."""

    def __init__(self, p):
        self.p, self.vault = p, p.env.vault_address
        self.code = p.chain.rpc("eth_getCode", self.vault, "latest")

    def queue(self, path: Path) -> int:
        set_signer_paused(_signer(self.p), True, engine=self.p.engine, actor="test")
        return self.p.upload(str(path)).batch_id

    def fail(self) -> None:
        self.p.chain.rpc("anvil_setCode", self.vault, REVERT_ALWAYS)
        set_signer_paused(_signer(self.p), False, engine=self.p.engine, actor="test")

    def heal(self) -> None:
        self.p.chain.rpc("anvil_setCode", self.vault, self.code)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A pipeline and `blockproof web`: batch 1 confirmed (one long name, one searched name), batches 2 and 3 with
    failed jobs."""
    require_chromium()
    with running_pipeline(tmp_path_factory, "webui") as p:
        OLGA.enrol(p.engine)
        env = os.environ | p.env_vars() | {"BLOCKPROOF_WEB_SECRET": secrets.token_urlsafe(32)}
        with web_server(env, p.workdir / "web.log") as base:
            workdir = p.workdir
            first = p.upload(str(_csv(workdir / "graduates.csv", 6, seed=31, names={0: LONG_NAME, 1: SEARCHED_NAME})))
            confirmed = wait_states(p, first.batch_id, "confirmed", 6)
            failing = Failing(p)
            second = failing.queue(_csv(workdir / "more.csv", 2, seed=32))
            third = failing.queue(_csv(workdir / "even-more.csv", 1, seed=33))
            failing.fail()
            wait_states(p, second, "failed", 2)
            wait_states(p, third, "failed", 1)
            failing.heal()
            yield {"p": p, "base": base, "workdir": workdir, "batch": first.batch_id, "jobs": confirmed,
                   "failed_batches": [second, third], "failing": failing}


@pytest.fixture(scope="module")
def browser(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def _operator(browser, site, viewport=DESKTOP):
    page = browser.new_context(viewport=viewport).new_page()
    log_in(page, site["base"], OLGA)
    return page


def _upload_preview(page, site) -> str:
    """An upload whose invalid row has a 300-character name (the limit is 200): its preview's URL."""
    path = _csv(site["workdir"] / "long-name.csv", 3, seed=34, names={2: "Bartholomew" * 27 + "Xyz"})
    return upload(page, site["base"], path)


OVERFLOW = """() => {
  const width = window.innerWidth;
  const wide = [...document.querySelectorAll('body *')].filter(el => el.getBoundingClientRect().right > width + 1
      && !el.closest('.card'))
    .slice(0, 3).map(el => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right));
  return {scroll: document.documentElement.scrollWidth, width, wide};
}"""


def test_no_page_scrolls_sideways_on_a_375_pixel_phone(browser, site):
    page = _operator(browser, site, PHONE)
    job = site["jobs"][0]
    preview = _upload_preview(page, site)
    pages = ["/", "/batches", f"/batches/{site['batch']}", f"/jobs/{job.id}", "/upload", preview, "/failed",
             "/credentials", f"/credentials/{job.credential_id}", f"/search?q={job.student_id}", "/search?q=nobody",
             "/audit", "/docs", f"/batches/{site['failed_batches'][0]}/retry-failed", "/failed/retry",
             f"/jobs/{site['jobs'][-1].id + 100000}"]
    too_wide = []
    for path in pages:
        page.goto(path if path.startswith("http") else site["base"] + path)
        m = page.evaluate(OVERFLOW)
        if m["scroll"] > m["width"]:
            too_wide.append(f"{path}: {m['scroll']} px wide on a {m['width']} px screen ({m['wide']})")
    logged_out = browser.new_context(viewport=PHONE).new_page()
    logged_out.goto(site["base"] + "/login")
    m = logged_out.evaluate(OVERFLOW)
    if m["scroll"] > m["width"]:
        too_wide.append(f"/login: {m['scroll']} px ({m['wide']})")
    assert not too_wide, "\n".join(too_wide)


def _right_edge(page, selector: str) -> float:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    return box["x"] + box["width"]


def test_the_state_credential_and_transaction_columns_stay_in_view_beside_a_long_name(browser, site):
    page = _operator(browser, site)
    long_job = site["jobs"][0]
    width = page.evaluate("window.innerWidth")
    for path in (f"/batches/{site['batch']}", f"/search?q={long_job.student_id}"):
        page.goto(site["base"] + path)
        for column in ("State", "Credential", "Transaction"):
            assert _right_edge(page, f"table.jobs th:text-is('{column}')") <= width, (path, column)
        for cell in (f"[data-job-credential='{long_job.id}'] a", f"[data-job-tx='{long_job.id}'] a"):
            assert _right_edge(page, cell) <= width, (path, cell)
        assert page.locator(".clip", has_text="Wolfeschlegel").first.get_attribute("title") == LONG_NAME
    page.goto(_upload_preview(page, site))
    assert _right_edge(page, "#upload-errors th:text-is('Reason')") <= width
    assert "is too long (300 characters" in page.locator("#upload-errors").inner_text()


def test_a_search_for_part_of_a_name_finds_its_job(browser, site):
    page = _operator(browser, site)
    wanted = site["jobs"][1]
    page.fill("header input[name=q]", "quackenbush")
    page.press("header input[name=q]", "Enter")
    page.wait_for_url(lambda url: "/search?" in url)
    rows = page.locator("table.jobs tbody tr")
    assert rows.count() == 1 and rows.first.locator(f"a[href='/jobs/{wanted.id}']").count() == 1
    assert SEARCHED_NAME in rows.first.inner_text()


def test_revoking_asks_for_confirmation_and_then_the_credential_page_shows_the_reason_and_the_time(browser, site):
    page = _operator(browser, site)
    p, cid = site["p"], site["jobs"][2].credential_id
    page.goto(f"{site['base']}/credentials/{cid}")
    page.fill("#revoke-form input[name=reason]", "degree awarded in error")
    page.click("#revoke-form button[type=submit]")
    assert page.locator("h1").inner_text() == f"Revoke credential {cid}?"
    assert "degree awarded in error" in page.locator("#confirm").inner_text()
    with Session(p.engine) as s:
        assert not s.execute(select(Job).where(Job.kind == "revoke")).scalars().all(), "nothing before confirming"
    page.locator("#confirm button", has_text="Revoke credential").click()
    page.wait_for_url(f"{site['base']}/credentials/{cid}")
    assert page.locator("#revocation-reason").inner_text() == "degree awarded in error"
    assert f"UTC by {OLGA.name}" in page.locator("#revocation-requested").inner_text()
    deadline = time.monotonic() + 120
    while "UTC" not in page.locator("#revocation-on-chain").inner_text():
        assert time.monotonic() < deadline, page.locator("#revocation").inner_text()
        time.sleep(1)
        page.reload()
    assert page.locator("#credential-verdict").inner_text() == "revoked"
    assert "was revoked on" in page.locator("#credential-reason").inner_text()
    assert page.locator("#revoke-form").count() == 0


def test_live_updates_keep_the_transaction_and_credential_links_and_bring_the_retry_all_link(browser, site):
    page = _operator(browser, site)
    p, failing = site["p"], site["failing"]
    batch = failing.queue(_csv(site["workdir"] / "live.csv", 2, seed=35))
    page.goto(f"{site['base']}/batches/{batch}")
    assert not page.locator("#retry-all").is_visible()
    failing.fail()
    wait_text(page, "[data-live='batch.progress']", "0/2 confirmed · 0 pending · 2 failed", timeout=90)
    page.wait_for_selector("#retry-all", state="visible", timeout=10_000)
    assert page.locator("#retry-all").inner_text() == "Retry all 2 failed…"
    failing.heal()
    page.click("#retry-all")
    page.locator("button.primary", has_text="Retry 2 jobs").click()
    page.wait_for_url(f"{site['base']}/batches/{batch}")
    assert page.locator("[data-job-tx] a").count() == 0, "rendered before anything was sent"
    wait_text(page, "[data-live='batch.progress']", "2/2 confirmed · 0 pending · 0 failed", timeout=120)
    page.wait_for_function("() => document.querySelectorAll('[data-job-credential] a').length === 2", timeout=10_000)
    jobs = batch_jobs(p, batch)
    for job in jobs:
        tx = page.locator(f"[data-job-tx='{job.id}'] a")
        assert tx.get_attribute("href") == f"/search?q={job.tx_hash}" and tx.get_attribute("title") == job.tx_hash
        assert page.locator(f"[data-job-credential='{job.id}'] a").get_attribute("href") == \
            f"/credentials/{job.credential_id}"
    assert not page.locator("#retry-all").is_visible()


def test_the_failed_jobs_of_every_batch_are_one_page_away_from_the_nav_and_can_be_retried(browser, site):
    page = _operator(browser, site)
    p = site["p"]
    page.locator("header nav a", has_text="Failed").click()
    page.wait_for_url(f"{site['base']}/failed")
    failed = [j for b in site["failed_batches"] for j in batch_jobs(p, b)]
    listed = page.locator("#failed-jobs tbody").inner_text()
    for job in failed:
        assert page.locator(f"#failed-jobs a[href='/jobs/{job.id}']").count() == 1
        assert f"#{job.batch_id}" in listed
    listed_by_api = page.request.get(site["base"] + "/api/failed").json()
    assert [j["id"] for j in listed_by_api["jobs"]] == [j.id for j in failed]
    assert sum(c["count"] for c in listed_by_api["by_code"]) == 3
    page.click("#retry-all-failed")
    assert page.locator("h1").inner_text() == "Retry 3 failed jobs of every batch?"
    page.locator("button.primary", has_text="Retry 3 jobs").click()
    page.wait_for_url(f"{site['base']}/failed")
    assert "3 re-queued" in page.locator(".flash").inner_text()
    for b, n in zip(site["failed_batches"], (2, 1)):
        wait_states(p, b, "confirmed", n)
    page.reload()
    assert "No failed jobs." in page.locator("#failed-jobs").inner_text()
