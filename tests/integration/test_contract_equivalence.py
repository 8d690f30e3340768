"""Our vault answers exactly as the interface-only Basic contract for the same operations.

A hypothesis property test drives random sequences of batches (ABI and packed rows, with long URIs that
split a batch over several blobs), singles, revocations (single and batch), pauses and expiries against
both contracts on one Anvil. Each operation is mined in one block for both (same timestamps); a batch is
replayed on Basic as one issueCredential per row, a batch revocation as one revokeCredential per id.
After every operation every view answer (getCredential, credentialStatus, verifyFingerprint,
studentCredentialIds, fingerprintUsed, credentialCount) is compared byte for byte, and so are the logs.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain import vault as codec
from blockproof.devchain import DevChain, anvil_available, deploy_dev_environment
from blockproof.errors import RpcError
from chain.rpc import Rpc
from contracts.artifacts import BASIC, VAULT
from contracts.testing import ZERO32, ZERO_ADDRESS, fp

pytestmark = pytest.mark.integration

STUDENTS = [to_checksum_address(fp(("student", i))[:20]) for i in range(4)]
FINGERPRINTS = [fp(("equivalence", i)) for i in range(10)]
BASES = ["", "ipfs://QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG/", "https://example.edu/" + "d" * 40 + "/"]
SUFFIXES = ["", "1.json", "doc.enc", "x" * 70, "y" * 9000]  # three 9,000-byte rows fill more than one blob
REASONS = [ZERO32, fp("reason a"), fp("reason b")]
BATCH_GAS, SINGLE_GAS = 60_000_000, 12_000_000


@pytest.fixture(scope="module")
def twin():
    if not anvil_available():
        pytest.skip("anvil not installed (npm ci)")
    with DevChain(gas_limit=1_000_000_000) as chain:
        ours = deploy_dev_environment(chain, artifact_name=VAULT)
        basic = deploy_dev_environment(chain, artifact_name=BASIC)
        chain.rpc("evm_setAutomine", False)
        yield Twin(chain, ours, basic)


class Twin:
    def __init__(self, chain, ours, basic):
        self.chain, self.ours, self.basic = chain, ours, basic
        self.rpc = Rpc(chain.rpc_url, timeout=120)
        self.keys = {"signer": ours.signer_key, "outsider": chain.accounts[3].private_key, "admin": ours.admin_key}
        t0 = int(self.rpc.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
        self.expiries = [0, 1, t0 + 30, t0 + 5000, 2**64 - 1]
        self.snapshot = chain.snapshot()

    def reset(self):
        assert self.chain.revert(self.snapshot)
        self.snapshot = self.chain.snapshot()
        self.nonces = {}

    # -- transactions, all of one operation mined in one block
    def send(self, who: str, to: str, data: str, gas: int) -> str:
        key = self.keys[who]
        sender = Account.from_key(key).address
        if sender not in self.nonces:
            self.nonces[sender] = int(self.rpc.call("eth_getTransactionCount", sender, "pending"), 16)
        tx = {"to": to, "data": data, "gas": gas, "nonce": self.nonces[sender], "chainId": 31337,
              "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9, "value": 0}
        self.nonces[sender] += 1
        return self.rpc.call("eth_sendRawTransaction", "0x" + bytes(Account.sign_transaction(tx, key).raw_transaction).hex())

    def mine(self, hashes: list[str]) -> list[dict]:
        self.chain.mine()
        receipts = [self.rpc.call("eth_getTransactionReceipt", h) for h in hashes]
        assert all(r is not None for r in receipts), "every transaction of the operation is in the block"
        assert len({r["blockNumber"] for r in receipts}) <= 1
        return receipts

    def simulate(self, who: str, to: str, data: str):
        sender = Account.from_key(self.keys[who]).address
        try:
            return "ok", self.rpc.call("eth_call", {"from": sender, "to": to, "data": data}, "latest")
        except RpcError as exc:
            data = exc.data.get("data") if isinstance(exc.data, dict) else exc.data
            return "revert", data

    # -- every answer of both contracts
    def answers(self, address: str, count: int) -> list:
        calls = [codec.calldata("credentialCount()"), codec.calldata("paused()")]
        for i in range(count + 2):
            calls += [codec.calldata("getCredential(uint256)", i), codec.calldata("credentialStatus(uint256)", i)]
        for s in [*STUDENTS, ZERO_ADDRESS]:
            calls.append(codec.calldata("studentCredentialIds(address)", s))
        for f in [*FINGERPRINTS, ZERO32]:
            calls.append(codec.calldata("fingerprintUsed(bytes32)", f))
        replies = self.rpc.batch([("eth_call", [{"to": address, "data": c}, "latest"]) for c in calls])
        out = [r if not isinstance(r, RpcError) else ("revert", r.data) for r in replies]
        # verifyFingerprint with the credential's own fingerprint (from its status) and with another one
        verify = []
        for i in range(count + 2):
            status = out[3 + 2 * i]
            own = bytes.fromhex(status[2 + 192: 2 + 256]) if isinstance(status, str) else ZERO32
            for f in (own, FINGERPRINTS[i % len(FINGERPRINTS)]):
                verify.append(("eth_call", [{"to": address, "data": codec.calldata(
                    "verifyFingerprint(uint256,bytes32)", i, f)}, "latest"]))
        return out + [r if not isinstance(r, RpcError) else ("revert", r.data) for r in self.rpc.batch(verify)]

    def count(self) -> int:
        return int(self.rpc.call("eth_call", {"to": self.basic.vault_address,
                                              "data": codec.calldata("credentialCount()")}, "latest"), 16)

    def compare(self):
        count = self.count()
        theirs = self.answers(self.basic.vault_address, count)
        ours = self.answers(self.ours.vault_address, count)
        assert [str(a) for a in ours] == [str(a) for a in theirs]


def logs_of(receipts: list[dict]) -> list[tuple]:
    return [(tuple(log["topics"]), log["data"]) for r in receipts for log in r["logs"]]


# -------------------------------------------------------------------------- operations
SENDER = st.sampled_from(["signer"] * 9 + ["outsider"])
ROW = st.tuples(
    st.sampled_from(list(range(len(STUDENTS))) * 15 + [-1]),  # -1: the zero wallet (reverts the batch)
    st.sampled_from(list(range(len(FINGERPRINTS))) * 6 + [-1]),  # -1: the zero fingerprint
    st.sampled_from([0, 0, 1, 2, 3, 4]),
    st.sampled_from([0, 0, 1, 2, 3]),
    st.integers(0, 4),
)
BATCH = st.tuples(st.just("batch"), st.booleans(), st.integers(0, len(BASES) - 1), st.lists(ROW, max_size=12),
                  SENDER)
SINGLE = st.tuples(st.just("single"), ROW, st.integers(0, len(BASES) - 1), SENDER)
# revoked ids are taken modulo credentialCount + 2: mostly existing ones, sometimes 0 or one past the last
REVOKE = st.tuples(st.just("revoke"), st.integers(0, 60), st.integers(0, 2), SENDER)
REVOKE_BATCH = st.tuples(st.just("revoke_batch"), st.lists(st.tuples(st.integers(0, 60), st.integers(0, 2)),
                                                           max_size=6), SENDER)
PAUSE = st.tuples(st.just("pause"), st.sampled_from([True, False, False]))
WARP = st.tuples(st.just("warp"), st.sampled_from([1, 40, 6000]))
AT_EXPIRY = st.tuples(st.just("at_expiry"), st.sampled_from([2, 3]))  # the next block's time is an expiry itself
OPERATION = st.one_of(BATCH, BATCH, BATCH, SINGLE, SINGLE, REVOKE, REVOKE_BATCH, PAUSE, WARP, AT_EXPIRY)


def _item(twin: Twin, row) -> codec.IssueItem:
    student, fingerprint, meta, payload, expiry = row
    return codec.IssueItem(
        student_wallet=STUDENTS[student] if student >= 0 else ZERO_ADDRESS,
        fingerprint=FINGERPRINTS[fingerprint] if fingerprint >= 0 else ZERO32,
        metadata_uri=SUFFIXES[meta], payload_uri=SUFFIXES[payload], expires_at=twin.expiries[expiry])


def apply(twin: Twin, op) -> None:
    ours, basic = twin.ours, twin.basic
    span = twin.count() + 2
    paused = twin.rpc.call("eth_call", {"to": basic.vault_address, "data": codec.calldata("paused()")}, "latest")
    paused = int(paused, 16) == 1
    inst = ours.institution_address
    kind = op[0]
    if kind == "batch":
        _, packed, base_index, rows, who = op
        base, items = BASES[base_index], [_item(twin, r) for r in rows]
        data = codec.issue_batch_packed(inst, base, items) if packed else codec.issue_batch(inst, base, items)
        outcome, result = twin.simulate(who, ours.vault_address, data)
        refused = paused or who == "outsider" or any(r[0] < 0 or r[1] < 0 for r in rows)
        assert outcome == ("revert" if refused else "ok"), result  # a batch reverts only for those reasons
        hashes = [twin.send(who, ours.vault_address, data, BATCH_GAS)]
        if outcome == "ok":  # replayed row by row; a skipped row is a single that reverts
            hashes += [twin.send(who, basic.vault_address, codec.issue_single(inst, base, item), SINGLE_GAS)
                       for item in items]
        receipts = twin.mine(hashes)
        assert receipts[0]["status"] == ("0x1" if outcome == "ok" else "0x0")
        if outcome == "ok":
            ids = codec.decode_issue_batch_result(result)
            replayed = [int(r["logs"][0]["topics"][1], 16) if r["status"] == "0x1" else 0 for r in receipts[1:]]
            assert ids == replayed
            assert logs_of(receipts[:1]) == logs_of(receipts[1:])
    elif kind == "single":
        _, row, base_index, who = op
        data = codec.issue_single(inst, BASES[base_index], _item(twin, row))
        _single_on_both(twin, who, data)
    elif kind == "revoke":
        _, credential_id, reason, who = op
        _single_on_both(twin, who, codec.revoke_single(credential_id % span, REASONS[reason]))
    elif kind == "revoke_batch":
        _, pairs, who = op
        pairs = [(i % span, r) for i, r in pairs]
        data = codec.revoke_batch([i for i, _ in pairs], [REASONS[r] for _, r in pairs])
        outcome, _ = twin.simulate(who, ours.vault_address, data)
        refused = paused or (pairs and (who == "outsider" or any(not 0 < i < span - 1 for i, _ in pairs)))
        assert outcome == ("revert" if refused else "ok")
        hashes = [twin.send(who, ours.vault_address, data, BATCH_GAS)]
        if outcome == "ok":  # an id already revoked is skipped: its single reverts
            hashes += [twin.send(who, basic.vault_address, codec.revoke_single(i, REASONS[r]), SINGLE_GAS)
                       for i, r in pairs]
        receipts = twin.mine(hashes)
        assert receipts[0]["status"] == ("0x1" if outcome == "ok" else "0x0")
        if outcome == "ok":
            assert logs_of(receipts[:1]) == logs_of(receipts[1:])
    elif kind == "pause":
        _single_on_both(twin, "admin", codec.calldata("setPaused(bool)", op[1]))
    elif kind == "warp":
        twin.chain.rpc("evm_increaseTime", hex(op[1]))
        twin.mine([])
    elif kind == "at_expiry":
        latest = int(twin.rpc.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
        if twin.expiries[op[1]] > latest:
            twin.chain.rpc("evm_setNextBlockTimestamp", hex(twin.expiries[op[1]]))
            twin.mine([])


def _single_on_both(twin: Twin, who: str, data: str) -> None:
    ours, basic = twin.ours.vault_address, twin.basic.vault_address
    assert twin.simulate(who, ours, data) == twin.simulate(who, basic, data)
    receipts = twin.mine([twin.send(who, ours, data, SINGLE_GAS), twin.send(who, basic, data, SINGLE_GAS)])
    assert receipts[0]["status"] == receipts[1]["status"]
    assert logs_of(receipts[:1]) == logs_of(receipts[1:])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(operations=st.lists(OPERATION, min_size=2, max_size=16))
def test_every_view_answers_exactly_as_basic_after_random_batches_singles_revocations_pauses_and_expiries(
        twin, operations):
    twin.reset()
    for op in operations:
        apply(twin, op)
        twin.compare()
