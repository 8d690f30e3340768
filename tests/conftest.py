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
