"""`blockproof chain`: a local dev chain with the contract deployed, for trying the pipeline by hand."""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from blockproof.devchain import CHAIN_ID, DevChain, PortInUse, deploy_dev_environment

DEV_ENV = Path("var/dev.env")


def write_dev_env(rpc_url: str, env, deploy_block: int, path: Path = DEV_ENV) -> None:
    """Settings for the other commands. The key is Anvil's well-known dev account 2, never a real one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"BLOCKPROOF_RPC_URL={rpc_url}\nBLOCKPROOF_VAULT_ADDRESS={env.vault_address}\n"
        f"BLOCKPROOF_VAULT_DEPLOY_BLOCK={deploy_block}\nBLOCKPROOF_SIGNER_ADDRESS={env.signer_address}\n"
        f"BLOCKPROOF_SIGNER_KEY={env.signer_key}\nBLOCKPROOF_CHAIN_ID={CHAIN_ID}\n"
    )
    path.chmod(0o600)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def chain_up(*, port: int, block_time: float) -> int:
    """Exit codes: 0 stopped by a signal (the node stopped with it), 1 the port is taken."""
    stop = threading.Event()
    # set explicitly: a shell's background job inherits SIGINT ignored, and SIGTERM/SIGHUP would skip `finally`
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: stop.set())
    chain = DevChain(block_time=block_time, port=port, state_path="var/anvil-state.json", die_with_parent=True)
    try:
        chain.start()
    except PortInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        start_block = chain.w3.eth.block_number
        env = deploy_dev_environment(chain)
        write_dev_env(chain.rpc_url, env, start_block)
        print(f"dev chain on {chain.rpc_url}; vault {env.vault_address}; institution {env.institution_address}; "
              f"signer {env.signer_address}. Settings written to {DEV_ENV}. Ctrl-C stops it.", file=sys.stderr)
        while not stop.wait(0.5):
            pass
    finally:
        chain.stop()
        print("dev chain stopped", file=sys.stderr)
    return 0


def deploy_to_dev_node(rpc_url: str) -> int:
    """Deploy to an already running dev node (compose's anvil) with Anvil's well-known accounts."""
    import time

    from web3 import Web3

    from blockproof.devchain import DevChain

    chain = DevChain()
    chain.port = int(rpc_url.rsplit(":", 1)[1].split("/")[0])
    chain._w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
    for _ in range(60):
        if chain._w3.is_connected():
            break
        time.sleep(1)
    if DEV_ENV.exists():
        print(f"{DEV_ENV} exists: the contract was deployed already", file=sys.stderr)
        return 0
    start_block = chain._w3.eth.block_number
    env = deploy_dev_environment(chain)
    write_dev_env(rpc_url, env, start_block)
    print(f"deployed vault {env.vault_address}; settings written to {DEV_ENV}", file=sys.stderr)
    return 0
