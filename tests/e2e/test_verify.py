"""`verify`: one answer whichever source gives it. A real pipeline (Anvil, RabbitMQ, SQLite, signer and consumer
processes) issues a credential that expires, one that does not, and one it then revokes; the chain's clock is then
moved 30 days ahead while the machine's stays. The database path and the chain fallback must agree, field for
field, through the library, the CLI and the public API."""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import time

import pytest
from eth_utils import is_checksum_address
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import Session

from blockproof.errors import RpcUnavailable
from blockproof.settings import PROJECT_ROOT
from blockproof.verify import ChainClock, InvalidFingerprint, answer, credential_status, judge, parse_fingerprint
from models.db import engine_for, migrate
from models.tables import Job
from tests.harness import revoke_and_wait, running_pipeline, write_csv
from web.app import create_app

WEB = {"web_secret": secrets.token_urlsafe(32)}
FP = "0x" + "ab" * 32
RECORD = {"fingerprint": FP, "student_wallet": "0x" + "11" * 20, "institution": "0x" + "22" * 20,
          "metadata_uri": "", "encrypted_payload_uri": "", "expires_at": 0, "revoked": False, "revoked_at": None,
          "revocation_reason_hash": None}
DAY = 86400


# ---- pure rules ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, says", [("0x12", "has 2 hex digits"), ("ab" * 32, "the 0x prefix is missing"),
                                        ("0x" + "zz" * 32, "not hexadecimal"), ("hello", "does not start with 0x"),
                                        ("0x" + "ab" * 33, "has 66 hex digits")])
def test_a_malformed_fingerprint_is_refused_saying_what_is_wrong_and_what_a_fingerprint_looks_like(text, says):
    with pytest.raises(InvalidFingerprint) as exc:
        parse_fingerprint(text)
    assert says in str(exc.value) and "0x followed by 64 hexadecimal digits" in str(exc.value)
    assert parse_fingerprint(" 0x" + "AB" * 32 + " ") == FP


def test_the_verdict_names_the_first_thing_that_makes_a_credential_fail_in_a_sentence():
    revoked_and_expired = RECORD | {"revoked": True, "revoked_at": 1_000, "expires_at": 500}
    assert judge(7, None, now=0, clock="chain", fingerprint=FP)[0] == "not_issued"
    assert judge(7, revoked_and_expired, now=2_000, clock="chain", fingerprint="0x" + "cd" * 32)[0] == \
        "fingerprint_mismatch"
    verdict, reason = judge(7, revoked_and_expired, now=2_000, clock="chain", fingerprint=FP)
    assert verdict == "revoked" and reason == "Credential 7 was revoked on 1970-01-01 00:16:40 UTC."
    verdict, reason = judge(7, RECORD | {"expires_at": 500}, now=2_000, clock="chain", fingerprint=None)
    assert verdict == "expired" and "chain time is 1970-01-01 00:33:20 UTC" in reason
    assert judge(7, RECORD | {"expires_at": 2_000}, now=2_000, clock="chain", fingerprint=None)[0] == "valid"
    assert judge(7, RECORD, now=2_000, clock="chain", fingerprint=FP)[1].endswith("and the fingerprint matches.")


def test_valid_true_never_stands_beside_a_failed_verdict_without_verified_false():
    mismatch = answer(7, RECORD, now=1, clock="chain", source="chain", fingerprint="0x" + "cd" * 32)
    assert mismatch["verdict"] == "fingerprint_mismatch" and mismatch["verified"] is False
    assert mismatch["valid"] is True and mismatch["fingerprint_matches"] is False  # the seed's fields stay
    missing = answer(7, None, now=1, clock="chain", source="chain", fingerprint=None)
    assert set(missing) == set(mismatch) - {"verified", "fingerprint_matches"}


class _DownRpc:
    def get_block(self, *args):
        raise RpcUnavailable("RPC node at http://127.0.0.1:9 did not answer: ConnectionError")


def test_the_chain_clock_is_asked_once_per_ttl_and_the_machine_clock_stands_in_when_the_chain_is_down_and_says_so():
    ticks = iter([0.0, 0.1, 0.5, 5.0, 5.1])
    clock = ChainClock(ttl=1.0, monotonic=lambda: next(ticks), wall=lambda: 1234.9)
    assert clock.now(_DownRpc()) == (1234, "machine")
    clock.observe(99)
    assert clock.now(_DownRpc()) == (99, "chain")  # within the ttl: the cached chain time, nothing asked
    assert clock.now(_DownRpc()) == (1234, "machine")  # past it: asked, and the chain did not answer


# ---- one pipeline, three credentials, the chain 30 days ahead ------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with running_pipeline(tmp_path_factory, "verify") as p:
        workdir, chain = p.workdir, p.chain
        source = write_csv(workdir / "plain.csv", 3, seed=23)
        with open(source, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        in_two_days = (dt.date.today() + dt.timedelta(days=2)).isoformat()
        for i, row in enumerate(rows):
            row["expires_at"] = in_two_days if i == 0 else ""
        path = workdir / "graduates.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        p.upload(str(path))
        p.wait_until_settled(3)
        with Session(p.engine) as s:
            jobs = list(s.execute(select(Job).where(Job.kind == "issue").order_by(Job.line)).scalars())
        expiring, lasting, revoked = [(j.credential_id, j.fingerprint) for j in jobs]
        revoke_and_wait(p, revoked[0])
        chain.rpc("evm_setIntervalMining", 0)  # from here on the latest block, and so the chain's time, stands still
        chain.rpc("evm_increaseTime", 30 * DAY)
        chain.rpc("evm_mine")
        empty = workdir / "empty.db"
        migrate(f"sqlite:///{empty}")
        yield {"p": p, "expiring": expiring, "lasting": lasting, "revoked": revoked,
               "empty_url": f"sqlite:///{empty}", "unknown": max(j.credential_id for j in jobs) + 1000}


def _cases(world):
    return [(world["expiring"][0], world["expiring"][1], "expired"),
            (world["lasting"][0], world["lasting"][1], "valid"),
            (world["lasting"][0], None, "valid"),
            (world["lasting"][0], "0x" + "cd" * 32, "fingerprint_mismatch"),
            (world["revoked"][0], world["revoked"][1], "revoked"),
            (world["unknown"], FP, "not_issued")]


def _without_source(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "source"}


def test_the_database_and_the_chain_fallback_give_the_same_answer_field_for_field(world):
    p = world["p"]
    settings = p.settings()
    empty = engine_for(world["empty_url"])
    for credential_id, fingerprint, verdict in _cases(world):
        from_db = credential_status(credential_id, fingerprint=fingerprint, settings=settings, engine=p.engine)
        from_chain = credential_status(credential_id, fingerprint=fingerprint, settings=settings, engine=empty)
        assert from_db["verdict"] == verdict, from_db
        assert from_chain["source"] == "chain"
        assert from_db["source"] == ("chain" if verdict == "not_issued" else "database")
        assert _without_source(from_db) == _without_source(from_chain), (from_db, from_chain)
    revoked = credential_status(world["revoked"][0], settings=settings, engine=p.engine)
    assert revoked["revoked_at"] and revoked["revocation_reason_hash"] and revoked["metadata_uri"]
    assert is_checksum_address(revoked["student_wallet"]) and is_checksum_address(revoked["institution"])


def test_expiry_is_judged_by_the_chain_latest_block_time_on_both_paths_not_by_the_machine_clock(world):
    p = world["p"]
    latest = int(p.chain.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    for engine in (p.engine, engine_for(world["empty_url"])):
        result = credential_status(world["expiring"][0], settings=p.settings(), engine=engine)
        assert time.time() < result["expires_at"] < latest, "the machine says valid, the chain says expired"
        assert result["verdict"] == "expired" and result["expired"] and not result["valid"]
        assert result["checked_at"] == latest and result["clock"] == "chain"


def test_with_the_chain_down_the_database_answers_by_the_machine_clock_and_says_so(world):
    p = world["p"]
    result = credential_status(world["expiring"][0], settings=p.settings(rpc_url="http://127.0.0.1:9"),
                               engine=p.engine)
    assert result["source"] == "database" and result["clock"] == "machine" and result["verdict"] == "valid"
    assert "this machine's time" not in result["reason"]  # only an expiry quotes the clock
    with pytest.raises(RpcUnavailable):
        credential_status(world["expiring"][0], settings=p.settings(rpc_url="http://127.0.0.1:9"),
                          engine=engine_for(world["empty_url"]))


def test_the_public_api_answers_the_same_from_the_database_and_from_the_chain_with_one_verdict(world):
    p = world["p"]
    with_db = TestClient(create_app(p.settings(**WEB), p.engine, announce=None))
    without = TestClient(create_app(p.settings(**WEB, database_url=world["empty_url"]), announce=None))
    for credential_id, fingerprint, verdict in _cases(world):
        path = f"/api/credentials/{credential_id}/" + (f"verify?fingerprint={fingerprint}" if fingerprint else "status")
        a, b = with_db.get(path), without.get(path)
        assert a.status_code == b.status_code == (404 if verdict == "not_issued" else 200), a.text
        assert a.json()["verdict"] == verdict and a.json()["reason"]
        assert _without_source(a.json()) == _without_source(b.json()), (a.json(), b.json())
        if fingerprint:
            assert a.json()["verified"] is (verdict == "valid")


@pytest.mark.parametrize("fingerprint", ["0x12", "ab" * 32, "0x" + "zz" * 32])
def test_the_public_api_refuses_a_malformed_fingerprint_with_a_clear_message(world, fingerprint):
    client = TestClient(create_app(world["p"].settings(**WEB), world["p"].engine, announce=None))
    r = client.get(f"/api/credentials/{world['lasting'][0]}/verify", params={"fingerprint": fingerprint})
    assert r.status_code == 422 and "0x followed by 64 hexadecimal digits" in r.json()["detail"], r.text


def _cli(world, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "blockproof.cli", "verify", *args], capture_output=True, text=True,
                          env=os.environ | world["p"].env_vars(), cwd=PROJECT_ROOT, timeout=120)


def test_the_cli_refuses_a_malformed_fingerprint_and_prints_the_same_answer_as_the_api(world):
    bad = _cli(world, str(world["lasting"][0]), "--fingerprint", "0x12")
    assert bad.returncode == 2 and "0x followed by 64 hexadecimal digits" in bad.stderr and not bad.stdout
    assert "Traceback" not in bad.stderr
    cid, fingerprint = world["expiring"]
    done = _cli(world, str(cid), "--fingerprint", fingerprint)
    assert done.returncode == 3, done.stderr  # EXIT_INVALID: not valid
    printed = json.loads(done.stdout)
    api = TestClient(create_app(world["p"].settings(**WEB), world["p"].engine, announce=None))
    assert printed == api.get(f"/api/credentials/{cid}/verify", params={"fingerprint": fingerprint}).json()
    assert printed["verdict"] == "expired" and done.stderr.strip().startswith("expired: Credential")
    assert _cli(world, str(world["lasting"][0])).returncode == 0
