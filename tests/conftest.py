"""Shared fixtures. ``devchain``: one real Anvil per test module (skipped when Anvil is not installed)."""

from __future__ import annotations

import pytest

from blockproof.devchain import DevChain, anvil_available


@pytest.fixture(scope="module")
def devchain():
    if not anvil_available():
        pytest.skip("anvil not installed (npm ci)")
    chain = DevChain()
    chain.start()
    try:
        yield chain
    finally:
        chain.stop()


# ---- real services ----------------------------------------------------------------------
import os  # noqa: E402

from tests.harness import Pipeline, fresh_database, postgres_up, rabbitmq_up  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(available: bool, what: str) -> None:
    """Skip locally when a real service is missing; in CI a missing service is a failure."""
    if not available:
        if IN_CI:
            pytest.fail(f"{what} is not available in CI")
        pytest.skip(f"{what} not available")


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if IN_CI and skipped and exitstatus == 0:
        if reporter:
            reporter.write_line(f"CI=true: {skipped} test(s) skipped; a skipped integration test is a failure in CI",
                                red=True)
        session.exitstatus = 1


@pytest.fixture
def rabbitmq():
    require(rabbitmq_up(), "RabbitMQ at 127.0.0.1:5672")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "postgresql":
        require(postgres_up(), "PostgreSQL at 127.0.0.1:5432")
    url, drop = fresh_database(request.param, tmp_path)
    yield url
    drop()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'blockproof.db'}"


@pytest.fixture
def make_pipeline(rabbitmq, tmp_path):
    """make_pipeline(database_url, block_time=1, artifact_name=..., **anvil options) -> a running Pipeline."""
    require(anvil_available(), "Anvil (npm ci)")
    made: list[Pipeline] = []
    chains: list[DevChain] = []

    def factory(database_url: str, *, block_time: float | None = 1, artifact_name: str = "BlockProofCredentialVault",
                extra_env: dict | None = None, **chain_options) -> Pipeline:
        chain = DevChain(block_time=block_time, **chain_options)
        chain.start()
        chains.append(chain)
        workdir = tmp_path / f"pipeline{len(made)}"
        workdir.mkdir()
        p = Pipeline(chain=chain, database_url=database_url, workdir=workdir, artifact_name=artifact_name,
                     extra_env=extra_env or {})
        made.append(p)
        return p

    yield factory
    for p in made:
        p.stop_all()
    for chain in chains:
        chain.stop()


TIERS = ("unit", "integration", "e2e")  # tests/<tier>/: `pytest -m unit` runs the tier that needs no service


def pytest_collection_modifyitems(session, config, items):
    """Each test is marked with its tier: the folder it is in."""
    for item in items:
        tier = next((part for part in item.path.parts[-3:-1] if part in TIERS), None)
        if tier:
            item.add_marker(getattr(pytest.mark, tier))
