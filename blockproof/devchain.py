"""A local Anvil dev chain for tests, benchmarks and demos.

    with DevChain() as chain:
        env = deploy_dev_environment(chain)
        chain.w3.eth.block_number

Anvil comes from the pinned npm package (node_modules/.bin/anvil in the project root).
Private keys are Anvil's public, well-known dev keys; they are never logged.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from web3 import Web3

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ANVIL_BIN = PROJECT_ROOT / "node_modules" / ".bin" / "anvil"
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
CHAIN_ID = 31337


class DevAccount(NamedTuple):
    """(address, private_key); unpacks as a tuple, and its repr hides the key."""

    address: str
    private_key: str

    def __repr__(self) -> str:
        return f"DevAccount(address={self.address!r}, private_key=<hidden>)"

    __str__ = __repr__


def _derive_accounts(n: int = 10) -> list[DevAccount]:
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    accounts = []
    for i in range(n):
        acct = Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        accounts.append(DevAccount(acct.address, "0x" + bytes(acct.key).hex()))
    return accounts


_ACCOUNTS: list[DevAccount] | None = None


def default_accounts() -> list[DevAccount]:
    """Anvil's 10 default dev accounts, derived from the default mnemonic."""
    global _ACCOUNTS
    if _ACCOUNTS is None:
        _ACCOUNTS = _derive_accounts()
    return list(_ACCOUNTS)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    """True when something already listens on 127.0.0.1:`port` (a TIME_WAIT leftover does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _die_with_parent() -> None:
    """In the child before exec: get SIGINT (Anvil's graceful stop) when the parent dies, even by SIGKILL."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)


class DevChainError(RuntimeError):
    pass


class PortInUse(DevChainError):
    """The requested port is taken: Anvil would not bind, and whatever answers there is not ours."""


class DevChain:
    """An Anvil process. ``start()``/``stop()``/``restart()`` or use as a context manager."""

    def __init__(
        self,
        block_time: float | None = None,
        no_mining: bool = False,
        gas_limit: int = 30_000_000,
        state_path: str | os.PathLike[str] | None = None,
        port: int | None = None,
        *,
        startup_timeout: float = 30.0,
        extra_args: list[str] | None = None,
        die_with_parent: bool = False,
        chain_id: int = CHAIN_ID,
    ) -> None:
        self.chain_id = chain_id
        self.block_time = block_time
        self.no_mining = no_mining
        self.gas_limit = gas_limit
        # resolved against the caller's cwd now (anvil itself runs with cwd = project root)
        self.state_path = Path(state_path).resolve() if state_path is not None else None
        self.port = port
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args or [])
        # only for a chain started from the main thread: the death signal follows the thread that spawned it
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._w3: Web3 | None = None
        self._stderr_path: Path | None = None

    # ----------------------------------------------------------------- lifecycle
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def rpc_url(self) -> str:
        if self.port is None:
            raise DevChainError("DevChain not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def w3(self) -> Web3:
        if self._w3 is None:
            self._w3 = Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 60}))
        return self._w3

    @property
    def accounts(self) -> list[DevAccount]:
        return default_accounts()

    def _command(self) -> list[str]:
        if not ANVIL_BIN.exists():
            raise DevChainError(f"{ANVIL_BIN} missing: run `npm ci` in {PROJECT_ROOT}")
        cmd = [
            str(ANVIL_BIN),
            "--silent",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--gas-limit", str(self.gas_limit),
            "--accounts", "10",
            "--mnemonic", DEFAULT_MNEMONIC,
        ]
        if self.block_time is not None:
            bt = self.block_time
            cmd += ["--block-time", str(int(bt)) if float(bt).is_integer() else str(bt)]
        if self.no_mining:
            cmd.append("--no-mining")
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--state", str(self.state_path)]
        return cmd + self.extra_args

    def start(self) -> "DevChain":
        if self.running:
            return self
        explicit_port = self.port is not None
        attempts = 1 if explicit_port else 3
        last_error: Exception | None = None
        for _ in range(attempts):
            if not explicit_port:
                self.port = free_port()
            try:
                self._spawn_and_wait()
                return self
            except DevChainError as exc:  # port taken between probe and bind: try another
                last_error = exc
                self._kill()
        assert last_error is not None
        raise last_error

    def _spawn_and_wait(self) -> None:
        if port_in_use(self.port):
            raise PortInUse(f"port {self.port} is already in use on 127.0.0.1, so anvil cannot listen there "
                            f"(another node, or another `blockproof chain`?): stop it or choose another with --port")
        cmd = self._command()
        import tempfile

        fd, stderr_path = tempfile.mkstemp(prefix="anvil-", suffix=".log")
        self._stderr_path = Path(stderr_path)
        with os.fdopen(fd, "wb") as stderr:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, cwd=PROJECT_ROOT,
                start_new_session=True, preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        self._w3 = None
        log.info("anvil starting on port %s (pid %s)", self.port, self._proc.pid)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise DevChainError(
                    f"anvil exited with code {self._proc.returncode} before answering: {self._stderr_tail()}"
                )
            if self._chain_id() is not None:
                if self._proc.poll() is not None:  # someone else answered on our port
                    raise PortInUse(f"port {self.port} is already in use on 127.0.0.1: anvil exited, another node answers")
                return
            time.sleep(0.05)
        raise DevChainError(
            f"anvil did not answer eth_chainId on {self.rpc_url} within {self.startup_timeout:.0f}s: "
            f"{self._stderr_tail()}"
        )

    def _stderr_tail(self) -> str:
        try:
            text = self._stderr_path.read_text(errors="replace") if self._stderr_path else ""
        except OSError:
            text = ""
        return text.strip()[-500:] or "(no output)"

    def _chain_id(self) -> int | None:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
        req = urllib.request.Request(self.rpc_url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=1) as resp:
                return int(json.loads(resp.read())["result"], 16)
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            return None

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            # SIGINT first: anvil writes its --state file on a graceful shutdown
            for sig, wait in ((signal.SIGINT, 10), (signal.SIGTERM, 5)):
                try:
                    proc.send_signal(sig)
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                proc.kill()
                proc.wait(timeout=5)
        self._wait_for_group(proc.pid)
        if self._stderr_path is not None:
            self._stderr_path.unlink(missing_ok=True)
            self._stderr_path = None

    @staticmethod
    def _wait_for_group(pgid: int, timeout: float = 10.0) -> None:
        """The npm launcher forwards the signal to the real anvil and exits at once: wait for anvil too."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> None:
        if self._proc is not None:
            log.info("anvil stopping (port %s)", self.port)
        self._kill()
        self._w3 = None

    def restart(self) -> "DevChain":
        """Stop and start again on the same port (and the same --state file, if any)."""
        self.stop()
        return self.start()

    def __enter__(self) -> "DevChain":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:  # best effort: never leave an orphan anvil behind
        try:
            self._kill()
        except Exception:
            pass

    # ----------------------------------------------------------------- helpers
    def rpc(self, method: str, *params: object):
        """A raw JSON-RPC call (evm_snapshot, evm_mine, anvil_* ...); returns the result."""
        response = self.w3.provider.make_request(method, list(params))
        if "error" in response:
            raise DevChainError(f"{method} failed: {response['error']}")
        return response.get("result")

    def snapshot(self) -> str:
        return self.rpc("evm_snapshot")

    def revert(self, snapshot_id: str) -> bool:
        return bool(self.rpc("evm_revert", snapshot_id))

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def increase_time(self, seconds: int) -> None:
        self.rpc("evm_increaseTime", hex(seconds))
        self.mine()


@dataclass(frozen=True)
class DevEnvironment:
    vault_address: str
    artifact_name: str
    admin_address: str
    admin_key: str = field(repr=False)
    institution_address: str
    signer_address: str
    signer_key: str = field(repr=False)
    institution_name: str = "Example University"


def deploy_dev_environment(chain: DevChain, *, artifact_name: str = "BlockProofCredentialVault") -> DevEnvironment:
    """Deploy a vault (admin = account 0) and register "Example University" (account 1)
    with account 2 as its controller (the signer)."""
    from contracts.deploy import configure_institution, deploy_vault

    admin, institution, signer = chain.accounts[0], chain.accounts[1], chain.accounts[2]
    vault = deploy_vault(chain.w3, admin.private_key, artifact_name=artifact_name)
    configure_institution(
        chain.w3, vault, admin_key=admin.private_key, institution=institution.address,
        name="Example University", controllers=[signer.address], artifact_name=artifact_name,
    )
    return DevEnvironment(
        vault_address=vault,
        artifact_name=artifact_name,
        admin_address=admin.address,
        admin_key=admin.private_key,
        institution_address=institution.address,
        signer_address=signer.address,
        signer_key=signer.private_key,
    )


def anvil_available() -> bool:
    return ANVIL_BIN.exists() or shutil.which("anvil") is not None
