"""The RPC budget: HTTP 429 and Retry-After honoured, several endpoints with failover and health scoring
(real HTTP through tests/faults.RpcProxy in front of Anvil; only the clock is injected), and the idle
signer + consumer measured through bench/rpc_budget.py's counting proxy."""
from __future__ import annotations

import socket
from email.utils import formatdate

import pytest

from blockproof.errors import RpcUnavailable
from chain.rpc import Endpoint, RateLimited, Rpc, pick_endpoint, retry_after_seconds
from tests.faults import RpcProxy


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_retry_after_is_read_as_seconds_or_as_an_http_date_and_bounded():
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds(None) == 1.0
    assert retry_after_seconds("soon") == 1.0
    assert retry_after_seconds("100000") == 60.0
    assert 9 <= retry_after_seconds(formatdate(1_000_010, usegmt=True), now=1_000_000) <= 10


def test_the_healthiest_endpoint_is_picked_and_a_cooling_one_is_skipped():
    a, b = Endpoint("http://a"), Endpoint("http://b")
    assert pick_endpoint([a, b], now=0) == (0, 0.0)  # configured order when equal
    a.failures = 2
    assert pick_endpoint([a, b], now=0) == (1, 0.0)
    a.failures, a.not_before = 0, 5
    assert pick_endpoint([a, b], now=0) == (1, 0.0)
    b.not_before = 8
    assert pick_endpoint([a, b], now=0) == (None, 5)


def test_a_429_is_not_asked_again_before_its_retry_after(devchain):
    clock = FakeClock()
    with RpcProxy(devchain.rpc_url) as proxy:
        rpc = Rpc(proxy.url, 5, clock=clock, sleep=clock.sleep)
        proxy.rate_limit(1, retry_after="3")
        with pytest.raises(RateLimited) as raised:
            rpc.block_number()
        assert raised.value.retry_after == 3
        assert rpc.block_number() >= 0
        assert clock.slept == [3.0]  # it waited the whole Retry-After before the next request
        assert proxy.forwarded == 1


def test_a_rate_limited_endpoint_fails_over_to_the_next_and_is_used_again_after_retry_after(devchain):
    clock = FakeClock()
    with RpcProxy(devchain.rpc_url) as first, RpcProxy(devchain.rpc_url) as second:
        rpc = Rpc([first.url, second.url], 5, clock=clock, sleep=clock.sleep)
        first.rate_limit(1, retry_after="10")
        assert rpc.block_number() >= 0 and second.forwarded == 1  # answered at once by the second
        rpc.block_number()
        assert (first.forwarded, second.forwarded) == (0, 2)  # the first is left alone while it cools down
        clock.now += 10
        rpc.block_number()
        assert (first.forwarded, second.forwarded) == (1, 2)  # back to the preferred endpoint
        assert clock.slept == []


def test_a_dead_endpoint_is_skipped_and_reported_unhealthy(devchain):
    clock = FakeClock()
    dead = _dead_url()
    rpc = Rpc([dead, devchain.rpc_url], 5, expected_chain_id=31337, clock=clock, sleep=clock.sleep)
    assert rpc.block_number() >= 0
    health = {h["endpoint"]: h for h in rpc.health()}
    assert health[dead]["healthy"] is False and health[dead]["errors"] == 1
    assert health[devchain.rpc_url]["healthy"] is True
    alone = Rpc([dead], 1, clock=clock, sleep=clock.sleep)
    with pytest.raises(RpcUnavailable):
        alone.block_number()


def test_endpoint_labels_never_show_a_path_that_may_hold_an_api_key():
    assert Endpoint("https://base-sepolia.example/v2/SECRETKEY").label == "https://base-sepolia.example/…"


def test_the_proxy_counts_each_entry_of_a_batch_request_as_a_call(devchain):
    with RpcProxy(devchain.rpc_url) as proxy:
        rpc = Rpc(proxy.url, 5)
        rpc.batch([("eth_blockNumber", []), ("eth_chainId", []), ("eth_blockNumber", [])])
        rpc.block_number()
        calls, requests = proxy.snapshot()
        assert (calls["eth_blockNumber"], calls["eth_chainId"], requests) == (3, 1, 2)
        proxy.reset()
        assert proxy.snapshot() == ({}, 0)


def test_the_idle_signer_and_consumer_send_at_most_60_calls_a_minute(rabbitmq, tmp_path):
    from blockproof.devchain import anvil_available
    from tests.conftest import require

    require(anvil_available(), "Anvil (npm ci)")
    from bench.rpc_budget import NOW, measure

    result = measure("now", NOW, idle_seconds=30, rows=5, workdir=tmp_path)
    assert result["idle_per_minute"] <= 60, result["idle_by_method"]
    assert result["busy_per_credential"] > 0
