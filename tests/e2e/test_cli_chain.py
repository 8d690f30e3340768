"""`blockproof chain` as a person runs it: in the foreground or in the background (`&`, where the shell ignores
SIGINT), stopped by Ctrl-C, `kill`, a closed terminal or `kill -9`; and on a port some other node already holds."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blockproof.devchain import anvil_available
from tests.faults import wait_for
from tests.web_helpers import free_port

pytestmark = pytest.mark.skipif(not anvil_available(), reason="anvil not installed (npm ci)")


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def start_chain(workdir: Path, port: int, *, background: bool) -> subprocess.Popen:
    def like_a_background_job():  # what `blockproof chain &` gets from a non-interactive shell
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen([sys.executable, "-m", "blockproof.cli", "chain", "--port", str(port)], cwd=workdir,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=like_a_background_job if background else None)


@pytest.mark.parametrize("how", ["SIGINT", "SIGINT in the background", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_chain_stops_its_node_however_it_is_ended(tmp_path, how):
    port = free_port()
    proc = start_chain(tmp_path, port, background="background" in how)
    try:
        wait_for(lambda: (tmp_path / "var" / "dev.env").exists() or proc.poll() is not None, 90,
                 what="the dev chain to deploy")
        assert proc.poll() is None, proc.stderr.read()
        node = descendants(proc.pid)
        assert node and answers(port)
        proc.send_signal(getattr(signal, how.split()[0]))
        proc.wait(timeout=30)
        wait_for(lambda: not any(alive(pid) for pid in node), 30, what="the Anvil of `blockproof chain` to stop")
        assert not answers(port)
        if how != "SIGKILL":
            said = proc.stderr.read()
            assert proc.returncode == 0, said
            assert "dev chain stopped" in said
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in descendants(proc.pid):
            os.kill(pid, signal.SIGKILL)


def test_chain_refuses_a_port_another_node_already_answers_on(devchain, tmp_path):
    head = devchain.w3.eth.block_number
    proc = subprocess.run([sys.executable, "-m", "blockproof.cli", "chain", "--port", str(devchain.port)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"port {devchain.port} is already in use" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "var" / "dev.env").exists()
    time.sleep(0.5)
    assert devchain.w3.eth.block_number == head and devchain.w3.eth.get_code(
        devchain.w3.eth.account.from_key(devchain.accounts[0].private_key).address) == b""
    assert devchain.w3.eth.get_transaction_count(devchain.accounts[0].address) == 0
