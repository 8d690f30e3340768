"""The monitoring UI in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright; no browser is
downloaded), against `blockproof web` as its own process and a real pipeline (Anvil, RabbitMQ, SQLite, signer
and consumer processes). Saves screenshots of the main pages (docs/screenshots/ via `make screenshots`)."""
from __future__ import annotations

import os
import secrets

import pytest

from tests.harness import write_csv
from tests.people import Person
from tests.web_helpers import (ARGS, CHROMIUM, REVERT_ALWAYS, SHOTS, log_in, require_chromium, upload, wait_states,
                               wait_text, web_server)

ADA, GRACE = Person("ada.lovelace", "operator"), Person("grace", "viewer")


@pytest.fixture
def web(make_pipeline, sqlite_url, tmp_path):
    """The pipeline running, and `blockproof web` serving it on a free port."""
    require_chromium()
    p = make_pipeline(sqlite_url)
    p.start("signer")
    p.start("consumer")
    ADA.enrol(p.engine)
    GRACE.enrol(p.engine)
    env = os.environ | p.env_vars() | {"BLOCKPROOF_WEB_SECRET": secrets.token_urlsafe(32)}
    with web_server(env, tmp_path / "web.log") as base:
        yield p, base


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(600)  # let the progress bar's width transition finish
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_an_operator_uploads_watches_progress_retries_a_failed_job_after_the_fix_and_a_viewer_cannot(web, tmp_path):
    from playwright.sync_api import sync_playwright

    p, base = web
    graduates = write_csv(tmp_path / "graduates.csv", 24, seed=5, invalid_fraction=0.2)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        operator = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
        log_in(operator, base, ADA)
        assert "ada.lovelace" in operator.locator("header .who").inner_text()

        # upload → preview with the invalid rows → commit
        upload(operator, base, graduates)
        errors = operator.locator("#upload-errors tbody tr")
        assert errors.count() >= 1
        new = int(operator.locator("[data-count=new]").inner_text().replace(",", ""))
        invalid = int(operator.locator("[data-count=invalid]").inner_text())
        assert invalid >= 1 and new + invalid == 24
        assert operator.locator("a", has_text="Download error CSV").count() == 1
        assert p.counts() == {}, "nothing is queued before commit"
        _shot(operator, "upload-preview")
        operator.click("#commit-form button[type=submit]")
        operator.wait_for_url(lambda url: "/batches/" in url)
        batch1 = int(operator.url.rstrip("/").rsplit("/", 1)[-1])

        # the progress line updates itself until every row is confirmed
        wait_text(operator, "[data-live='batch.progress']", f"{new}/{new} confirmed · 0 pending · 0 failed")
        _shot(operator, "batch")
        operator.goto(base + "/batches")
        _shot(operator, "batches")

        # pause issuance, queue three more rows, break the contract, resume: the rows fail pre-flight
        operator.goto(base + "/")
        operator.locator("#signer-panel button", has_text="Pause issuance").click()
        operator.wait_for_url(base + "/")
        assert "paused by operator" in operator.locator("#signer-panel").inner_text()
        upload(operator, base, write_csv(tmp_path / "more.csv", 3, seed=77))
        operator.click("#commit-form button[type=submit]")
        operator.wait_for_url(lambda url: "/batches/" in url)
        batch2 = int(operator.url.rstrip("/").rsplit("/", 1)[-1])
        wait_states(p, batch2, "ready", 3, timeout=60)
        vault = p.env.vault_address
        original_code = p.chain.rpc("eth_getCode", vault, "latest")
        p.chain.rpc("anvil_setCode", vault, REVERT_ALWAYS)
        operator.goto(base + "/")
        operator.locator("#signer-panel button", has_text="Resume issuance").click()
        operator.wait_for_url(base + "/")
        _shot(operator, "dashboard")
        operator.goto(f"{base}/batches/{batch2}")
        wait_text(operator, "[data-live='batch.progress']", "0/3 confirmed · 0 pending · 3 failed", timeout=60)

        # the failed job says why, in plain words, and whether a retry can help
        operator.locator("table.jobs tbody tr a").first.click()
        operator.wait_for_url(lambda url: "/jobs/" in url)
        job_url = operator.url
        reason = operator.locator("#error-reason").inner_text()
        assert "The contract refused the call" in reason and "retryable" in reason and "not retryable" not in reason
        _shot(operator, "job")

        # a viewer sees the same page without the retry button and is refused if it tries anyway
        viewer = browser.new_context().new_page()
        log_in(viewer, base, GRACE)
        viewer.goto(job_url)
        assert viewer.locator("#retry-job").count() == 0
        assert "Only an operator can retry" in viewer.content()
        token = viewer.request.get(base + "/api/me").json()["csrf_token"]
        refused = viewer.request.post(job_url + "/retry", headers={"X-CSRF-Token": token})
        assert refused.status == 403
        viewer.goto(f"{base}/batches/{batch2}")
        assert viewer.locator("text=Retry all").count() == 0
        # logging out (here from another request of the same browser) ends the session the open page polls with
        assert viewer.request.post(base + "/logout", form={"csrf_token": token}).ok
        wait_text(viewer, "#live-status", "your session has ended: reload the page to log in again", timeout=30)
        viewer.reload()
        assert "/login" in viewer.url

        # fix the cause, retry one job, then all the others of the batch (each confirmation names the count)
        p.chain.rpc("anvil_setCode", vault, original_code)
        operator.click("#retry-job")
        assert "Retry 1 job" in operator.locator("h1").inner_text()
        operator.locator("button.primary", has_text="Retry 1 job").click()
        operator.wait_for_url(job_url)
        assert "1 re-queued" in operator.locator(".flash").inner_text()
        operator.goto(f"{base}/batches/{batch2}")
        operator.locator("a", has_text="Retry all 2 failed").click()
        assert operator.locator("h1").inner_text() == f"Retry 2 failed jobs of batch {batch2}?"
        operator.locator("button.primary", has_text="Retry 2 jobs").click()
        operator.wait_for_url(f"{base}/batches/{batch2}")
        wait_text(operator, "[data-live='batch.progress']", "3/3 confirmed · 0 pending · 0 failed", timeout=120)
        operator.goto(job_url)
        assert operator.locator("h2 .state").first.inner_text() == "confirmed"

        # the audit page lists what the operator did
        operator.goto(base + "/audit")
        audit = operator.locator("main").inner_text()
        for action in ("upload.commit", "signer.pause", "signer.resume", "retry"):
            assert action in audit
        rows = [row.inner_text() for row in operator.locator("main tbody tr").all()]
        done = [r for r in rows if any(a in r for a in ("upload.commit", "signer.pause", "retry"))]
        assert done and all("ada.lovelace" in r and "127.0.0.1" in r for r in done), rows
        assert any("grace" in r and "login" in r for r in rows)
        browser.close()
    p.assert_exactly_once(new + 3)
    assert batch1 != batch2
