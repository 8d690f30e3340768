"""BLOCKPROOF_CHAIN_ID: every component refuses another chain, with two real Anvils of different chain ids."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from blockproof.devchain import DevChain, anvil_available
from blockproof.errors import RpcUnavailable
from chain.rpc import Rpc, WrongChain, wrong_chain_message
from blockproof.settings import PROJECT_ROOT
from tests.faults import TcpProxy, wait_for
from producers.upload import commit, plan
from tests.harness import write_csv

EXPECTED = "the node at {url} serves chain 1; expected 84532"


@pytest.fixture(scope="module")
def mainnet_like():
    if not anvil_available():
        pytest.skip("anvil not installed (npm ci)")
    with DevChain(chain_id=1) as chain:
        yield chain


def test_the_message_names_the_node_the_chain_served_and_the_one_expected():
    assert wrong_chain_message("http://node:8545", 1, 84532).startswith(EXPECTED.format(url="http://node:8545"))
    assert wrong_chain_message("http://node:8545", 84532, 84532) is None
    assert wrong_chain_message("http://node:8545", 1, None) is None


def _run(role: str, chain: DevChain, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    env = os.environ | {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", "BLOCKPROOF_RPC_URL": chain.rpc_url,
        "BLOCKPROOF_CHAIN_ID": "84532", "BLOCKPROOF_VAULT_ADDRESS": "0x" + "11" * 20,
        "BLOCKPROOF_SIGNER_ADDRESS": chain.accounts[2].address, "BLOCKPROOF_QUEUE_NAME": "test-wrong-chain",
        "BLOCKPROOF_WEB_SECRET": "x" * 40, "BLOCKPROOF_OPERATOR_PASSWORD": "operator-password-long",
        "BLOCKPROOF_VIEWER_PASSWORD": "viewer-password-long",
    }
    if role == "signer":
        env["BLOCKPROOF_SIGNER_KEY"] = chain.accounts[2].private_key
    return subprocess.run([sys.executable, "-m", "blockproof.cli", role, *extra], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("role", ["signer", "consumer", "web"])
def test_each_worker_refuses_to_start_against_another_chain(role, mainnet_like, tmp_path):
    done = _run(role, mainnet_like, tmp_path, *(["--port", "0"] if role == "web" else []))
    assert done.returncode != 0
    assert EXPECTED.format(url=mainnet_like.rpc_url) in done.stderr + done.stdout


def test_upload_refuses_to_check_rows_against_another_chain(mainnet_like, tmp_path):
    done = _run("upload", mainnet_like, tmp_path, str(write_csv(tmp_path / "rows.csv", 3)))
    assert done.returncode != 0
    assert EXPECTED.format(url=mainnet_like.rpc_url) in done.stderr + done.stdout


def test_a_node_replaced_by_another_chain_is_refused_at_the_next_request(devchain, mainnet_like):
    right = Rpc(devchain.rpc_url, expected_chain_id=31337)
    assert right.block_number() >= 0
    host, port = "127.0.0.1", int(devchain.rpc_url.rsplit(":", 1)[1])
    with TcpProxy(host, port) as proxy:
        rpc = Rpc(f"http://127.0.0.1:{proxy.port}", 5, expected_chain_id=31337)
        assert rpc.block_number() >= 0
        proxy.upstream = ("127.0.0.1", int(mainnet_like.rpc_url.rsplit(":", 1)[1]))
        proxy.go_dark()
        with pytest.raises(RpcUnavailable):
            rpc.block_number()
        proxy.restore()
        for _ in range(3):  # every request, not only the first after the outage
            with pytest.raises(WrongChain, match="serves chain 1; expected 31337"):
                rpc.call("eth_sendRawTransaction", "0x00")


def test_the_signer_stops_sending_when_its_node_turns_out_to_serve_another_chain(make_pipeline, sqlite_url,
                                                                                 mainnet_like, tmp_path):
    p = make_pipeline(sqlite_url, chain_id=84532)
    with TcpProxy("127.0.0.1", p.chain.port) as proxy:
        p.extra_env.update(BLOCKPROOF_CHAIN_ID="84532")
        p.start("consumer")  # reads the right node directly
        p.extra_env.update(BLOCKPROOF_RPC_URL=f"http://127.0.0.1:{proxy.port}")
        p.start("signer")
        p.upload(write_csv(tmp_path / "first.csv", 3, seed=1))
        wait_for(lambda: p.counts().get("confirmed") == 3, what="the first batch confirmed")
        proxy.upstream = ("127.0.0.1", mainnet_like.port)
        proxy.go_dark()  # until the signer notices (a pooled connection re-opens silently otherwise)
        wait_for(lambda: "did not answer" in p.log("signer"), what="the signer to see the node go away")
        proxy.restore()
        wait_for(lambda: "signer stopped sending: the node at" in p.log("signer"), what="the signer to stop sending")
        settings = p.settings(rpc_url=p.chain.rpc_url)  # the upload still reaches the right node
        report, rows = plan(write_csv(tmp_path / "second.csv", 3, seed=2), filename="second.csv", institution=None,
                            settings=settings, engine=p.engine)
        commit(report, rows, settings=settings, engine=p.engine)
        wait_for(lambda: "signer stopped sending: the node at" in p.log("signer"), what="the signer to stop sending")
        assert "serves chain 1; expected 84532" in p.log("signer")
        signer = p.env.signer_address
        assert mainnet_like.w3.eth.get_transaction_count(signer) == 0  # not one transaction reached chain 1
        counts = p.counts()
        assert counts.get("confirmed") == 3 and sum(counts.values()) == 6 and not counts.get("submitted"), counts
