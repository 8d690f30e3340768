"""compose.yaml (production template) and compose.dev.yaml (dev stack) cannot run here (no Docker engine):
prove they are well formed, wired to real commands and settings, and that the production one keeps its
promises: no Anvil, no dev deploy, secrets from files, only Caddy published, real liveness healthchecks,
quorum queues, a non-root image without Node."""
from __future__ import annotations

import re

import pytest
import yaml

from blockproof.admin import AdminSettings
from blockproof.cli import build_parser
from blockproof.settings import PROJECT_ROOT, SignerSettings

PRODUCTION = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
DEV = yaml.safe_load((PROJECT_ROOT / "compose.dev.yaml").read_text())
APP = {"production": ["migrate", "signer", "consumer", "web"], "dev": ["migrate", "deploy", "signer", "consumer", "web"]}
FILES = {"production": PRODUCTION, "dev": DEV}
KNOWN = {f"BLOCKPROOF_{name.upper()}" for name in AdminSettings.model_fields | SignerSettings.model_fields} | \
    {"DATABASE_URL", "BLOCKPROOF_SECRETS_DIR"}


def subcommands() -> set[str]:
    action = next(a for a in build_parser()._actions if a.dest == "command")
    return set(action.choices)


@pytest.mark.parametrize("kind", FILES)
def test_every_app_service_runs_an_existing_blockproof_subcommand_with_valid_arguments(kind):
    parser = build_parser()
    for name in APP[kind]:
        command = FILES[kind]["services"][name]["command"]
        assert command[0] in subcommands(), f"{name}: unknown command {command[0]}"
        parser.parse_args(command)  # raises SystemExit on bad arguments


@pytest.mark.parametrize("kind", FILES)
def test_services_wait_for_healthy_dependencies_and_env_names_are_real_settings(kind):
    services = FILES[kind]["services"]
    for name, service in services.items():
        for dep, cond in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert cond["condition"] in {"service_healthy", "service_completed_successfully"}
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no healthcheck"
    for name in APP[kind]:
        unknown = set(services[name].get("environment", {})) - KNOWN
        assert not unknown, f"{name} sets unknown settings {unknown}"


def test_production_has_no_dev_chain_no_dev_deploy_and_no_dev_key():
    text = (PROJECT_ROOT / "compose.yaml").read_text()
    assert "anvil" not in {s.lower() for s in PRODUCTION["services"]} and "foundry" not in text
    assert "--dev" not in text and "deploy" not in PRODUCTION["services"]
    assert "guest:guest" not in text and "POSTGRES_PASSWORD:" not in text


def test_production_publishes_only_caddy_with_tls_in_front_of_the_web():
    services = PRODUCTION["services"]
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"caddy"}
    assert {p.split(":")[-1].split("/")[0] for p in services["caddy"]["ports"]} == {"80", "443"}
    caddyfile = (PROJECT_ROOT / "Caddyfile").read_text()
    assert "reverse_proxy web:8000" in caddyfile and "{$BLOCKPROOF_DOMAIN}" in caddyfile
    assert PRODUCTION["networks"]["internal"].get("internal") is True
    for name, service in services.items():
        if name != "caddy":
            assert service.get("networks", PRODUCTION["x-app"]["networks"]) == ["internal"], name


def test_production_secrets_come_from_files_named_as_the_settings_read_them():
    secrets = PRODUCTION["secrets"]
    assert all(set(s) == {"file"} for s in secrets.values())
    assert PRODUCTION["x-app"]["environment"]["BLOCKPROOF_SECRETS_DIR"] == "/run/secrets"
    settings_files = {f"blockproof_{n}" for n in SignerSettings.model_fields} | {"database_url"}
    for name in ("signer", "consumer", "web", "migrate"):
        for secret in PRODUCTION["services"][name]["secrets"]:
            assert secret in settings_files, f"{name}: secret {secret} matches no setting"
    signer = PRODUCTION["services"]["signer"]
    assert "blockproof_signer_key" not in signer["secrets"], "a plain key is refused in production"
    assert {"blockproof_signer_keystore", "blockproof_signer_password_file"} <= set(signer["secrets"])
    assert signer["environment"]["BLOCKPROOF_SIGNER_KEYSTORE"] == "/run/secrets/blockproof_signer_keystore"
    assert signer["environment"]["BLOCKPROOF_PRODUCTION"] == "true", "the signer keeps the shared environment"
    for name in ("consumer", "web", "migrate"):  # only the signer gets the key
        assert not {"blockproof_signer_key", "blockproof_signer_keystore"} & set(PRODUCTION["services"][name]["secrets"])
    environment = {k for s in PRODUCTION["services"].values() for k in s.get("environment", {})}
    assert not {"BLOCKPROOF_SIGNER_KEY", "BLOCKPROOF_WEB_SECRET", "DATABASE_URL"} & environment
    # what production mode refuses to start without, where fingerprints and metadata URIs are made
    shared = PRODUCTION["x-app"]["environment"]
    assert shared["BLOCKPROOF_FINGERPRINT_SECRET_FILE"] == "/run/secrets/blockproof_fingerprint_secret_file"
    assert shared["BLOCKPROOF_PUBLIC_URL"].startswith("https://${BLOCKPROOF_DOMAIN")
    for name in ("signer", "web"):
        assert "blockproof_fingerprint_secret_file" in PRODUCTION["services"][name]["secrets"], name


def test_signer_and_consumer_healthchecks_run_the_alive_command():
    parser = build_parser()
    for name in ("signer", "consumer"):
        test = PRODUCTION["services"][name]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "blockproof"]
        args = parser.parse_args(test[2:])
        assert args.command == "alive" and args.component == name


def test_production_queues_are_quorum_queues_and_the_database_is_postgresql():
    assert PRODUCTION["x-app"]["environment"]["BLOCKPROOF_BROKER_QUEUE_TYPE"] == "quorum"
    assert "default_queue_type = quorum" in (PROJECT_ROOT / "rabbitmq.conf").read_text()
    assert PRODUCTION["services"]["rabbitmq"]["image"].startswith("rabbitmq:4")
    assert PRODUCTION["services"]["postgres"]["image"].startswith("postgres:")
    assert "postgresql+psycopg://" in (PROJECT_ROOT / "compose.yaml").read_text()


def test_the_image_runs_as_a_non_root_user_without_node_or_anvil():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    instructions = [line for line in dockerfile.splitlines() if line and not line.startswith("#")]
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    body = "\n".join(instructions).lower()
    assert not re.search(r"\b(nodejs|npm|anvil|foundry)\b", body)
    assert PRODUCTION["x-app"]["build"] == "."
