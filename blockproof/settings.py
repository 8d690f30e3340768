"""The one settings object, read from the environment (and var/dev.env written by `blockproof chain up`)."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BLOCKPROOF_", env_file=(".env", "var/dev.env"), extra="ignore",
        # one file per setting, named like its variable in lower case (compose secrets: /run/secrets)
        secrets_dir=os.environ.get("BLOCKPROOF_SECRETS_DIR") or None,
    )

    # where things are
    database_url: str = Field(
        "sqlite:///var/blockproof.db",
        validation_alias=AliasChoices("DATABASE_URL", "BLOCKPROOF_DATABASE_URL"),
        description="SQLAlchemy URL; SQLite file by default, postgresql+psycopg://… in production",
    )
    broker_url: str = Field("amqp://guest:guest@127.0.0.1:5672/%2F", description="RabbitMQ URL")
    rabbitmq_management_url: str = Field(
        "http://127.0.0.1:15672", description="RabbitMQ management API, used for queue panels when reachable"
    )
    rpc_url: str = Field("http://127.0.0.1:8545", description="EVM JSON-RPC endpoint")
    rpc_urls: str = Field("", description="several JSON-RPC endpoints, comma-separated, best first; each request goes "
                          "to the healthiest (failover on errors and HTTP 429); overrides BLOCKPROOF_RPC_URL")
    chain_id: int | None = Field(None, description="the chain every component expects (84532 Base Sepolia, 8453 Base, "
                                 "31337 Anvil); each refuses to start, and the signer stops sending, against another")
    finality: Literal["confirmations", "safe", "finalized"] = Field(
        "confirmations", description="when the consumer confirms a job: after BLOCKPROOF_CONFIRMATIONS blocks, or "
        "once its block is at or below the node's `safe` or `finalized` block")
    log_format: Literal["text", "json"] = Field(
        "text", description="`json`: one JSON object per log line, with job, batch, nonce and tx_hash where known")
    vault_address: str = Field("", description="BlockProofCredentialVault contract address")
    vault_deploy_block: int = Field(0, description="block the contract was deployed in; the consumer starts there")
    signer_address: str = Field(
        "", description="address of the signing controller: the upload's pre-flight simulates from it "
                        "(the key itself is read by the signer alone)")
    queue_name: str = Field("issue", description="RabbitMQ queue the signer consumes")
    broker_queue_type: Literal["classic", "quorum"] = Field(
        "classic", description="type of the queues this declares; `quorum` in production (replicated; an existing "
        "queue keeps its type, so switch on a new BLOCKPROOF_QUEUE_NAME)")

    # documents
    document_store: Literal["directory", "s3"] = Field(
        "directory", description="where uploads write the credential documents and the export reads them: "
        "`directory` (BLOCKPROOF_DOCUMENT_DIR) or `s3` (a bucket of any S3-compatible service: AWS, MinIO, Ceph, R2; "
        "credentials from the usual AWS variables, profile or files, never from these settings)")
    document_dir: Path = Field(Path("var/documents"), description="root of the `directory` document store")
    document_s3_bucket: str = Field("", description="`s3` store: the bucket (it must exist; every start checks "
                                    "that it can write there)")
    document_s3_prefix: str = Field("documents", description="`s3` store: key prefix; documents are "
                                    "<prefix>/<batch>/<line>.json")
    document_s3_endpoint_url: str = Field(
        "", description="`s3` store: endpoint of an S3-compatible service (e.g. http://minio:9000, "
        "https://<account>.r2.cloudflarestorage.com); empty for AWS S3")
    document_s3_region: str = Field("", description="`s3` store: region (empty: AWS_REGION / the AWS profile's)")
    document_s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="`s3` store: `path` (http://host/bucket/key; most MinIO and Ceph setups) or `virtual` "
        "(http://bucket.host/key)")
    document_base_uri: str = Field(
        "", description="public URI prefix of the document store (the directory's, or the bucket prefix's): when set, "
        "each credential's metadata URI on chain is its "
        "document (<base>/<batch>/<line>.json); when empty, its verification link <public_url>/verify/<fingerprint>")
    fingerprint_secret_file: Path | None = Field(
        None, description="file holding the institution's fingerprint secret (at least 32 bytes): documents are "
        "version 2 with a salt HMAC-SHA256(secret, row), so fingerprints on chain reveal nothing about a guessed "
        "person (docs/fingerprints.md); never logged or stored; required in production, plain version 1 without it")
    public_url: str = Field(
        "http://127.0.0.1:8000", description="public address of `blockproof web`: verification links "
        "(<public_url>/verify/<fingerprint>) in exports and QR codes")

    stalled_upload_seconds: float = Field(
        600.0, description="an upload whose jobs are still unpublished (validated) this long after it wrote them is "
        "taken as stopped: the signer publishes them, and the next upload removes its staging folders")

    # signer tunables
    batch_size: int = Field(250, description="most credentials packed into one batch transaction (the gas budget usually decides first)")
    max_in_flight: int = Field(10, description="batch transactions sent but not yet mined, per key (a deep queue outruns its fee caps as the base fee rises)")
    max_in_flight_single: int = Field(200, description="transactions in flight when the contract has no batch call")
    resend_after_seconds: float = Field(12.0, description="rebroadcast / fee-bump a pending transaction after this long")
    fee_bump_percent: int = Field(12, description="fee increase per replacement, >= 10 (geth's rule)")
    max_fee_gwei: float = Field(500.0, description="ceiling for maxFeePerGas; never bump above it")
    priority_fee_gwei: float = Field(1.0, description="maxPriorityFeePerGas until the first eth_feeHistory answer, "
                                     "and whenever the node does not serve eth_feeHistory")
    tip_percentile: float = Field(50.0, description="the tip offered: this percentile of the tips paid in each of "
                                  "the recent blocks (eth_feeHistory), the median over those blocks")
    tip_floor_gwei: float = Field(0.01, description="the tip never goes below this (blocks with no transactions "
                                  "say nothing about the market)")
    tip_ceiling_gwei: float = Field(5.0, description="the tip never goes above this, however much others pay")
    fee_history_blocks: int = Field(10, description="recent blocks eth_feeHistory reads for the tip")
    fee_history_seconds: float = Field(
        60.0, description="the signer asks eth_feeHistory (and the L1 data fee oracle) at most this often: "
        "providers bill per call")
    max_tx_fee_wei: int = Field(
        0, description="per-transaction cap in wei on gas limit × maxFeePerGas, for first attempts and replacements: "
        "the fee cap is lowered to fit (a batch is made smaller), and issuance holds when even one row at the base fee "
        "plus the tip would pass it; 0 = no cap")
    fee_budget_daily_wei: int = Field(
        0, description="spend budget in wei per UTC day, over every signer of this database: fees paid (receipts) "
        "plus the worst case of pending transactions. When the next transaction could pass it, all issuance holds "
        "until midnight UTC or until it is raised (a signer restart); 0 = no budget")
    fee_budget_batch_wei: int = Field(
        0, description="spend budget in wei per batch, counted the same way; a batch that reaches it holds, the "
        "others go on; 0 = no budget")
    batch_gas_margin_percent: float = Field(3.0, description="gas limit = estimate × (1 + this/100) + 20,000 for batch calls")
    single_gas_margin_percent: float = Field(10.0, description="the same margin for single calls")
    base_fee_multiplier: float = Field(3.0, description="maxFeePerGas = base fee × this + tip")
    pacing: Literal["target", "max"] = Field(
        "target", description="target: keep the blocks our transactions fill near the EIP-1559 target (half the gas "
        "limit), so the base fee stays flat, and add nothing when other traffic fills them; max: as fast as "
        "max_in_flight allows, every block full, the base fee +12.5% a block (a batch's deadline lifts target "
        "pacing as far as it needs; see docs/operations.md)")
    max_tx_gas: int = Field(15_000_000, description="largest gas a batch transaction may use; bigger batches are halved (EIP-7825 caps a transaction at 16,777,216)")
    signer_lease_seconds: float = Field(15.0, description="a signer's lease on its key lasts this long unless renewed (every third of it); a killed signer's successor takes over after it (at once on PostgreSQL)")
    stall_alert_minutes: float = Field(5.0, description="raise a signer_stalled alert when ready jobs have waited this long without a transaction sent or a job settled, and no hold explains it")
    low_balance_issuances: int = Field(1000, description="raise a low_balance alert when the signer's balance pays for fewer credentials than this")
    max_retries: int = Field(5, description="automatic retries of a temporary failure before a job is dead")
    retry_backoff_seconds: float = Field(2.0, description="first retry delay; doubles each retry")
    retry_backoff_max_seconds: float = Field(300.0, description="retry delay ceiling")
    signer_poll_seconds: float = Field(0.2, description="signer loop idle sleep")
    signer_idle_refresh_seconds: float = Field(
        15.0, description="with nothing in flight and nothing ready, the signer reads head, balance and nonce this "
        "often instead of every second (providers bill per call); a ready job makes it read them at once")
    rpc_timeout_seconds: float = Field(10.0, description="JSON-RPC request timeout")
    unknown_send_retry_seconds: float = Field(
        1.0, description="after a broadcast with an unknown outcome (timeout, node down), re-send the identical bytes this soon")

    # event consumer tunables
    confirmations: int = Field(
        3, description="confirmations an event needs before its job is confirmed (its own block counts as one)")
    finality_depth: int = Field(64, description="a reorg deeper than this stops the consumer and raises an alert")
    getlogs_chunk: int = Field(1000, description="starting eth_getLogs block range; halves on range errors")
    getlogs_chunk_max: int = Field(10_000, description="eth_getLogs block range ceiling when growing back")
    consumer_poll_seconds: float = Field(0.5, description="event consumer poll interval while jobs wait for the chain")
    consumer_idle_poll_seconds: float = Field(
        15.0, description="caught up and no job waiting for the chain: the consumer reads new blocks this often, "
        "and keeps one block hash per read instead of every one (providers bill per call)")
    missing_event_blocks: int = Field(20, description="report a mined job whose event has not appeared after this many blocks")

    heartbeat_stale_seconds: float = Field(
        60.0, description="a signer or consumer whose last report is older than this raises a stale_heartbeat "
                          "alert (and makes `blockproof status` exit 5)")

    # web
    web_secret: SecretStr | None = Field(None, description="at least 32 random bytes (e.g. `python -c 'import "
                                         "secrets; print(secrets.token_urlsafe(32))'`); required in production")
    admin_user: str = Field("admin", description="name of the first admin, made when the web starts on a database "
                                                  "with no users (dev mode; in production: `blockproof user add`)")
    admin_password: SecretStr | None = Field(None, description="dev and demo only: that first admin's password "
                                             "(unset: a one-time password is printed once)")
    session_idle_minutes: float = Field(30.0, description="a web session ends after this long without a request "
                                                          "(live-update polls do not count)")
    session_max_hours: float = Field(12.0, description="a web session ends this long after its login, in any case")
    token_days: int = Field(90, description="an API token expires after this many days unless given its own")
    production: bool = Field(False, description="refuse weak secrets and start-up without users; secure cookies, HSTS")
    explorer_url: str = Field("", description="block explorer for transaction links on the public verification "
                              "page (<explorer_url>/tx/<hash>, e.g. https://sepolia.etherscan.io); none when empty")
    verify_requests_per_minute: int = Field(
        60, description="public verification page and /api/verify: requests per minute per client address (429 "
        "beyond, with Retry-After)")
    max_upload_mb: int = Field(50, description="largest CSV accepted by the web upload")
    upload_staging_dir: Path = Field(
        Path("var/uploads"), description="web uploads waiting for their commit (one folder per token); give each "
        "instance its own")

    def idle_interval(self, seconds: float) -> float:
        """How long an idle worker may wait between reports: its idle setting, but never so long that its
        heartbeat looks stale (a stale threshold set below an idle interval would raise false alarms)."""
        return min(seconds, self.heartbeat_stale_seconds / 3)

    def explorer_tx_url(self, tx_hash: str) -> str | None:
        return f"{self.explorer_url.rstrip('/')}/tx/{tx_hash}" if self.explorer_url else None

    def verification_url(self, fingerprint: str) -> str:
        return f"{self.public_url.rstrip('/')}/verify/{fingerprint}"

    def metadata_base_uri(self, batch_id: int) -> str:
        """The batch's base URI on chain; each credential adds metadata_suffix (the contract stores the base once)."""
        if self.document_base_uri:
            return self.document_base_uri.rstrip("/") + f"/{batch_id}/"
        return self.public_url.rstrip("/") + "/verify/"

    def metadata_suffix(self, line: int, fingerprint: str) -> str:
        return f"{line}.json" if self.document_base_uri else fingerprint

    def production_uri_problems(self) -> list[str]:
        """Why the URIs this configuration puts on chain, where they stay forever, would not do in production."""
        problems = [f"{name} is a file:// URI ({value}): URIs on chain are permanent, and a file:// one names a path "
                    "on one machine that no verifier can open"
                    for name, value in (("BLOCKPROOF_DOCUMENT_BASE_URI", self.document_base_uri),
                                        ("BLOCKPROOF_PUBLIC_URL", self.public_url))
                    if value.strip().lower().startswith("file:")]
        if not self.document_base_uri and not problems:
            from urllib.parse import urlparse

            url = urlparse(self.public_url.strip())
            if url.scheme not in ("http", "https") or (url.hostname or "") in ("", "localhost", "127.0.0.1", "::1"):
                problems.append(f"BLOCKPROOF_PUBLIC_URL is {self.public_url!r}: every credential's metadata URI on "
                                "chain (permanent) is <public_url>/verify/<fingerprint>; set it to the public address "
                                "of `blockproof web`, e.g. https://verify.example.edu")
        return problems

    def resolved_document_base_uri(self) -> str:
        if self.document_base_uri:
            return self.document_base_uri.rstrip("/") + "/"
        return self.document_dir.resolve().as_uri() + "/"


@lru_cache
def get_settings() -> Settings:
    return Settings()


class SignerSettings(Settings):
    """The shared settings plus the signing key. Only the signer's entrypoint builds this: the web, the
    consumer, `upload` and `status` build `Settings`, which ignores the key even where var/dev.env has it."""

    signer_key: SecretStr | None = Field(None, description="hex private key of the signing controller; read by "
                                                           "`blockproof signer` only (never logged); development only, "
                                                           "refused when BLOCKPROOF_PRODUCTION=true")
    signer_keystore: str = Field("", description="encrypted keystore (Web3 Secret Storage v3 JSON) of the signing key; "
                                                 "`blockproof key new|import` writes one")
    signer_password_file: str = Field("", description="file holding the keystore's password (else the signer asks)")
    signer_url: str = Field("", description="remote signer (JSON-RPC eth_signTransaction: Web3Signer, Clef) holding "
                                            "the key of BLOCKPROOF_SIGNER_ADDRESS")


def get_signer_settings() -> SignerSettings:
    return SignerSettings()


def signer_private_key(settings: SignerSettings) -> str:
    """The configured key, checked. Messages name the setting and the form expected, never the value."""
    from blockproof.errors import ConfigurationError

    if settings.signer_key is None or not settings.signer_key.get_secret_value().strip():
        raise ConfigurationError("BLOCKPROOF_SIGNER_KEY is not set: the signer needs the controller's private key")
    key = settings.signer_key.get_secret_value().strip()
    digits = key[2:] if key[:2].lower() == "0x" else key
    if len(digits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise ConfigurationError(f"BLOCKPROOF_SIGNER_KEY is not a private key: expected 64 hex digits (optionally "
                                 f"after 0x), got {len(key)} characters (the value is not shown)")
    try:
        from eth_account import Account

        Account.from_key(key)
    except Exception:  # out of the curve's range; the library's message may quote the key
        raise ConfigurationError("BLOCKPROOF_SIGNER_KEY is not a valid secp256k1 private key "
                                 "(the value is not shown)") from None
    return key


CONFIGURATION_DOC = PROJECT_ROOT / "docs" / "configuration.md"
CONFIGURATION_INTRO = """# Configuration

Every tunable is one field of the one settings object (`blockproof/settings.py`), read from the environment,
then from `.env` and `var/dev.env` in the working directory. This page is generated from it:
`python -m blockproof.settings > docs/configuration.md` (a test fails when it is out of date).
`BLOCKPROOF_SIGNER_KEY` is read by `blockproof signer` alone; every other process ignores it.

"""


def settings_table() -> str:
    """The configuration table of docs/configuration.md, generated from the fields above."""
    rows = ["| variable | default | what it does |", "| --- | --- | --- |"]
    for name, field in SignerSettings.model_fields.items():
        env = "`DATABASE_URL` (or `BLOCKPROOF_DATABASE_URL`)" if name == "database_url" else f"`BLOCKPROOF_{name.upper()}`"
        default = "" if field.default is None else field.default
        rows.append(f"| {env} | `{default}` | {field.description} |")
    return "\n".join(rows)


# variables read outside the settings object, each by one thing only, and why
OUTSIDE_SETTINGS = [
    ("BLOCKPROOF_SECRETS_DIR", "a folder of files, one per setting, named like its variable in lower case (each "
     "file's content is the value); read when the settings are loaded, so it cannot be one of them"),
    ("BLOCKPROOF_ADMIN_KEY", "the contract admin's private key, read by `blockproof deploy` and `blockproof admin` "
     "alone and never stored (without it `admin` prints unsigned calldata for a multisig)"),
    ("BLOCKPROOF_DOMAIN", "compose.yaml only: the web UI's public host name, for Caddy's certificate and "
     "`BLOCKPROOF_PUBLIC_URL`"),
]


def configuration_doc() -> str:
    outside = ["", "## Read outside the settings object", "", "| variable | what it does |", "| --- | --- |"]
    outside += [f"| `{name}` | {what} |" for name, what in OUTSIDE_SETTINGS]
    return CONFIGURATION_INTRO + settings_table() + "\n" + "\n".join(outside) + "\n"


if __name__ == "__main__":
    print(configuration_doc(), end="")
