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
    document_dir: Path = Field(Path("var/documents"), description="local document store root")
    document_base_uri: str = Field(
        "", description="public URI prefix of document_dir (default: file:// URI of document_dir)"
    )

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
    priority_fee_gwei: float = Field(1.0, description="starting maxPriorityFeePerGas")
    batch_gas_margin_percent: float = Field(3.0, description="gas limit = estimate × (1 + this/100) + 20,000 for batch calls")
    single_gas_margin_percent: float = Field(10.0, description="the same margin for single calls")
    base_fee_multiplier: float = Field(3.0, description="maxFeePerGas = base fee × this + tip")
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

    # fault injection (tests only; never set in production)
    fault_kill_after_sign: bool = Field(
        False, description="FAULT INJECTION for tests: read once at signer start-up; the signer process exits "
        "(os._exit) right after committing its first signed attempts and before broadcasting them")

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
    fault_kill_before_checkpoint: int = Field(
        0, description="TESTING ONLY: the consumer SIGKILLs itself on the Nth range whose events it inserted, "
                       "before moving the checkpoint (0 = off)")

    heartbeat_stale_seconds: float = Field(
        60.0, description="a signer or consumer whose last report is older than this raises a stale_heartbeat "
                          "alert (and makes `blockproof status` exit 5)")

    # web
    web_secret: SecretStr | None = Field(None, description="session signing secret (required in production)")
    operator_password: SecretStr | None = Field(None, description="password of the 'operator' user")
    viewer_password: SecretStr | None = Field(None, description="password of the 'viewer' user")
    production: bool = Field(False, description="refuse default secrets and passwords")
    max_upload_mb: int = Field(50, description="largest CSV accepted by the web upload")
    upload_staging_dir: Path = Field(
        Path("var/uploads"), description="web uploads waiting for their commit (one folder per token); give each "
        "instance its own")

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
                                                           "`blockproof signer` only (never logged)")


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


def settings_table() -> str:
    """The README's configuration table, generated from the fields above."""
    rows = ["| variable | default | what it does |", "| --- | --- | --- |"]
    for name, field in SignerSettings.model_fields.items():
        env = "DATABASE_URL" if name == "database_url" else f"BLOCKPROOF_{name.upper()}"
        default = "" if field.default is None else field.default
        rows.append(f"| `{env}` | `{default}` | {field.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
