"""The `s3` document store: ``<prefix>/<batch>/<line>.json`` objects in a bucket of any S3-compatible service (AWS S3,
MinIO, Ceph, R2), through boto3.

Credentials come from boto3's own chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, AWS_PROFILE,
~/.aws/credentials, an instance or container role): they are never settings, so they never reach the database, the
UI or the configuration page, and every message here names the bucket and the endpoint only. botocore's debug lines
print each request's headers (the signature, a session token), so its loggers stay at warning even under `-v`.

The interface and the commit protocol (a marker per uncommitted batch) are described in ``producers.documents``.
"""
from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import pandas as pd

from blockproof.errors import ConfigurationError
from blockproof.settings import Settings

WORKERS = 16  # one request per object: requests in parallel hide the round trips
MARKERS = ".partial"  # <prefix>/.partial/<batch>: the batch's upload has not committed yet
DELETE_PAGE = 1000  # DeleteObjects' limit
QUIET_LOGGERS = ("botocore", "boto3", "s3transfer")
NEEDED = "s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject"


@dataclass(frozen=True)
class S3Config:
    bucket: str
    prefix: str = ""
    endpoint_url: str = ""
    region: str = ""
    addressing_style: str = "auto"

    @classmethod
    def from_settings(cls, settings: Settings) -> "S3Config":
        if not settings.document_s3_bucket.strip():
            raise ConfigurationError("BLOCKPROOF_DOCUMENT_STORE is s3 but BLOCKPROOF_DOCUMENT_S3_BUCKET is not set")
        return cls(bucket=settings.document_s3_bucket.strip(), prefix=settings.document_s3_prefix.strip("/ "),
                   endpoint_url=settings.document_s3_endpoint_url.strip(), region=settings.document_s3_region.strip(),
                   addressing_style=settings.document_s3_addressing_style)

    def key(self, *parts: object) -> str:
        return "/".join([self.prefix, *map(str, parts)] if self.prefix else map(str, parts))

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}"
        return where + (f" at {self.endpoint_url}" if self.endpoint_url else "")


def document_key(config: S3Config, batch_id: int, line: int) -> str:
    return config.key(batch_id, f"{line}.json")


@lru_cache(maxsize=16)
def open_s3_store(config: S3Config) -> "S3Store":
    """The store for this configuration, checked once per process (a failed check is not cached)."""
    store = S3Store(config)
    store.check()
    return store


class S3Store:
    def __init__(self, config: S3Config):
        import boto3
        from botocore.config import Config

        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        self.config = config
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=config.endpoint_url or None, region_name=config.region or None,
            config=Config(max_pool_connections=WORKERS, retries={"max_attempts": 5, "mode": "standard"},
                          s3={"addressing_style": config.addressing_style}))

    # ---- start-up ---------------------------------------------------------------------------------------------
    def check(self) -> None:
        """Can this process write, read and delete under the prefix? Says what to fix when not."""
        probe = self.config.key(f".write-check-{uuid.uuid4().hex[:12]}")
        with self._explained("reading"):
            self.client.head_bucket(Bucket=self.config.bucket)
        with self._explained("writing to"):
            self.client.put_object(Bucket=self.config.bucket, Key=probe, Body=b"")
        with self._explained("deleting in"):
            self.client.delete_object(Bucket=self.config.bucket, Key=probe)

    def _explained(self, doing: str):
        return _Explained(self.config, doing)

    # ---- an upload ----------------------------------------------------------------------------------------------
    def begin(self, batch_id: int) -> None:
        self.discard(batch_id)
        self._mark(batch_id)

    def write(self, batch_id: int, rows: pd.DataFrame) -> None:
        lines, documents = rows["line"].tolist(), rows["document"].tolist()
        bucket = self.config.bucket

        def put(line: int, document: str) -> None:
            self.client.put_object(Bucket=bucket, Key=document_key(self.config, batch_id, line),
                                   Body=document.encode("utf-8"), ContentType="application/json")

        with ThreadPoolExecutor(WORKERS) as pool:
            for _ in pool.map(put, lines, documents):
                pass

    def touch(self, batch_id: int) -> None:
        self._mark(batch_id)

    def publish(self, batch_id: int) -> None:
        self.client.delete_object(Bucket=self.config.bucket, Key=self._marker(batch_id))

    def discard(self, batch_id: int) -> None:
        keys = self._keys(self.config.key(batch_id) + "/")
        for start in range(0, len(keys), DELETE_PAGE):
            self.client.delete_objects(Bucket=self.config.bucket, Delete={
                "Objects": [{"Key": k} for k in keys[start : start + DELETE_PAGE]], "Quiet": True})
        self.client.delete_object(Bucket=self.config.bucket, Key=self._marker(batch_id))

    def remove_stale(self, older_than_seconds: float, now: datetime | None = None) -> list[str]:
        cutoff = (now or datetime.now(timezone.utc)) - timedelta(seconds=older_than_seconds)
        removed = []
        for item in self._objects(self.config.key(MARKERS) + "/"):
            name = item["Key"].rsplit("/", 1)[-1]
            if name.isdigit() and item["LastModified"] < cutoff:
                self.discard(int(name))
                removed.append(f"s3://{self.config.bucket}/{self.config.key(name)}/")
        return removed

    # ---- the export -------------------------------------------------------------------------------------------
    def read_many(self, batch_id: int, lines: list[int]) -> dict[int, bytes | None]:
        missing = self.client.exceptions.NoSuchKey

        def get(line: int) -> bytes | None:
            try:
                return self.client.get_object(Bucket=self.config.bucket,
                                              Key=document_key(self.config, batch_id, line))["Body"].read()
            except missing:
                return None

        with ThreadPoolExecutor(WORKERS) as pool:
            return dict(zip(lines, pool.map(get, lines)))

    def describe(self) -> str:
        return self.config.describe()

    # ---- helpers ----------------------------------------------------------------------------------------------
    def _marker(self, batch_id: int) -> str:
        return self.config.key(MARKERS, batch_id)

    def _mark(self, batch_id: int) -> None:
        self.client.put_object(Bucket=self.config.bucket, Key=self._marker(batch_id), Body=b"")

    def _objects(self, prefix: str):
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.config.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def _keys(self, prefix: str) -> list[str]:
        return [item["Key"] for item in self._objects(prefix)]


class _Explained:
    """Turns boto3's exceptions at start-up into one ConfigurationError naming the setting or step to fix."""

    def __init__(self, config: S3Config, doing: str):
        self.config, self.doing = config, doing

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None:
            return False
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = self.config.describe()
        if isinstance(exc, NoCredentialsError):
            raise ConfigurationError(
                f"document store {where}: no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or AWS_PROFILE / ~/.aws/credentials, or run with an instance role") from None
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchBucket") or (status == 404 and self.doing == "reading"):
                raise ConfigurationError(
                    f"BLOCKPROOF_DOCUMENT_S3_BUCKET: bucket {self.config.bucket!r} does not exist ({where}): create "
                    "it, or correct the bucket name or BLOCKPROOF_DOCUMENT_S3_ENDPOINT_URL") from None
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled") \
                    or status == 403:
                raise ConfigurationError(
                    f"document store {where}: {self.doing} bucket {self.config.bucket!r} is denied ({code or status}): "
                    f"the AWS credentials in use (not shown) need {NEEDED} on it") from None
            raise ConfigurationError(f"document store {where}: {self.doing} the bucket failed: {code or status} "
                                     f"{error.get('Message', '')}".strip()) from None
        if isinstance(exc, BotoCoreError):
            raise ConfigurationError(f"document store {where}: {exc.__class__.__name__}: {exc}") from None
        return False
