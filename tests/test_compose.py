"""compose.yaml cannot run here (no Docker engine): prove it is well formed and wired to real commands."""
from __future__ import annotations

import yaml

from blockproof.cli import build_parser
from blockproof.settings import PROJECT_ROOT, SignerSettings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
APP_SERVICES = ["migrate", "deploy", "signer", "consumer", "web"]


def subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)


def test_every_app_service_runs_an_existing_blockproof_subcommand_with_valid_arguments():
    parser = build_parser()
    for name in APP_SERVICES:
        command = COMPOSE["services"][name]["command"]
        assert command[0] in subcommands(), f"{name}: unknown command {command[0]}"
        parser.parse_args(command)  # raises SystemExit on bad arguments


def test_services_wait_for_healthy_dependencies_and_infrastructure_has_healthchecks():
    services = COMPOSE["services"]
    for name in ("rabbitmq", "postgres", "anvil", "web"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    for name in APP_SERVICES:
        for dep, cond in services[name].get("depends_on", {}).items():
            assert dep in services
            assert cond["condition"] in {"service_healthy", "service_completed_successfully"}
    assert services["signer"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"


def test_the_app_image_is_built_from_the_projects_dockerfile_and_env_names_are_real_settings():
    assert (PROJECT_ROOT / "Dockerfile").exists()
    known = {f"BLOCKPROOF_{name.upper()}" for name in SignerSettings.model_fields} | {"DATABASE_URL"}
    for name in APP_SERVICES:
        env = COMPOSE["services"][name].get("environment", {})
        unknown = set(env) - known
        assert not unknown, f"{name} sets unknown settings {unknown}"
