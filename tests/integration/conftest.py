"""Fixtures of the contract tests: each module says which vault it deploys (its `deployed` fixture)."""
from __future__ import annotations

import pytest

from contracts.testing import VaultHarness


@pytest.fixture
def v(devchain, deployed):
    """The module's deployed vault, with every change a test makes undone after it (an Anvil snapshot)."""
    snap = devchain.snapshot()
    try:
        yield VaultHarness(devchain, deployed)
    finally:
        assert devchain.revert(snap)
