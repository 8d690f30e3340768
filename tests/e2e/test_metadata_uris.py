"""What goes on chain as each credential's metadata URI (permanently): by default its public verification link,
nothing personal; a document store's URI only when one is configured; and production refuses, at the start of
every component that puts credentials on chain, a file:// URI, a loopback public address, or no fingerprint secret."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from blockproof.settings import PROJECT_ROOT, Settings
from tests.harness import write_csv
from web.app import create_app

WEB = {"web_secret": secrets.token_urlsafe(32)}
FP = "0x" + "ab" * 32


def test_the_default_metadata_uri_is_the_verification_link_and_a_document_store_keeps_batch_and_line():
    default = Settings(public_url="https://verify.example.edu/")
    assert default.metadata_base_uri(7) + default.metadata_suffix(12, FP) == f"https://verify.example.edu/verify/{FP}"
    assert default.metadata_base_uri(7) + default.metadata_suffix(12, FP) == default.verification_url(FP)
    store = Settings(document_base_uri="https://docs.example.edu/credentials/")
    assert store.metadata_base_uri(7) + store.metadata_suffix(12, FP) == "https://docs.example.edu/credentials/7/12.json"


@pytest.mark.parametrize("settings, says", [
    (dict(document_base_uri="file:///srv/documents"), "BLOCKPROOF_DOCUMENT_BASE_URI is a file:// URI"),
    (dict(public_url="file:///var/www"), "BLOCKPROOF_PUBLIC_URL is a file:// URI"),
    (dict(), "BLOCKPROOF_PUBLIC_URL is 'http://127.0.0.1:8000'"),
    (dict(public_url="https://localhost"), "set it to the public address"),
])
def test_production_names_every_uri_that_would_be_useless_on_chain(settings, says):
    problems = Settings(production=True, **settings).production_uri_problems()
    assert any(says in p for p in problems), problems


def test_fit_uris_pass_and_development_may_use_anything():
    assert Settings(production=True, public_url="https://verify.example.edu").production_uri_problems() == []
    assert Settings(production=True, document_base_uri="https://docs.example.edu/c/").production_uri_problems() == []
    from blockproof.production import refuse_unfit_for_production

    refuse_unfit_for_production(Settings(document_base_uri="file:///tmp/docs"))  # dev: no refusal


def _run(command: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blockproof.cli", *command], capture_output=True, text=True,
                          env=os.environ | env, cwd=PROJECT_ROOT, timeout=120)


def test_in_production_web_signer_and_upload_refuse_to_start_with_a_file_uri(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", "BLOCKPROOF_PRODUCTION": "true",
           "BLOCKPROOF_DOCUMENT_BASE_URI": (tmp_path / "documents").as_uri(),
           "BLOCKPROOF_WEB_SECRET": WEB["web_secret"], "BLOCKPROOF_RPC_URL": "http://127.0.0.1:9",
           # a remote signer: a plain key would be refused first (production takes no plain key)
           "BLOCKPROOF_SIGNER_URL": "http://127.0.0.1:9", "BLOCKPROOF_SIGNER_ADDRESS": "0x" + "11" * 20}
    csv_path = write_csv(tmp_path / "graduates.csv", 2, seed=3)
    for command in (["web", "--port", "9"], ["signer"], ["upload", str(csv_path), "--no-chain-check"]):
        done = _run(command, env)
        # the signer's refusals of its configuration exit 2, as for a malformed key
        assert done.returncode == (2 if command == ["signer"] else 1), (command, done.stderr[-2000:])
        assert "BLOCKPROOF_DOCUMENT_BASE_URI is a file:// URI" in done.stderr, done.stderr[-2000:]
        assert "BLOCKPROOF_FINGERPRINT_SECRET_FILE" in done.stderr, "the missing secret is named in the same breath"
        assert "Traceback" not in done.stderr


def test_a_pipeline_puts_each_credential_s_verification_link_on_chain_and_the_link_answers(
        make_pipeline, sqlite_url, tmp_path):
    p = make_pipeline(sqlite_url, extra_env={"BLOCKPROOF_PUBLIC_URL": "https://verify.example.edu"})
    p.start("signer")
    p.start("consumer")
    report = p.upload(str(write_csv(tmp_path / "graduates.csv", 4, seed=71)))
    p.wait_until_settled(report.written)
    events = p.assert_exactly_once(4)
    client = TestClient(create_app(p.settings(**WEB), p.engine, announce=None))
    for e in events:
        assert e["metadata_uri"] == f"https://verify.example.edu/verify/{e['fingerprint']}"
        page = client.get(e["metadata_uri"].removeprefix("https://verify.example.edu"))
        assert page.status_code == 200 and "Valid" in page.text
