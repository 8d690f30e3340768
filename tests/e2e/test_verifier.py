"""The standalone verifier (web/static/blockproof-verifier.html): the committed files are exactly what `make verifier`
builds from web/verifier/ and the pinned npm packages, and the file, opened from disk (file://) in real headless
Chromium with no server of ours, asks a real Anvil directly and gives each verdict: valid, revoked, expired,
altered, unknown."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from blockproof.devchain import DevChain, anvil_available, deploy_dev_environment
from blockproof.settings import PROJECT_ROOT
from contracts.testing import VaultHarness
from producers.canonical import canonical_json, credential_document, fingerprint
from tests.conftest import require
from tests.web_helpers import ARGS, CHROMIUM, SHOTS

STATIC = PROJECT_ROOT / "web" / "static"
BUILT = ("verify.js", "blockproof-verifier.html")
DAY = 86400
SECRET = b"standalone-verifier-test-secret-0123456789"


def test_the_committed_verifier_files_are_what_make_verifier_builds(tmp_path):
    require(shutil.which("node") is not None and (PROJECT_ROOT / "node_modules" / "esbuild").is_dir(),
            "node and node_modules (npm ci)")
    subprocess.run(["node", str(PROJECT_ROOT / "web" / "verifier" / "build.mjs"), str(tmp_path)], check=True,
                   cwd=PROJECT_ROOT, timeout=120)
    for name in BUILT:
        assert (tmp_path / name).read_bytes() == (STATIC / name).read_bytes(), \
            f"web/static/{name} is not what `make verifier` builds: run it and commit the result"
    html = (STATIC / "blockproof-verifier.html").read_text(encoding="utf-8")
    assert "<script src" not in html and "<link" not in html, "the standalone file loads nothing else"
    assert html.count("<script>") == 1 and "/*SCRIPT*/" not in html and "/*STYLE*/" not in html


def _document(i: int, wallet: str, institution: str, expires_at: int = 0) -> dict:
    return credential_document(institution=institution, student_id=f"SV{i}", student_name=f"Graduate {i}",
                               student_wallet=wallet, degree="Bachelor of Science", major="Chemistry",
                               graduation_date="2025-06-14", expires_at=expires_at, secret=SECRET)


@pytest.fixture(scope="module")
def chain_with_credentials():
    require(anvil_available(), "Anvil (npm ci)")
    require(os.path.exists(CHROMIUM), "Chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    chain = DevChain(block_time=None)
    chain.start()
    try:
        env = deploy_dev_environment(chain)
        h = VaultHarness(chain, env)
        now = h.block_timestamp()
        wallets = ["0x" + f"{i:02x}" * 20 for i in (0x11, 0x22, 0x33)]
        docs = {"valid": _document(1, wallets[0], env.institution_address),
                "revoked": _document(2, wallets[1], env.institution_address),
                "expired": _document(3, wallets[2], env.institution_address, expires_at=now + DAY)}
        ids = {}
        for verdict, doc in docs.items():
            request = (env.institution_address, doc["studentWallet"], bytes.fromhex(fingerprint(doc)[2:]), "", "",
                       doc.get("expiresAt", 0))
            receipt = h.tx(h.f.issueCredential(request))
            ids[verdict] = h.events(receipt, "CredentialIssued")[0]["credentialId"]
        h.tx(h.f.revokeCredential(ids["revoked"], b"\x01" * 32))
        chain.rpc("evm_increaseTime", 2 * DAY)
        chain.rpc("evm_mine")
        texts = {verdict: json.dumps(doc, indent=2, ensure_ascii=False) for verdict, doc in docs.items()}
        texts["altered"] = json.dumps(docs["valid"] | {"major": "Medicine"})
        texts["not_issued"] = canonical_json(_document(9, "0x" + "99" * 20, env.institution_address)).decode()
        yield chain, env, texts
    finally:
        chain.stop()


TITLES = {"valid": "Valid", "revoked": "Revoked", "expired": "Expired", "not_issued": "Not issued by this contract",
          "altered": "Altered"}
SAYS = {"valid": "valid: issued on chain", "revoked": "was revoked by its institution on", "expired": "expired on",
        "altered": "changed after it was issued", "not_issued": "was issued by this contract"}


def test_the_standalone_file_opened_from_disk_asks_the_chain_and_gives_each_verdict(chain_with_credentials):
    from playwright.sync_api import sync_playwright

    chain, env, texts = chain_with_credentials
    url = (STATIC / "blockproof-verifier.html").as_uri() + f"#rpc={chain.rpc_url}&contract={env.vault_address}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_context(viewport={"width": 820, "height": 900}).new_page()
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        for verdict, text in texts.items():
            page.goto("about:blank")
            page.goto(url)
            assert page.input_value("#rpc") == chain.rpc_url and page.input_value("#contract") == env.vault_address
            page.fill("#document", text)
            page.click("#verify-button")
            page.wait_for_selector("#result:not([hidden])", timeout=30_000)
            page.wait_for_selector("#verify-button:not([disabled])")
            shown = page.locator("#result").inner_text()
            assert page.locator("#result").get_attribute("data-verdict") == verdict, shown
            assert page.locator("#verdict").inner_text() == TITLES[verdict] and SAYS[verdict] in shown, shown
            if verdict in ("valid", "revoked", "expired"):
                assert f"Example University ({env.institution_address})" in shown and "Issued" in shown
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "standalone-verifier.png"), full_page=True)

        page.goto("about:blank")
        page.goto(url.split("#")[0] + f"#rpc=http://127.0.0.1:9&contract={env.vault_address}")
        page.fill("#document", texts["valid"])
        page.click("#verify-button")
        page.wait_for_selector("#result[data-verdict=problem]", timeout=30_000)
        assert "could not be reached" in page.locator("#reason").inner_text()
        page.fill("#document", "{not json")
        page.click("#verify-button")
        assert "not valid JSON" in page.locator("#reason").inner_text()
        browser.close()
    others = {r for r in requests if not r.startswith(("file://", "about:", chain.rpc_url, "http://127.0.0.1:9/"))}
    assert not others, f"the standalone verifier asked something besides the chain: {others}"
