"""The S3 document store against a real S3-compatible server (moto's, as its own process on a free port): a real
pipeline (Anvil, RabbitMQ, SQLite, signer and consumer processes) issues a batch whose documents go to the bucket;
they are compared byte for byte with what the chain's fingerprints commit to, fetched through the metadata URIs the
chain holds, and read back by the export ZIP. A missing or denied bucket stops start-up with a message naming what
to fix, and the AWS credentials appear in no log line, no error and no database row."""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from datetime import datetime, timedelta, timezone

import httpx
import pandas as pd
import pytest
from sqlalchemy import select, update
from sqlmodel import Session

from blockproof.errors import ConfigurationError
from blockproof.settings import PROJECT_ROOT, Settings
from models.tables import Job
from producers import documents
from producers.export import stored_or_kept
from producers.hashing import keccak
from producers.s3_store import S3Config, S3Store, document_key
from tests.harness import write_csv
from tests.web_helpers import free_port

boto3 = pytest.importorskip("boto3")
BUCKET, PREFIX = "registrar-documents", "credentials/2026"
# distinctive values: any of them showing up in a log, an error or the database is a leak
KEY_ID, SECRET, TOKEN = "AKIAQXLEAKCHECK00001", "s3cr3t-NEVER-LOGGED-" + "x" * 20, "t0ken-NEVER-LOGGED-" + "y" * 30
PUBLIC_READ = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                                       "Resource": f"arn:aws:s3:::{BUCKET}/{PREFIX}/*"}]}
CREDENTIALS = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN,
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
               "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}


def _moto(tmp_path_factory, name: str, env: dict | None = None):
    port = free_port()
    log = tmp_path_factory.mktemp(name) / "moto.log"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env=os.environ | (env or {}), stdout=open(log, "w"), stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # a bare connection: an HTTP request would use up the guarded server's one unauthenticated call
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    return proc, endpoint


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server with the registrar's bucket."""
    pytest.importorskip("moto")
    proc, endpoint = _moto(tmp_path_factory, "moto")
    try:
        client(endpoint).create_bucket(Bucket=BUCKET)
        client(endpoint).put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(PUBLIC_READ))  # as docs/operations.md
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def guarded_s3(tmp_path_factory):
    """A moto S3 server that checks credentials (after the one unauthenticated call that makes the bucket): ours
    are unknown to it, so every request is denied."""
    pytest.importorskip("moto")
    proc, endpoint = _moto(tmp_path_factory, "moto-guarded", {"INITIAL_NO_AUTH_ACTION_COUNT": "1"})
    try:
        client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def client(endpoint: str):
    return boto3.session.Session(aws_access_key_id="admin", aws_secret_access_key="admin").client(
        "s3", endpoint_url=endpoint, region_name="us-east-1")


def s3_env(endpoint: str, bucket: str = BUCKET) -> dict[str, str]:
    return {"BLOCKPROOF_DOCUMENT_STORE": "s3", "BLOCKPROOF_DOCUMENT_S3_BUCKET": bucket,
            "BLOCKPROOF_DOCUMENT_S3_PREFIX": PREFIX, "BLOCKPROOF_DOCUMENT_S3_ENDPOINT_URL": endpoint,
            "BLOCKPROOF_DOCUMENT_S3_ADDRESSING_STYLE": "path"} | CREDENTIALS


def objects(endpoint: str, prefix: str) -> dict[str, bytes]:
    c = client(endpoint)
    keys = [o["Key"] for page in c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
            for o in page.get("Contents", [])]
    return {k: c.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys}


@pytest.fixture
def aws_env(monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


# ---- pure --------------------------------------------------------------------------------------------------------
def test_keys_are_prefix_batch_line_and_a_blank_prefix_adds_no_slash():
    assert document_key(S3Config(BUCKET, "a/b"), 7, 12) == "a/b/7/12.json"
    assert document_key(S3Config(BUCKET, ""), 7, 12) == "7/12.json"
    assert S3Config(BUCKET, "docs", "http://minio:9000").describe() == f"s3://{BUCKET}/docs/ at http://minio:9000"
    with pytest.raises(ConfigurationError, match="BLOCKPROOF_DOCUMENT_S3_BUCKET is not set"):
        S3Config.from_settings(Settings(document_store="s3"))


def test_the_export_takes_the_stored_document_only_when_it_is_the_one_the_fingerprint_commits_to():
    class JobRow:
        document = '{"a":1}'
        fingerprint = "0x" + keccak(b'{"a":1}').hex()

    assert stored_or_kept(JobRow, b'{"a":1}') == (b'{"a":1}', None)
    assert stored_or_kept(JobRow, b'{"a":2}') == (b'{"a":1}', "altered in")
    assert stored_or_kept(JobRow, None) == (b'{"a":1}', "missing from")


# ---- the store against the server ---------------------------------------------------------------------------------
def test_an_uncommitted_batch_is_marked_a_published_one_is_not_and_a_stale_one_is_removed(s3, aws_env):
    store = S3Store(S3Config(BUCKET, "unit", s3, addressing_style="path"))
    store.check()
    rows = pd.DataFrame({"line": [2, 3], "document": ['{"n":2}', '{"n":3}']})
    for batch in (1, 2):
        store.begin(batch)
        store.write(batch, rows)
    assert set(objects(s3, "unit/")) == {"unit/.partial/1", "unit/.partial/2", "unit/1/2.json", "unit/1/3.json",
                                         "unit/2/2.json", "unit/2/3.json"}
    store.publish(1)
    assert store.read_many(1, [2, 3, 4]) == {2: b'{"n":2}', 3: b'{"n":3}', 4: None}
    assert store.remove_stale(600) == [], "a batch touched just now is alive"
    later = datetime.now(timezone.utc) + timedelta(seconds=601)
    assert store.remove_stale(600, now=later) == [f"s3://{BUCKET}/unit/2/"], "only the uncommitted batch goes"
    assert set(objects(s3, "unit/")) == {"unit/1/2.json", "unit/1/3.json"}
    store.discard(1)
    assert objects(s3, "unit/") == {}


def test_a_missing_bucket_stops_start_up_naming_the_bucket_and_writes_nothing(s3, tmp_path, sqlite_url):
    source = write_csv(tmp_path / "graduates.csv", 3, seed=5)
    env = os.environ | {"DATABASE_URL": sqlite_url} | s3_env(s3, "no-such-bucket")
    done = subprocess.run([sys.executable, "-m", "blockproof.cli", "upload", str(source), "--no-chain-check"],
                          env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BLOCKPROOF_DOCUMENT_S3_BUCKET: bucket 'no-such-bucket' does not exist" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "written" not in done.stdout
    from web.app import create_app
    from web.people import StartupRefused

    settings = Settings(database_url=sqlite_url, web_secret="w" * 40, **{
        k.removeprefix("BLOCKPROOF_").lower(): v for k, v in s3_env(s3, "no-such-bucket").items()
        if k.startswith("BLOCKPROOF_")})
    with pytest.MonkeyPatch.context() as m:
        for name, value in CREDENTIALS.items():
            m.setenv(name, value)
        with pytest.raises(StartupRefused, match="does not exist"):
            create_app(settings, announce=None)


def test_a_denied_bucket_stops_start_up_saying_what_the_credentials_need_and_never_showing_them(
        guarded_s3, tmp_path, sqlite_url):
    source = write_csv(tmp_path / "graduates.csv", 3, seed=6)
    env = os.environ | {"DATABASE_URL": sqlite_url} | s3_env(guarded_s3)
    for verbose in ([], ["-v"]):
        done = subprocess.run([sys.executable, "-m", "blockproof.cli", *verbose, "upload", str(source),
                               "--no-chain-check"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=120)
        out = done.stdout + done.stderr
        assert done.returncode == 1, out
        assert f"reading bucket '{BUCKET}' is denied" in done.stderr and "s3:PutObject" in done.stderr, out
        for value in (KEY_ID, SECRET, TOKEN):
            assert value not in out


def test_no_aws_credentials_at_all_is_a_start_up_error_that_says_where_they_are_looked_for(s3, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.setenv(name, os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigurationError, match="no AWS credentials found: set AWS_ACCESS_KEY_ID"):
        S3Store(S3Config(BUCKET, "x", s3, region="us-east-1")).check()


# ---- a real batch -------------------------------------------------------------------------------------------------
ROWS = 40


def test_an_uploads_documents_land_in_the_bucket_byte_for_byte_what_the_chain_commits_to_and_the_zip_reads_them(
        s3, make_pipeline, sqlite_url, tmp_path, caplog):
    public = f"{s3}/{BUCKET}/{PREFIX}"  # path-style URL of the prefix: the metadata URIs on chain point into it
    p = make_pipeline(sqlite_url, extra_env=s3_env(s3) | {"BLOCKPROOF_DOCUMENT_BASE_URI": public})
    p.start("signer")
    p.start("consumer")
    source = write_csv(tmp_path / "graduates.csv", ROWS, seed=17)
    env = os.environ | p.env_vars()
    env.pop("BLOCKPROOF_SIGNER_KEY")
    # the upload as a registrar runs it, verbose: botocore's request lines would carry the credentials
    up = subprocess.run([sys.executable, "-m", "blockproof.cli", "-v", "upload", str(source)], env=env,
                        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    p.wait_until_settled(ROWS, timeout=180)
    events = p.assert_exactly_once(ROWS)
    with Session(p.engine) as s:
        jobs = list(s.execute(select(Job).where(Job.kind == "issue")).scalars())
    batch = jobs[0].batch_id

    stored = objects(s3, PREFIX + "/")
    assert set(stored) == {f"{PREFIX}/{batch}/{j.line}.json" for j in jobs}, "one object per credential, no marker"
    by_fingerprint = {j.fingerprint: j for j in jobs}
    for e in events:
        job = by_fingerprint[e["fingerprint"]]
        body = stored[f"{PREFIX}/{batch}/{job.line}.json"]
        assert "0x" + keccak(body).hex() == e["fingerprint"], "the object is the document the chain commits to"
        assert body == job.document.encode("utf-8")
        assert e["metadata_uri"] == f"{public}/{batch}/{job.line}.json"
        assert httpx.get(e["metadata_uri"], timeout=10).content == body, "the URI on chain serves the document"
    assert not any((p.workdir / "documents").rglob("*.json")), "nothing went to the local directory"

    # the ZIP reads the bucket: with the database's copies gone it still holds every document
    with Session(p.engine) as s:
        s.execute(update(Job).values(document=""))
        s.commit()
    out = tmp_path / "documents.zip"
    done = subprocess.run([sys.executable, "-m", "blockproof.cli", "-v", "export", str(batch), "--zip", "--out",
                           str(out)], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    archive = zipfile.ZipFile(out)
    bodies = {archive.read(name) for name in archive.namelist()}
    assert len(archive.namelist()) == ROWS and bodies == set(stored.values())
    assert {"0x" + keccak(b).hex() for b in bodies} == {e["fingerprint"] for e in events}

    # a document the bucket lost, or holds altered, comes from the database's copy, and the log says so
    lost, altered = jobs[0], jobs[1]
    with Session(p.engine) as s:
        for j in (lost, altered):
            s.execute(update(Job).where(Job.id == j.id).values(document=stored[f"{PREFIX}/{batch}/{j.line}.json"]
                                                               .decode("utf-8")))
        s.commit()
    c = client(s3)
    c.delete_object(Bucket=BUCKET, Key=f"{PREFIX}/{batch}/{lost.line}.json")
    c.put_object(Bucket=BUCKET, Key=f"{PREFIX}/{batch}/{altered.line}.json", Body=b'{"forged":true}')
    from fastapi.testclient import TestClient

    from tests.people import Person
    from web.app import create_app

    viewer = Person("vera", "viewer")
    with pytest.MonkeyPatch.context() as m:
        for name, value in CREDENTIALS.items():
            m.setenv(name, value)
        api = TestClient(create_app(p.settings(web_secret="w" * 40), p.engine, announce=None))
        viewer.enrol(p.engine)
        r = api.get(f"/api/batches/{batch}/documents.zip", auth=viewer)
    assert r.status_code == 200
    again = zipfile.ZipFile(io.BytesIO(r.content))
    assert {again.read(n) for n in again.namelist()} == set(stored.values())
    warned = [r.getMessage() for r in caplog.records if r.name == "blockproof.export"]
    assert any(f"batch {batch}: 1 document(s) missing from the document store" in m and f"lines {lost.line};" in m
               for m in warned), warned
    assert any(f"batch {batch}: 1 document(s) altered in the document store" in m and f"lines {altered.line};" in m
               for m in warned), warned

    leaked = [v for v in (KEY_ID, SECRET, TOKEN)
              if v in up.stdout + up.stderr + done.stderr + p.log("signer") + p.log("consumer")]
    assert not leaked, "a credential reached a log"
    database = (tmp_path / "blockproof.db").read_bytes()
    assert not any(v.encode() in database for v in (KEY_ID, SECRET, TOKEN)), "a credential reached the database"
    assert "botocore" not in up.stderr, "botocore's debug lines (request headers) stay hidden under -v"


def test_the_directory_store_is_the_default_and_reads_back_what_it_published(tmp_path):
    store = documents.store_for(Settings(document_dir=tmp_path / "docs"))
    assert isinstance(store, documents.DirectoryStore)
    store.begin(3)
    store.write(3, pd.DataFrame({"line": [2], "document": ['{"n":2}']}))
    assert store.read_many(3, [2]) == {2: None}, "not published yet"
    store.publish(3)
    assert store.read_many(3, [2, 5]) == {2: b'{"n":2}', 5: None}
